//! Rules that span several items: unique names and topics, complete upcaster chains, a
//! creation event, no clash with `Aggregate`'s own methods.

use std::collections::BTreeMap;

use quote::ToTokens;

use crate::ast::{Entity, EntityItem, EventData, EventKind, EventType};
use crate::attr::{Upcast, Version};
use crate::ctxt::Ctxt;

/// The inherent associated functions of `Aggregate<T>` that take no `self`.
const AGGREGATE_ASSOCIATED_FNS: &[&str] = &[
    "create",
    "create_with_id",
    "create_in_context",
    "replay",
    "replay_one",
    "from_snapshot",
];

/// Whether `name` is an inherent method or associated function of `Aggregate<T>`: a command
/// with that name would be shadowed.
fn is_aggregate_method(name: &str) -> bool {
    AGGREGATE_SELF_METHODS.contains(&name) || AGGREGATE_ASSOCIATED_FNS.contains(&name)
}

/// The inherent methods of `Aggregate<T>` that take `self`: a method of `T` with one of these
/// names is unreachable through the aggregate's `Deref` (`page.version()` is the aggregate's).
const AGGREGATE_SELF_METHODS: &[&str] = &[
    "record",
    "id",
    "version",
    "saved_version",
    "created_on",
    "modified_on",
    "state",
    "into_state",
    "pending_events",
    "collect_events",
    "set_context",
    "context",
    "checkpoint",
    "restore",
    "atomically",
];

pub(crate) fn check_entity(cx: &Ctxt, entity: &Entity) {
    for item in &entity.items {
        if let EntityItem::Keep(item) = item {
            if let syn::ImplItem::Fn(func) = &**item {
                let ident = &func.sig.ident;
                if func.sig.receiver().is_some()
                    && AGGREGATE_SELF_METHODS.contains(&ident.to_string().as_str())
                {
                    cx.error_spanned_by(
                        ident,
                        format!(
                            "a method named `{ident}` would be hidden by the method `Aggregate::{ident}`: \
                             on an aggregate, `.{ident}()` calls the aggregate's; rename it (e.g. `{}_{ident}`)",
                            to_snake(&entity.ident.to_string())
                        ),
                    );
                }
            }
        }
    }
    let mut names = BTreeMap::new();
    let mut topics: BTreeMap<String, ()> = BTreeMap::new();
    let mut creates = false;
    for event in entity.events() {
        if names.insert(event.name.to_string(), ()).is_some() {
            cx.error_spanned_by(
                &event.name,
                format!("duplicate event name `{}` in this entity", event.name),
            );
        }
        let topic = entity.topic(event);
        let at = event
            .options
            .topic
            .as_ref()
            .map_or_else(|| event.name.to_token_stream(), ToTokens::to_token_stream);
        if topics.insert(topic.clone(), ()).is_some() {
            cx.error_spanned_by(at, format!("duplicate topic `{topic}` in this entity"));
        }
        for alias in &event.options.aliases {
            if topics.insert(alias.value(), ()).is_some() {
                cx.error_spanned_by(
                    alias,
                    format!("duplicate topic `{}` in this entity", alias.value()),
                );
            }
        }
        check_versions(
            cx,
            event.options.version.as_ref(),
            event.options.upcast.as_ref(),
            &event.attr,
        );
        creates |= event.kind == EventKind::Create;
        if is_aggregate_method(&event.func.sig.ident.to_string()) && event.kind == EventKind::Mutate
        {
            clash(cx, &event.func.sig.ident);
        }
    }
    let commands = entity.commands().map(|c| &c.func).chain(
        entity
            .events()
            .filter(|e| e.kind == EventKind::Mutate)
            .map(|e| &e.func),
    );
    for func in commands {
        if let syn::Visibility::Restricted(r) = &func.vis {
            if r.in_token.is_some() {
                cx.error_spanned_by(
                    &func.vis,
                    format!(
                        "`#[entity]` puts commands in traits by visibility and has none for `pub(in ..)`: \
                         write `pub`, `pub(crate)`, `pub(super)` or no `pub` on `{}`",
                        func.sig.ident
                    ),
                );
            }
        }
    }
    for command in entity.commands() {
        if is_aggregate_method(&command.func.sig.ident.to_string()) {
            clash(cx, &command.func.sig.ident);
        }
        if let syn::ReturnType::Type(_, ty) = &command.func.sig.output {
            if crate::ast::spelled_result(ty) && crate::ast::borrows_or_hides(ty) {
                cx.error_spanned_by(
                    ty,
                    "a command returning a borrow inside a `Result` cannot be rolled back on `Err`: \
                     the borrow would outlive the restore; return owned values, e.g. `Result<String, E>`",
                );
            }
        }
        if let Some(t) = &command.func.sig.asyncness {
            cx.error_spanned_by(
                t,
                "commands cannot be `async`: the domain layer is synchronous",
            );
        }
    }
    if !creates && !cx.has_errors() {
        cx.error_spanned_by(
            &entity.self_ty,
            format!(
                "an entity needs a creation event: add an `#[event(Name)]` associated fn returning `Self`, e.g. `#[event(Registered)] fn register(name: String) -> Self {{ .. }}` (entity `{0}`); a type has one `#[entity]` block: if `{0}` has one already, move these methods into it",
                entity.ident
            ),
        );
    }
    let o = &entity.options;
    if let Some(false) = o.snapshots.as_ref().map(|b| b.value) {
        for (set, name) in [
            (o.snapshot_every.is_some(), "snapshot_every"),
            (o.snapshot_version.is_some(), "snapshot_version"),
            (o.snapshot_upcast.is_some(), "snapshot_upcast"),
        ] {
            if set {
                cx.error_spanned_by(
                    o.snapshots.as_ref(),
                    format!("`snapshots = false` conflicts with `{name}`"),
                );
            }
        }
    }
    if let Some(version) = &o.snapshot_version {
        check_versions(cx, Some(version), o.snapshot_upcast.as_ref(), &version.lit);
    } else if let Some(up) = &o.snapshot_upcast {
        check_versions(cx, None, Some(up), &up.key);
    }
}

/// `PageView` as `page_view`.
fn to_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn clash(cx: &Ctxt, ident: &syn::Ident) {
    cx.error_spanned_by(
        ident,
        format!(
            "a command named `{ident}` would be hidden by the method `Aggregate::{ident}`; rename it"
        ),
    );
}

/// A schema at version N > 1 needs exactly the upcasters from 1 to N - 1.
pub(crate) fn check_versions<T: ToTokens>(
    cx: &Ctxt,
    version: Option<&Version>,
    upcast: Option<&Upcast>,
    attr: T,
) {
    let current = version.map_or(1, |v| v.value);
    if current == 0 {
        return;
    }
    let steps = upcast.map(|u| u.steps.as_slice()).unwrap_or_default();
    for step in steps {
        if step.from >= current {
            cx.error_spanned_by(
                &step.lit,
                format!(
                    "upcaster from version {} but the current version is {current}: upcasters go from each older version to the next",
                    step.from
                ),
            );
        }
    }
    let missing: Vec<String> = (1..current)
        .filter(|v| !steps.iter().any(|s| s.from == *v))
        .map(|v| format!("`{v} => ..`"))
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "`version = {current}` needs an upcaster from every older version: missing {} in `upcast(...)`",
            missing.join(", ")
        );
        match (upcast, version) {
            (Some(u), _) => cx.error_spanned_by(&u.key, msg),
            (None, Some(v)) => cx.error_spanned_by(&v.lit, msg),
            (None, None) => cx.error_spanned_by(attr, msg),
        }
    }
}

pub(crate) fn check_event_type(cx: &Ctxt, ty: &EventType) {
    match &ty.data {
        EventData::Struct => {
            let o = &ty.options.event;
            check_versions(cx, o.version.as_ref(), o.upcast.as_ref(), &ty.ident);
        }
        EventData::Enum(variants) => {
            let mut topics: BTreeMap<String, ()> = BTreeMap::new();
            let entity = ty.entity().unwrap_or_default();
            for v in variants {
                let topic = v
                    .options
                    .topic
                    .as_ref()
                    .map_or_else(|| format!("{entity}.{}", v.ident), syn::LitStr::value);
                let at = v
                    .options
                    .topic
                    .as_ref()
                    .map_or_else(|| v.ident.to_token_stream(), ToTokens::to_token_stream);
                if topics.insert(topic.clone(), ()).is_some() {
                    cx.error_spanned_by(at, format!("duplicate topic `{topic}` in this enum"));
                }
                for alias in &v.options.aliases {
                    if topics.insert(alias.value(), ()).is_some() {
                        cx.error_spanned_by(
                            alias,
                            format!("duplicate topic `{}` in this enum", alias.value()),
                        );
                    }
                }
                check_versions(
                    cx,
                    v.options.version.as_ref(),
                    v.options.upcast.as_ref(),
                    &v.ident,
                );
            }
        }
    }
}
