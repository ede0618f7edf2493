//! Typed parsing of `#[entity(...)]`, `#[event(...)]` and `#[domain_event(...)]`.
//!
//! Every problem is reported to the [`Ctxt`] and parsing goes on, so that one compile shows
//! every attribute error.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitBool, LitInt, LitStr, Path, Token, Visibility};

use crate::ctxt::Ctxt;
use crate::symbol::{
    one_of, Symbol, ALIASES, COMMANDS, CRATE, CRATE_COMMANDS, CREATES, DERIVE, ENTITY, EVENT_ENUM,
    NAME, PRIVATE_COMMANDS, SNAPSHOTS, SNAPSHOT_EVERY, SNAPSHOT_UPCAST, SNAPSHOT_VERSION,
    SUPER_COMMANDS, TOPIC, UPCAST, VERSION, VIS,
};

/// One option value, remembering where it was written so that duplicates are reported.
struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr {
            cx,
            name,
            value: None,
        }
    }

    fn set<A: ToTokens>(&mut self, obj: A, value: T) {
        if self.value.is_some() {
            self.cx
                .error_spanned_by(obj, format!("duplicate `{}` attribute", self.name));
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// A schema version written as `version = N`, with its literal for error spans.
#[derive(Clone)]
pub(crate) struct Version {
    pub(crate) value: u32,
    pub(crate) lit: LitInt,
}

/// One step `N => path` of an `upcast(...)` list.
#[derive(Clone)]
pub(crate) struct UpcastStep {
    pub(crate) from: u32,
    pub(crate) lit: LitInt,
    pub(crate) path: Path,
}

/// An `upcast(...)` list with the tokens of the whole option, for error spans.
#[derive(Clone)]
pub(crate) struct Upcast {
    pub(crate) key: Path,
    pub(crate) steps: Vec<UpcastStep>,
}

/// Options shared by `#[event(...)]` and `#[domain_event(...)]` on one event.
#[derive(Clone, Default)]
pub(crate) struct EventOptions {
    pub(crate) topic: Option<LitStr>,
    pub(crate) version: Option<Version>,
    pub(crate) aliases: Vec<LitStr>,
    pub(crate) upcast: Option<Upcast>,
    pub(crate) creates: bool,
}

struct EventOptionsBuilder<'c> {
    topic: Attr<'c, LitStr>,
    version: Attr<'c, Version>,
    aliases: Attr<'c, Vec<LitStr>>,
    upcast: Attr<'c, Upcast>,
    creates: Attr<'c, ()>,
}

impl<'c> EventOptionsBuilder<'c> {
    fn new(cx: &'c Ctxt) -> Self {
        EventOptionsBuilder {
            topic: Attr::none(cx, TOPIC),
            version: Attr::none(cx, VERSION),
            aliases: Attr::none(cx, ALIASES),
            upcast: Attr::none(cx, UPCAST),
            creates: Attr::none(cx, CREATES),
        }
    }

    /// Parses `meta` if it is one of the event options (`creates` only when `allow_creates`);
    /// returns whether it was.
    fn try_parse(
        &mut self,
        cx: &Ctxt,
        meta: &ParseNestedMeta<'_>,
        allow_creates: bool,
    ) -> syn::Result<bool> {
        if meta.path == TOPIC {
            let lit: LitStr = value(meta)?.parse()?;
            if lit.value().trim().is_empty() {
                cx.error_spanned_by(&lit, "a topic cannot be empty");
            }
            self.topic.set(&meta.path, lit);
        } else if meta.path == VERSION {
            let version = parse_version(cx, meta)?;
            self.version.set(&meta.path, version);
        } else if meta.path == ALIASES {
            let aliases = parse_str_list(meta)?;
            self.aliases.set(&meta.path, aliases);
        } else if meta.path == UPCAST {
            let upcast = parse_upcast(cx, meta)?;
            self.upcast.set(&meta.path, upcast);
        } else if allow_creates && meta.path == CREATES {
            self.creates.set(&meta.path, ());
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn build(self) -> EventOptions {
        EventOptions {
            topic: self.topic.get(),
            version: self.version.get(),
            aliases: self.aliases.get().unwrap_or_default(),
            upcast: self.upcast.get(),
            creates: self.creates.get().is_some(),
        }
    }
}

fn parse_version(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Version> {
    let lit: LitInt = value(meta)?.parse()?;
    let value: u32 = lit.base10_parse()?;
    if value == 0 {
        cx.error_spanned_by(&lit, "versions start at 1: `version = 0` is not allowed");
    }
    Ok(Version { value, lit })
}

fn parse_str_list(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<LitStr>> {
    let value = value(meta)?;
    let content;
    syn::bracketed!(content in value);
    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
    Ok(list.into_iter().collect())
}

fn parse_upcast(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Upcast> {
    let content;
    syn::parenthesized!(content in meta.input);
    let steps = Punctuated::<(LitInt, Path), Token![,]>::parse_terminated_with(
        &content,
        |input: ParseStream<'_>| {
            let lit: LitInt = input.parse()?;
            input.parse::<Token![=>]>()?;
            let path: Path = input.parse()?;
            Ok((lit, path))
        },
    )?;
    let mut out: Vec<UpcastStep> = Vec::new();
    for (lit, path) in steps {
        let from: u32 = lit.base10_parse()?;
        if from == 0 {
            cx.error_spanned_by(
                &lit,
                "versions start at 1: there is no upcaster from version 0",
            );
        } else if out.iter().any(|s| s.from == from) {
            cx.error_spanned_by(&lit, format!("duplicate upcaster from version {from}"));
        } else {
            out.push(UpcastStep { from, lit, path });
        }
    }
    out.sort_by_key(|s| s.from);
    Ok(Upcast {
        key: meta.path.clone(),
        steps: out,
    })
}

/// `meta.value()`, with an error at the option's name when the `= value` is missing.
fn value<'a>(meta: &'a ParseNestedMeta<'_>) -> syn::Result<ParseStream<'a>> {
    if meta.input.peek(Token![=]) {
        meta.value()
    } else {
        let name = meta.path.to_token_stream().to_string().replace(' ', "");
        Err(syn::Error::new_spanned(
            &meta.path,
            format!("`{name}` needs a value: `{name} = ...`"),
        ))
    }
}

fn parse_lit_str(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    value(meta)?.parse()
}

fn parse_ident_str(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Ident>> {
    let lit = parse_lit_str(meta)?;
    match lit.parse::<Ident>() {
        Ok(ident) => Ok(Some(ident)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "`{}` must name a Rust identifier, e.g. \"DogEvent\"",
                    meta.path.to_token_stream()
                ),
            );
            Ok(None)
        }
    }
}

fn parse_crate(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Path>> {
    let lit = parse_lit_str(meta)?;
    match lit.parse::<Path>() {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "invalid `crate` path {:?}: expected a path such as \"::eventsourcing\" or \"my_crate::eventsourcing\"",
                    lit.value()
                ),
            );
            Ok(None)
        }
    }
}

/// Reports an unknown option and skips its value, so that parsing goes on.
fn unknown(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    place: &str,
    known: &[Symbol],
) -> syn::Result<()> {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown eventsourcing attribute `{name}` in `{place}`; expected {}",
            one_of(known)
        ),
    );
    skip_value(meta)
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// The field attributes serde understands (`serde_derive/src/internals/attr.rs`).
const SERDE_FIELD_OPTIONS: &[&str] = &[
    "rename",
    "alias",
    "default",
    "flatten",
    "skip",
    "skip_serializing",
    "skip_deserializing",
    "skip_serializing_if",
    "serialize_with",
    "deserialize_with",
    "with",
    "borrow",
    "bound",
    "getter",
];

/// Checks the option names of a `#[serde(...)]` on an event parameter, so that a misspelt
/// one is one error here instead of serde's error plus errors about the generated types that
/// serde then leaves without impls. serde still checks the values.
pub(crate) fn check_serde_field_attr(cx: &Ctxt, attr: &Attribute) {
    let result = attr.parse_nested_meta(|meta| {
        let known = meta
            .path
            .get_ident()
            .is_some_and(|i| SERDE_FIELD_OPTIONS.iter().any(|k| i == k));
        if !known {
            let name = meta.path.to_token_stream().to_string().replace(' ', "");
            let list: Vec<String> = SERDE_FIELD_OPTIONS.iter().map(|k| format!("`{k}`")).collect();
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "unknown serde field attribute `{name}` on an event parameter; expected one of {}",
                    list.join(", ")
                ),
            );
        }
        skip_value(&meta)
    });
    if let Err(err) = result {
        cx.syn_error(err);
    }
}

/// The options of `#[entity(...)]`.
#[derive(Default)]
pub(crate) struct EntityOptions {
    pub(crate) krate: Option<Path>,
    pub(crate) name: Option<LitStr>,
    pub(crate) event_enum: Option<Ident>,
    pub(crate) commands: Option<Ident>,
    pub(crate) private_commands: Option<Ident>,
    pub(crate) crate_commands: Option<Ident>,
    pub(crate) super_commands: Option<Ident>,
    pub(crate) snapshots: Option<LitBool>,
    pub(crate) snapshot_every: Option<(u64, LitInt)>,
    pub(crate) snapshot_version: Option<Version>,
    pub(crate) snapshot_upcast: Option<Upcast>,
    pub(crate) vis: Option<Visibility>,
    /// Extra derives for the event enum: `derive(PartialEq, Eq)`.
    pub(crate) derive: Vec<Path>,
}

const ENTITY_OPTIONS: &[Symbol] = &[
    CRATE,
    NAME,
    EVENT_ENUM,
    COMMANDS,
    PRIVATE_COMMANDS,
    CRATE_COMMANDS,
    SUPER_COMMANDS,
    SNAPSHOTS,
    SNAPSHOT_EVERY,
    SNAPSHOT_VERSION,
    SNAPSHOT_UPCAST,
    VIS,
    DERIVE,
];

/// What the event enum always derives.
const ALWAYS_DERIVED: &[&str] = &["Debug", "Clone", "Serialize", "Deserialize"];

/// Parses the arguments of `#[entity(...)]`.
pub(crate) fn entity_options(cx: &Ctxt, args: TokenStream) -> EntityOptions {
    let mut krate = Attr::none(cx, CRATE);
    let mut name = Attr::none(cx, NAME);
    let mut event_enum = Attr::none(cx, EVENT_ENUM);
    let mut commands = Attr::none(cx, COMMANDS);
    let mut private_commands = Attr::none(cx, PRIVATE_COMMANDS);
    let mut crate_commands = Attr::none(cx, CRATE_COMMANDS);
    let mut super_commands = Attr::none(cx, SUPER_COMMANDS);
    let mut snapshots = Attr::none(cx, SNAPSHOTS);
    let mut snapshot_every = Attr::none(cx, SNAPSHOT_EVERY);
    let mut snapshot_version = Attr::none(cx, SNAPSHOT_VERSION);
    let mut snapshot_upcast = Attr::none(cx, SNAPSHOT_UPCAST);
    let mut vis = Attr::none(cx, VIS);
    let mut derive = Attr::none(cx, DERIVE);

    let parser = syn::meta::parser(|meta| {
        if meta.path == CRATE {
            if let Some(path) = parse_crate(cx, &meta)? {
                krate.set(&meta.path, path);
            }
        } else if meta.path == NAME {
            let lit = parse_lit_str(&meta)?;
            let value = lit.value();
            if value.is_empty() || value.contains('.') {
                cx.error_spanned_by(&lit, "an entity name must be non-empty and contain no `.`");
            }
            name.set(&meta.path, lit);
        } else if meta.path == EVENT_ENUM {
            if let Some(ident) = parse_ident_str(cx, &meta)? {
                event_enum.set(&meta.path, ident);
            }
        } else if meta.path == COMMANDS {
            if let Some(ident) = parse_ident_str(cx, &meta)? {
                commands.set(&meta.path, ident);
            }
        } else if meta.path == PRIVATE_COMMANDS {
            if let Some(ident) = parse_ident_str(cx, &meta)? {
                private_commands.set(&meta.path, ident);
            }
        } else if meta.path == CRATE_COMMANDS {
            if let Some(ident) = parse_ident_str(cx, &meta)? {
                crate_commands.set(&meta.path, ident);
            }
        } else if meta.path == SUPER_COMMANDS {
            if let Some(ident) = parse_ident_str(cx, &meta)? {
                super_commands.set(&meta.path, ident);
            }
        } else if meta.path == SNAPSHOTS {
            let lit: LitBool = value(&meta)?.parse()?;
            snapshots.set(&meta.path, lit);
        } else if meta.path == SNAPSHOT_EVERY {
            let lit: LitInt = value(&meta)?.parse()?;
            let value: u64 = lit.base10_parse()?;
            if value == 0 {
                cx.error_spanned_by(&lit, "`snapshot_every` must be at least 1");
            }
            snapshot_every.set(&meta.path, (value, lit));
        } else if meta.path == SNAPSHOT_VERSION {
            let version = parse_version(cx, &meta)?;
            snapshot_version.set(&meta.path, version);
        } else if meta.path == SNAPSHOT_UPCAST {
            let upcast = parse_upcast(cx, &meta)?;
            snapshot_upcast.set(&meta.path, upcast);
        } else if meta.path == VIS {
            let lit = parse_lit_str(&meta)?;
            match lit.parse::<Visibility>() {
                Ok(v) => vis.set(&meta.path, v),
                Err(_) => cx.error_spanned_by(
                    &lit,
                    "`vis` must be a visibility such as \"pub\", \"pub(crate)\" or \"pub(super)\"",
                ),
            }
        } else if meta.path == DERIVE {
            let content;
            syn::parenthesized!(content in meta.input);
            let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
            let mut kept = Vec::new();
            for path in paths {
                let last = path.segments.last().map(|s| s.ident.to_string());
                if let Some(name) = last.filter(|n| ALWAYS_DERIVED.contains(&n.as_str())) {
                    cx.error_spanned_by(
                        &path,
                        format!(
                            "the event enum always derives `{name}`: remove it from `derive(...)`"
                        ),
                    );
                } else {
                    kept.push(path);
                }
            }
            derive.set(&meta.path, kept);
        } else {
            unknown(cx, &meta, "#[entity(...)]", ENTITY_OPTIONS)?;
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(args) {
        cx.syn_error(err);
    }
    EntityOptions {
        krate: krate.get(),
        name: name.get(),
        event_enum: event_enum.get(),
        commands: commands.get(),
        private_commands: private_commands.get(),
        crate_commands: crate_commands.get(),
        super_commands: super_commands.get(),
        snapshots: snapshots.get(),
        snapshot_every: snapshot_every.get(),
        snapshot_version: snapshot_version.get(),
        snapshot_upcast: snapshot_upcast.get(),
        vis: vis.get(),
        derive: derive.get().unwrap_or_default(),
    }
}

const EVENT_OPTIONS: &[Symbol] = &[TOPIC, VERSION, ALIASES, UPCAST];

/// Parses `#[event(Name, ...)]`. Returns the name (if valid) and the options.
pub(crate) fn event_attr(cx: &Ctxt, attr: &Attribute) -> (Option<Ident>, EventOptions) {
    let missing_name = "`#[event]` needs the event's name first, e.g. `#[event(TrickAdded)]`";
    let syn::Meta::List(list) = &attr.meta else {
        cx.error_spanned_by(attr, missing_name);
        return (None, EventOptions::default());
    };
    let mut builder = EventOptionsBuilder::new(cx);
    let mut name = None;
    let result = (|input: ParseStream<'_>| -> syn::Result<()> {
        if input.is_empty() {
            cx.error_spanned_by(attr, missing_name);
            return Ok(());
        }
        let named = input.peek(Ident) && !input.peek2(Token![=]) && !input.peek2(syn::token::Paren);
        if named {
            let ident: Ident = input.parse()?;
            if EVENT_OPTIONS.iter().any(|s| ident == *s) {
                cx.error_spanned_by(&ident, missing_name);
            } else {
                name = Some(ident);
            }
            if input.is_empty() {
                return Ok(());
            }
            input.parse::<Token![,]>()?;
        } else {
            cx.error_spanned_by(input.cursor().token_stream(), missing_name);
        }
        let rest: TokenStream = input.parse()?;
        syn::meta::parser(|meta| {
            if !builder.try_parse(cx, &meta, false)? {
                unknown(cx, &meta, "#[event(...)]", EVENT_OPTIONS)?;
            }
            Ok(())
        })
        .parse2(rest)
    })
    .parse2(list.tokens.clone());
    if let Err(err) = result {
        cx.syn_error(err);
    }
    (name, builder.build())
}

/// The container options of `#[domain_event(...)]` on a struct or enum.
#[derive(Default)]
pub(crate) struct ContainerOptions {
    pub(crate) krate: Option<Path>,
    pub(crate) entity: Option<LitStr>,
    pub(crate) event: EventOptions,
}

/// Parses every `#[domain_event(...)]` on a container. `is_struct` allows the per-event
/// options (a struct is one event).
pub(crate) fn container_options(
    cx: &Ctxt,
    attrs: &[Attribute],
    is_struct: bool,
) -> ContainerOptions {
    let mut krate = Attr::none(cx, CRATE);
    let mut entity = Attr::none(cx, ENTITY);
    let mut builder = EventOptionsBuilder::new(cx);
    let known: &[Symbol] = if is_struct {
        &[CRATE, ENTITY, TOPIC, VERSION, ALIASES, UPCAST, CREATES]
    } else {
        &[CRATE, ENTITY]
    };
    for attr in attrs
        .iter()
        .filter(|a| a.path() == crate::symbol::DOMAIN_EVENT)
    {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path == CRATE {
                if let Some(path) = parse_crate(cx, &meta)? {
                    krate.set(&meta.path, path);
                }
            } else if meta.path == ENTITY {
                let lit = parse_lit_str(&meta)?;
                if lit.value().is_empty() || lit.value().contains('.') {
                    cx.error_spanned_by(
                        &lit,
                        "an entity name must be non-empty and contain no `.`",
                    );
                }
                entity.set(&meta.path, lit);
            } else if is_struct && builder.try_parse(cx, &meta, true)? {
            } else if !is_struct
                && EVENT_OPTIONS
                    .iter()
                    .chain([&CREATES])
                    .any(|s| meta.path == *s)
            {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`{}` belongs on each variant of an event enum, not on the enum",
                        meta.path.to_token_stream()
                    ),
                );
                skip_value(&meta)?;
            } else {
                unknown(cx, &meta, "#[domain_event(...)]", known)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
    ContainerOptions {
        krate: krate.get(),
        entity: entity.get(),
        event: builder.build(),
    }
}

/// Parses every `#[domain_event(...)]` on an enum variant.
pub(crate) fn variant_options(cx: &Ctxt, attrs: &[Attribute]) -> EventOptions {
    let mut builder = EventOptionsBuilder::new(cx);
    for attr in attrs
        .iter()
        .filter(|a| a.path() == crate::symbol::DOMAIN_EVENT)
    {
        let result = attr.parse_nested_meta(|meta| {
            if !builder.try_parse(cx, &meta, true)? {
                unknown(
                    cx,
                    &meta,
                    "#[domain_event(...)] on a variant",
                    &[TOPIC, VERSION, ALIASES, UPCAST, CREATES],
                )?;
            }
            Ok(())
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
    builder.build()
}
