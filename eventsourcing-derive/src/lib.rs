//! Procedural macros for `eventsourcing`: `#[entity]` and `#[derive(DomainEvent)]`.
//!
//! Use them through the `eventsourcing` crate (`use eventsourcing::prelude::*;`), never
//! directly. This file holds only the entry points; the stages are `attr` (typed attribute
//! parsing), `ast` (our model), `check` (rules across items) and `expand` (generation).
//!
//! Set the environment variable `EVENTSOURCING_DEBUG_EXPAND` while building to print every
//! expansion to stderr, formatted by rustfmt when it is installed.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod symbol;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

/// Turns an inherent impl block of a plain state struct into an event-sourced entity.
///
/// ```ignore
/// #[entity]
/// impl Dog {
///     #[event(Registered)]
///     fn register(name: String) -> Self { Dog { name, tricks: Vec::new() } }
///
///     #[event(TrickAdded)]
///     fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
///
///     pub fn add_trick_once(&mut self, trick: String) -> Result<(), DogError> { /* .. */ }
///
///     pub fn knows(&self, trick: &str) -> bool { /* .. */ }
/// }
/// ```
///
/// # What it generates
/// - In the impl block: `&self` methods and other items unchanged; each `#[event]` method's
///   body as a hidden mutator `__es_mutate_<method>`; for each creation event (an associated
///   fn returning `Self`) a factory with the method's name and visibility returning
///   `Aggregate<Dog>`. A creation event returning `Result<Self, E>` (or an alias whose first
///   argument is `Self`) may refuse: its factory returns `Result<Aggregate<Dog>, E>` and
///   records nothing on `Err` (the body runs on copies of the arguments first, then again as
///   the mutator); a stored event that the body refuses on replay is
///   `DomainError::Rejected` with the error's `Debug` text.
/// - `#[entity(derive(PartialEq, ..))]` adds derives to the event enum; doc comments on event
///   parameters document its fields.
/// - `pub enum DogEvent` (one variant per event, the parameters as fields, serde
///   `Serialize`/`Deserialize`, `#[serde(...)]` on parameters passed through) and its
///   `DomainEvent` impl and `inventory` registration.
/// - `impl Entity for Dog`, dispatching each event to its mutator, with JSON snapshots.
/// - `pub trait DogCommands`, implemented for `Aggregate<Dog>`: one command per `&mut self`
///   event method (records the event) and every other `&mut self` method of the block, moved
///   there unchanged. Inside a command `self` is the `&mut Aggregate<Dog>`: state is readable
///   through `Deref`, event methods are the commands that record them, and fields cannot be
///   assigned; `Self` there means `Aggregate<Dog>`. A command whose return type is a
///   `Result` (by type: an alias such as `type DogResult<T> = Result<T, DogError>`, a full path
///   or a re-export count too) is rolled back when it returns `Err`: the body runs in a
///   closure, so `return` and `?` behave as written. The rollback costs one copy of the state,
///   taken at the command's first recorded event, and only in a command that can return
///   `Err` after recording one: a command that checks its rules first and records last (the
///   usual shape) runs with no copy at all; events themselves are applied in place, so
///   recording costs the size of the event, not of the state. A mutator that panics inside a
///   command with a rollback is rolled back with it; anywhere else it poisons the aggregate
///   (`DomainError::Poisoned` from every later record and save). A command returning a borrow
///   or an `impl Trait` runs inline and is never rolled back (a borrowed `Result` is
///   rejected).
///   Command names, and the names of `&self` methods of the block, must not be those of
///   `Aggregate`'s own methods (`version`, `id`, `record`, ..), which would hide them.
/// - Commands from methods written without `pub` go to a private trait, `DogPrivateCommands`,
///   usable only in the entity's module: a private event such as `fn debit(&mut self, ..)` can
///   be recorded by a public command that checks the rules (`pub fn withdraw`), but not by
///   callers elsewhere. `pub(crate)` methods go to `pub(crate) trait DogCrateCommands` and
///   `pub(super)` ones to `pub(super) trait DogSuperCommands`, so that no command becomes more
///   visible than written (`pub(in path)` is rejected); import the trait where you call them.
/// - Generated locals are all prefixed `__es_`: do not start your own names with it.
/// - The enum and the traits are defined in the entity's own module, under the names above:
///   an item of yours with the same name is rustc's "the name `DogEvent` is defined multiple
///   times" (E0428) at your item, followed by errors of the generated code that names it;
///   rename yours, or the generated one with `event_enum`, `commands`, `private_commands`,
///   `crate_commands` or `super_commands`. One `#[entity]` block per type.
/// - `#[cfg(..)]` on an event method is repeated on everything generated for the event.
///
/// # Grammar
/// ```text
/// #[entity(crate = "path", name = "Dog", event_enum = "DogEvent", commands = "DogCommands",
///          private_commands = "..", crate_commands = "..", super_commands = "..",
///          vis = "pub(crate)", snapshots = false, snapshot_every = N, snapshot_version = N,
///          snapshot_upcast(1 => path, ..), derive(Trait, ..))]
/// #[event(Name, topic = "Dog.Name", version = N, aliases = ["Old.Name", ..], upcast(1 => path, ..))]
/// ```
/// Every option is optional except the event's name. The topic defaults to `"{name}.{Event}"`,
/// where `name` defaults to the struct's name; versions start at 1 and a version N needs
/// exactly the upcasters from 1 to N - 1, each a
/// `fn(serde_json::Value) -> Result<serde_json::Value, String>`. The generated enum and trait
/// are `pub` by default; a `vis` narrower than the state struct's is rejected by rustc
/// (`impl Entity` names the enum). `snapshots = false` drops the `Serialize + Deserialize`
/// requirement on the state.
#[proc_macro_attribute]
pub fn entity(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item = TokenStream2::from(item);
    let output = match syn::parse2::<syn::ItemImpl>(item.clone()) {
        Ok(item_impl) => match expand::expand_entity(attr.clone(), item_impl.clone()) {
            Ok(tokens) => tokens,
            Err(err) => {
                let mut tokens = err.to_compile_error();
                tokens.extend(fallback::entity(attr, item_impl));
                tokens
            }
        },
        Err(_) => {
            let mut tokens = not_an_impl(&item).to_compile_error();
            tokens.extend(item);
            tokens
        }
    };
    debug_print("#[entity]", &output);
    output.into()
}

fn not_an_impl(item: &TokenStream2) -> syn::Error {
    let msg = "`#[entity]` goes on an inherent impl block of the state struct, e.g. `#[entity] impl Dog { .. }`";
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => syn::Error::new_spanned(
            &s.ident,
            format!(
                "{msg}; put the `#[derive(..)]`s on the struct and `#[entity]` on its impl block"
            ),
        ),
        Ok(syn::Item::Enum(e)) => syn::Error::new_spanned(&e.ident, msg),
        Ok(syn::Item::Fn(f)) => syn::Error::new_spanned(&f.sig.ident, msg),
        Ok(syn::Item::Trait(t)) => syn::Error::new_spanned(&t.ident, msg),
        Ok(syn::Item::Mod(m)) => syn::Error::new_spanned(&m.ident, msg),
        _ => syn::Error::new(proc_macro2::Span::call_site(), msg),
    }
}

/// Implements `DomainEvent` for a hand-written event struct (one topic) or enum (one topic per
/// variant).
///
/// # Grammar
/// ```text
/// #[domain_event(crate = "path", entity = "Example")]           // on the struct or enum
/// #[domain_event(topic = "..", version = N, aliases = [..], upcast(1 => path, ..), creates)]
///                                                                // on the struct or each variant
/// ```
///
/// # Topics
/// - A struct `Created` has the topic `"{entity}.Created"` with `entity = ".."`, or just
///   `"Created"` without it.
/// - A variant `Started` of an enum has the topic `"{entity}.Started"`, where the entity
///   defaults to the enum's name without a trailing `Event` (`CounterEvent` gives
///   `Counter.Started`).
///
/// # Payloads
/// A struct's payload is its own serde JSON (derive `Serialize` and `Deserialize` yourself).
/// An enum variant's payload is its fields as a JSON object (`{}` for a unit variant), or the
/// inner value's JSON for a newtype variant; `#[serde(..)]` attributes on the fields apply.
/// `creates` marks an event that creates its entity (informational).
#[proc_macro_derive(DomainEvent, attributes(domain_event))]
pub fn domain_event(input: TokenStream) -> TokenStream {
    let input = match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error().into(),
    };
    let output = match expand::expand_derive(&input) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = err.to_compile_error();
            tokens.extend(fallback::derive(&input));
            tokens
        }
    };
    debug_print("#[derive(DomainEvent)]", &output);
    output.into()
}

fn debug_print(what: &str, tokens: &TokenStream2) {
    if std::env::var_os("EVENTSOURCING_DEBUG_EXPAND").is_some() {
        let code = formatted(&tokens.to_string());
        eprintln!("----- {what} expansion -----\n{code}-----");
    }
}

/// `code` formatted by rustfmt (the `RUSTFMT` variable, else `rustfmt` on the `PATH`), or as
/// given, with a note, when rustfmt cannot be run or refuses it. Only the debug switch calls
/// it, so the macros take no formatter dependency.
fn formatted(code: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let child = Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let output = child.and_then(|mut child| {
        // rustfmt reads all of its input before it writes: no deadlock on large expansions.
        // The child is waited for even when writing fails (it exited early), so none is left.
        let written = child
            .stdin
            .take()
            .map_or(Ok(()), |mut stdin| stdin.write_all(code.as_bytes()));
        let output = child.wait_with_output()?;
        written.map(|()| output)
    });
    match output {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        _ => format!("{code}\n(not formatted: rustfmt could not be run on this expansion)\n"),
    }
}
