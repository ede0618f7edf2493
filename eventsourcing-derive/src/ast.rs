//! Our model of the macro inputs: an `#[entity]` impl block and a `#[derive(DomainEvent)]` type.

use proc_macro2::TokenStream;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReceiverKind, ReturnType, Type,
};

use crate::attr::{self, EntityOptions, EventOptions};
use crate::ctxt::Ctxt;
use crate::symbol::{CFG, DOC, EVENT, SERDE};

/// An `#[entity] impl` block.
pub(crate) struct Entity {
    pub(crate) options: EntityOptions,
    /// The state struct's name, e.g. `Dog`.
    pub(crate) ident: Ident,
    /// The impl's self type as written.
    pub(crate) self_ty: Type,
    /// The impl block without its items.
    pub(crate) item: ItemImpl,
    /// The block's items, in order.
    pub(crate) items: Vec<EntityItem>,
}

/// One item of the block.
pub(crate) enum EntityItem {
    Event(Box<Event>),
    Command(Box<Command>),
    Keep(Box<ImplItem>),
}

/// Whether an event creates the entity or changes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Create,
    Mutate,
}

/// An `#[event(Name)]` method.
pub(crate) struct Event {
    pub(crate) name: Ident,
    pub(crate) attr: Attribute,
    pub(crate) options: EventOptions,
    pub(crate) kind: EventKind,
    /// The method, with `#[event]` and parameter `#[serde]` attributes removed.
    pub(crate) func: ImplItemFn,
    pub(crate) docs: Vec<Attribute>,
    /// The method's `#[cfg(..)]` attributes, repeated on the variant, its registration, its
    /// arms, its factory or command.
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) fields: Vec<Field>,
    /// For a creation event returning `Result<Self, E>` (or an alias): that return type.
    pub(crate) fallible: Option<Type>,
}

/// A payload field: an event method's parameter or a variant's field.
#[derive(Clone)]
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `#[serde(...)]` attributes.
    pub(crate) attrs: Vec<Attribute>,
    /// Doc comments on an event parameter, carried to the enum's field.
    pub(crate) docs: Vec<Attribute>,
}

/// Another `&mut self` method: a command on `Aggregate<T>`.
pub(crate) struct Command {
    pub(crate) func: ImplItemFn,
}

pub(crate) fn is_doc(attr: &Attribute) -> bool {
    attr.path() == DOC
}

/// Removes `#[event]` from a method and `#[serde]` and doc comments from its parameters.
pub(crate) fn strip_attrs(func: &mut ImplItemFn) {
    func.attrs.retain(|a| a.path() != EVENT);
    for input in &mut func.sig.inputs {
        if let FnArg::Typed(pat) = input {
            pat.attrs.retain(|a| a.path() != SERDE && !is_doc(a));
        }
    }
}

impl Entity {
    /// Builds the model, reporting every problem to `cx`.
    pub(crate) fn from_ast(cx: &Ctxt, args: TokenStream, mut item: ItemImpl) -> Option<Entity> {
        let options = attr::entity_options(cx, args);
        if let Some((path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[entity]` goes on an inherent impl block (`impl Dog { ... }`), not on a trait impl",
            );
            return None;
        }
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(
                &item.generics,
                "generic entities are not supported by `#[entity]`: the event enum, topics and \
                 registrations need one concrete type; write `impl Dog`, or implement `Entity` by hand",
            );
        } else if let Some(clause) = &item.generics.where_clause {
            cx.error_spanned_by(
                clause,
                "`#[entity]` takes no `where` clause: the entity is one concrete type, so the bounds \
                 either always hold or never do; remove the clause",
            );
        }
        let ident = match &*item.self_ty {
            Type::Path(tp) if tp.qself.is_none() => {
                let last = tp.path.segments.last()?;
                if !last.arguments.is_none() && item.generics.params.is_empty() {
                    cx.error_spanned_by(
                        &last.arguments,
                        "generic entities are not supported by `#[entity]`: the event enum, topics \
                         and registrations need one concrete type",
                    );
                }
                last.ident.clone()
            }
            other => {
                cx.error_spanned_by(
                    other,
                    "`#[entity]` needs a named struct type, e.g. `impl Dog`",
                );
                return None;
            }
        };
        let self_ty = (*item.self_ty).clone();
        let mut items = Vec::new();
        for impl_item in std::mem::take(&mut item.items) {
            items.push(classify(cx, impl_item, &ident, &item.self_ty));
        }
        Some(Entity {
            options,
            ident,
            self_ty,
            item,
            items,
        })
    }

    pub(crate) fn events(&self) -> impl Iterator<Item = &Event> {
        self.items.iter().filter_map(|i| match i {
            EntityItem::Event(e) => Some(&**e),
            _ => None,
        })
    }

    pub(crate) fn commands(&self) -> impl Iterator<Item = &Command> {
        self.items.iter().filter_map(|i| match i {
            EntityItem::Command(c) => Some(&**c),
            _ => None,
        })
    }

    /// The entity name used in topics: `name = "..."` or the struct's name.
    pub(crate) fn name(&self) -> String {
        self.options
            .name
            .as_ref()
            .map_or_else(|| self.ident.to_string(), syn::LitStr::value)
    }

    pub(crate) fn topic(&self, event: &Event) -> String {
        event.options.topic.as_ref().map_or_else(
            || format!("{}.{}", self.name(), event.name),
            syn::LitStr::value,
        )
    }

    pub(crate) fn event_enum(&self) -> Ident {
        self.options
            .event_enum
            .clone()
            .unwrap_or_else(|| quote::format_ident!("{}Event", self.ident))
    }
}

fn classify(cx: &Ctxt, impl_item: ImplItem, self_ident: &Ident, self_ty: &Type) -> EntityItem {
    let ImplItem::Fn(mut func) = impl_item else {
        return EntityItem::Keep(Box::new(impl_item));
    };
    let event_attrs: Vec<Attribute> = func
        .attrs
        .iter()
        .filter(|a| a.path() == EVENT)
        .cloned()
        .collect();
    if event_attrs.is_empty() {
        let is_mut_method = matches!(
            func.sig.receiver().map(|r| &r.kind),
            Some(ReceiverKind::Reference(_, _, Some(_)))
        );
        if is_mut_method {
            for input in &func.sig.inputs {
                if let FnArg::Typed(pat) = input {
                    if let Some(serde) = pat.attrs.iter().find(|a| a.path() == SERDE) {
                        cx.error_spanned_by(
                            serde,
                            "`#[serde]` is only allowed on the parameters of `#[event]` methods",
                        );
                    }
                }
            }
            return EntityItem::Command(Box::new(Command { func }));
        }
        return EntityItem::Keep(Box::new(ImplItem::Fn(func)));
    }
    for extra in &event_attrs[1..] {
        cx.error_spanned_by(
            extra,
            "duplicate `#[event]` attribute: a method declares one event",
        );
    }
    let attr = event_attrs[0].clone();
    let (name, options) = attr::event_attr(cx, &attr);
    let docs: Vec<Attribute> = func.attrs.iter().filter(|a| is_doc(a)).cloned().collect();
    // `#[cfg]` stays on the method (so on its mutator) and goes on every generated piece.
    let cfgs: Vec<Attribute> = func
        .attrs
        .iter()
        .filter(|a| a.path() == CFG)
        .cloned()
        .collect();
    let kind = event_kind(cx, &func, self_ident);
    check_signature(cx, &func);
    let mut fields = Vec::new();
    for input in &func.sig.inputs {
        let FnArg::Typed(pat) = input else { continue };
        let ident = match &*pat.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                cx.error_spanned_by(
                    other,
                    "the parameters of an `#[event]` method become the event's fields: use a plain name, e.g. `trick: String`",
                );
                continue;
            }
        };
        check_field_type(cx, &pat.ty);
        for a in &pat.attrs {
            if a.path() == SERDE {
                attr::check_serde_field_attr(cx, a);
            }
            if a.path() != SERDE && !is_doc(a) {
                cx.error_spanned_by(
                    a,
                    "only `#[serde(...)]` attributes and doc comments are allowed on event parameters",
                );
            }
        }
        fields.push(Field {
            ident,
            ty: replace_self(&pat.ty, self_ty),
            attrs: pat
                .attrs
                .iter()
                .filter(|a| a.path() == SERDE)
                .cloned()
                .collect(),
            docs: pat.attrs.iter().filter(|a| is_doc(a)).cloned().collect(),
        });
    }
    strip_attrs(&mut func);
    match (name, kind) {
        (Some(name), Some(kind)) => EntityItem::Event(Box::new(Event {
            fallible: match (&func.sig.output, kind) {
                (ReturnType::Type(_, ty), EventKind::Create) if fallible_self(ty, self_ident) => {
                    Some((**ty).clone())
                }
                _ => None,
            },
            name,
            attr,
            options,
            kind,
            func,
            docs,
            cfgs,
            fields,
        })),
        _ => EntityItem::Keep(Box::new(ImplItem::Fn(func))),
    }
}

fn event_kind(cx: &Ctxt, func: &ImplItemFn, self_ident: &Ident) -> Option<EventKind> {
    let Some(receiver) = func.sig.receiver() else {
        let returns_self = match &func.sig.output {
            ReturnType::Type(_, ty) => is_self(ty, self_ident) || fallible_self(ty, self_ident),
            ReturnType::Default => false,
        };
        if !returns_self {
            let msg = "a creation event (an `#[event]` fn without `self`) must return `Self` (its \
                       body builds the new state) or `Result<Self, E>` (it may refuse, and the \
                       factory then returns `Result<Aggregate<Self>, E>`; an `Option<Self>` \
                       would refuse without saying why)";
            match &func.sig.output {
                ReturnType::Type(_, ty) => cx.error_spanned_by(ty, msg),
                ReturnType::Default => cx.error_spanned_by(&func.sig.ident, msg),
            }
            return None;
        }
        return Some(EventKind::Create);
    };
    match &receiver.kind {
        ReceiverKind::Reference(_, _, Some(_)) => {
            if let ReturnType::Type(_, ty) = &func.sig.output {
                cx.error_spanned_by(
                    ty,
                    "an `#[event]` method cannot return a value: it is the mutator, run again on every \
                     replay; put checks and results in a command that calls it",
                );
                return None;
            }
            Some(EventKind::Mutate)
        }
        ReceiverKind::Reference(_, _, None) => {
            cx.error_spanned_by(
                receiver,
                "an `#[event]` method must take `&mut self` (to change the state) or no `self` \
                 (a creation event returning `Self`); `&self` cannot change the state",
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                receiver,
                "an `#[event]` method must take `&mut self` (to change the state) or no `self` \
                 (a creation event returning `Self`), not `self` by value",
            );
            None
        }
    }
}

fn check_signature(cx: &Ctxt, func: &ImplItemFn) {
    let sig = &func.sig;
    if let Some(t) = &sig.asyncness {
        cx.error_spanned_by(
            t,
            "an `#[event]` method cannot be `async`: mutators are pure and synchronous",
        );
    }
    if let Some(t) = &sig.constness {
        cx.error_spanned_by(t, "an `#[event]` method cannot be `const`");
    }
    if let syn::Safety::Unsafe(t) = &sig.safety {
        cx.error_spanned_by(t, "an `#[event]` method cannot be `unsafe`");
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "an `#[event]` method cannot be generic: its parameters are the event's stored fields",
        );
    } else if let Some(clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            clause,
            "an `#[event]` method takes no `where` clause: its parameters are the event's stored \
             fields, of concrete types; remove the clause",
        );
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, "an `#[event]` method cannot be variadic");
    }
}

fn check_field_type(cx: &Ctxt, ty: &Type) {
    if let Some(reference) = find_reference(ty) {
        let msg = if std::ptr::eq(reference, ty) {
            "event fields are stored in the event, so they must be owned (e.g. `String`, not `&str`)"
        } else {
            "event fields are stored in the event, so they must be owned, also inside other types \
             (e.g. `Vec<String>`, not `Vec<&str>`; `Option<String>`, not `Option<&String>`)"
        };
        cx.error_spanned_by(reference, msg);
        return;
    }
    if let Type::ImplTrait(_) = ty {
        cx.error_spanned_by(
            ty,
            "event fields are stored in the event, so they need a concrete type, not `impl Trait`",
        );
    }
}

/// `ty` with every `Self` replaced by the entity's type: in the event enum `Self` would be the
/// enum, in the command trait the aggregate.
fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    fn walk(tokens: TokenStream, self_ty: &TokenStream) -> TokenStream {
        tokens
            .into_iter()
            .flat_map(|tt| -> TokenStream {
                match tt {
                    proc_macro2::TokenTree::Ident(i) if i == "Self" => self_ty.clone(),
                    proc_macro2::TokenTree::Group(g) => {
                        let mut group =
                            proc_macro2::Group::new(g.delimiter(), walk(g.stream(), self_ty));
                        group.set_span(g.span());
                        quote::ToTokens::into_token_stream(proc_macro2::TokenTree::Group(group))
                    }
                    other => quote::ToTokens::into_token_stream(other),
                }
            })
            .collect()
    }
    let self_tokens = quote::ToTokens::to_token_stream(self_ty);
    syn::parse2(walk(quote::ToTokens::to_token_stream(ty), &self_tokens))
        .unwrap_or_else(|_| ty.clone())
}

/// The first reference or raw pointer in `ty`, itself included: in generic arguments, tuples,
/// arrays, slices and parentheses.
fn find_reference(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(_) | Type::Ptr(_) => Some(ty),
        Type::Path(tp) => {
            let qself = tp.qself.as_ref().and_then(|q| find_reference(&q.ty));
            qself.or_else(|| {
                tp.path
                    .segments
                    .iter()
                    .find_map(|seg| match &seg.arguments {
                        syn::PathArguments::AngleBracketed(args) => {
                            args.args.iter().find_map(|arg| match arg {
                                syn::GenericArgument::Type(t) => find_reference(t),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            })
        }
        Type::Tuple(t) => t.elems.iter().find_map(find_reference),
        Type::Array(a) => find_reference(&a.elem),
        Type::Slice(s) => find_reference(&s.elem),
        Type::Paren(p) => find_reference(&p.elem),
        Type::Group(g) => find_reference(&g.elem),
        _ => None,
    }
}

/// Whether `ty` is a type whose first generic argument is `Self` (or the entity's name), as
/// `Result<Self, E>` or an alias `DogResult<Self>`: a fallible creation event.
pub(crate) fn fallible_self(ty: &Type, self_ident: &Ident) -> bool {
    let Type::Path(tp) = ty else { return false };
    let Some(last) = tp.path.segments.last() else {
        return false;
    };
    // `Option<Self>` has no error to return: such a creation is rejected, not fallible.
    if last.ident == "Option" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(args.args.first(), Some(syn::GenericArgument::Type(first)) if is_self(first, self_ident))
}

/// Whether `ty` is `Self` or the entity's own name.
fn is_self(ty: &Type, self_ident: &Ident) -> bool {
    matches!(ty, Type::Path(tp) if tp.qself.is_none()
        && (tp.path.is_ident("Self") || tp.path.is_ident(self_ident)))
}

/// Whether a return type is spelled `Result<..>` (any path ending in `Result`).
pub(crate) fn spelled_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(tp) if tp.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// Whether a type holds a non-`'static` borrow (`&T`, `&'a T`, `Cow<'a, T>`), an
/// `impl Trait` or `!` anywhere inside it: such a value cannot leave the closure that a
/// rolled-back command runs in (or be named in it).
pub(crate) fn borrows_or_hides(ty: &Type) -> bool {
    fn lifetime(l: Option<&syn::Lifetime>) -> bool {
        l.is_none_or(|l| l.ident != "static")
    }
    fn bounds<'a>(mut bounds: impl Iterator<Item = &'a syn::TypeParamBound>) -> bool {
        bounds.any(|b| match b {
            syn::TypeParamBound::Lifetime(l) => lifetime(Some(l)),
            syn::TypeParamBound::Trait(t) => path(&t.path),
            _ => false,
        })
    }
    fn path(p: &syn::Path) -> bool {
        p.segments.iter().any(|seg| match &seg.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().any(|arg| match arg {
                syn::GenericArgument::Type(t) => borrows_or_hides(t),
                syn::GenericArgument::Lifetime(l) => lifetime(Some(l)),
                syn::GenericArgument::AssocType(a) => borrows_or_hides(&a.ty),
                _ => false,
            }),
            // `Fn(&str) -> bool` borrows only for the call.
            syn::PathArguments::Parenthesized(_) | syn::PathArguments::None => false,
        })
    }
    match ty {
        Type::Reference(r) => lifetime(r.lifetime.as_ref()) || borrows_or_hides(&r.elem),
        Type::Path(tp) => {
            tp.qself.as_ref().is_some_and(|q| borrows_or_hides(&q.ty)) || path(&tp.path)
        }
        Type::Tuple(t) => t.elems.iter().any(borrows_or_hides),
        Type::Array(a) => borrows_or_hides(&a.elem),
        Type::Slice(s) => borrows_or_hides(&s.elem),
        Type::Paren(p) => borrows_or_hides(&p.elem),
        Type::Group(g) => borrows_or_hides(&g.elem),
        Type::TraitObject(t) => bounds(t.bounds.iter()),
        Type::Ptr(p) => borrows_or_hides(&p.elem),
        Type::FnPtr(_) => false,
        // `impl Trait`, `!`, macros and anything new: not named in a closure.
        _ => true,
    }
}

/// A `#[derive(DomainEvent)]` input.
pub(crate) struct EventType {
    pub(crate) ident: Ident,
    pub(crate) options: attr::ContainerOptions,
    pub(crate) data: EventData,
}

/// The shape of a derived event type.
pub(crate) enum EventData {
    /// One event: the struct's own serde JSON is the payload.
    Struct,
    Enum(Vec<Variant>),
}

/// One variant of an event enum: one topic.
pub(crate) struct Variant {
    pub(crate) ident: Ident,
    pub(crate) options: EventOptions,
    pub(crate) shape: Shape,
}

/// How a variant's payload is written.
pub(crate) enum Shape {
    Unit,
    Newtype(Box<Type>),
    Named(Vec<Field>),
}

impl EventType {
    pub(crate) fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Option<EventType> {
        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &input.generics,
                "`#[derive(DomainEvent)]` does not support generic types: each topic decodes to one concrete type",
            );
        }
        let data = match &input.data {
            syn::Data::Struct(_) => {
                let options = attr::container_options(cx, &input.attrs, true);
                return Some(EventType {
                    ident: input.ident.clone(),
                    options,
                    data: EventData::Struct,
                });
            }
            syn::Data::Enum(data) => {
                let mut variants = Vec::new();
                for v in &data.variants {
                    let options = attr::variant_options(cx, &v.attrs);
                    let shape = match &v.fields {
                        syn::Fields::Unit => Shape::Unit,
                        syn::Fields::Unnamed(f) if f.unnamed.len() == 1 => {
                            Shape::Newtype(Box::new(f.unnamed[0].ty.clone()))
                        }
                        syn::Fields::Unnamed(f) => {
                            cx.error_spanned_by(
                                f,
                                "tuple variants with more than one field have no JSON object form: \
                                 name the fields (`Variant { a: A, b: B }`) or wrap them in one struct",
                            );
                            continue;
                        }
                        syn::Fields::Named(f) => Shape::Named(
                            f.named
                                .iter()
                                .filter_map(|field| {
                                    Some(Field {
                                        ident: field.ident.clone()?,
                                        ty: field.ty.clone(),
                                        attrs: field
                                            .attrs
                                            .iter()
                                            .filter(|a| a.path() == SERDE)
                                            .cloned()
                                            .collect(),
                                        docs: Vec::new(),
                                    })
                                })
                                .collect(),
                        ),
                    };
                    variants.push(Variant {
                        ident: v.ident.clone(),
                        options,
                        shape,
                    });
                }
                if data.variants.is_empty() {
                    cx.error_spanned_by(&input.ident, "an event enum needs at least one variant");
                }
                EventData::Enum(variants)
            }
            syn::Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "`#[derive(DomainEvent)]` works on a struct (one event) or an enum (one event per variant), not on a union",
                );
                return None;
            }
        };
        let options = attr::container_options(cx, &input.attrs, false);
        Some(EventType {
            ident: input.ident.clone(),
            options,
            data,
        })
    }

    /// The entity (family) name: `entity = "..."`, or for an enum its name without a
    /// trailing `Event`.
    pub(crate) fn entity(&self) -> Option<String> {
        if let Some(lit) = &self.options.entity {
            return Some(lit.value());
        }
        match self.data {
            EventData::Struct => None,
            EventData::Enum(_) => {
                let name = self.ident.to_string();
                match name.strip_suffix("Event") {
                    Some(stem) if !stem.is_empty() => Some(stem.to_owned()),
                    _ => Some(name),
                }
            }
        }
    }
}
