//! The generated names and the hidden module that holds the event enum and the command
//! traits.
//!
//! A proc macro cannot see the other items of the user's module, so a type named like a
//! generated one (`DogEvent`) cannot be detected while expanding. Instead the generated enum
//! and traits are defined in a hidden module and re-exported with a glob
//! (`pub use self::__es_one_entity_block_for_Dog::*;`, see [`modules_of`]). A user item of the same
//! name shadows a glob import without an error, so instead of a cascade (E0428 for the name,
//! then conflicting impls) only the checks emitted here fail: each asks, through a trait
//! carrying `#[diagnostic::on_unimplemented]`, whether the name as seen from the entity's
//! module is the generated item, and says how to rename it when it is not. A second
//! `#[entity]` block for the same type defines the re-exporting module twice: its name then
//! says what to do in rustc's "defined multiple times" error, the first of three errors
//! (then the conflicting `impl Entity`, and the second block's missing creation event).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::Visibility;

use super::entity::CommandGroup;
use crate::ast::{Entity, EntityItem};
use crate::attr::EntityOptions;

/// The hidden modules of the entity `ident`: the one that defines the enum and the traits,
/// named after the block's methods (`__es_Dog_1f2e3d4c`), and the one the entity's module
/// imports them from, named after the type only (`__es_one_entity_block_for_Dog`) and spanned
/// at the impl's self type. A second `#[entity]` block for the type defines the second one
/// twice, which rustc reports once, by that name; the first one differs, so that the second
/// block's own items do not clash too.
pub(crate) fn modules_of<'a>(
    ident: &syn::Ident,
    span: Span,
    methods: impl Iterator<Item = &'a syn::Ident>,
) -> (syn::Ident, syn::Ident) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    for method in methods {
        method.to_string().hash(&mut hasher);
    }
    let hash = hasher.finish() & 0xffff_ffff;
    (
        format_ident!("__es_{}_{:08x}", ident, hash),
        format_ident!("__es_one_entity_block_for_{}", ident, span = span),
    )
}

/// [`modules_of`] for a model.
pub(crate) fn modules(entity: &Entity) -> (syn::Ident, syn::Ident) {
    let methods = entity.items.iter().filter_map(|item| match item {
        EntityItem::Event(e) => Some(&e.func.sig.ident),
        EntityItem::Command(c) => Some(&c.func.sig.ident),
        EntityItem::Keep(item) => match &**item {
            syn::ImplItem::Fn(f) => Some(&f.sig.ident),
            _ => None,
        },
    });
    modules_of(&entity.ident, entity.self_ty.span(), methods)
}

/// The name of a command group's trait: its option, or `DogCommands`, `DogPrivateCommands`,
/// `DogCrateCommands`, `DogSuperCommands`.
pub(crate) fn group_trait(
    ident: &syn::Ident,
    options: &EntityOptions,
    group: CommandGroup,
) -> syn::Ident {
    let (option, suffix) = group_option(options, group);
    option
        .clone()
        .unwrap_or_else(|| format_ident!("{}{}", ident, suffix))
}

fn group_option(options: &EntityOptions, group: CommandGroup) -> (&Option<syn::Ident>, &str) {
    match group {
        CommandGroup::Main => (&options.commands, "Commands"),
        CommandGroup::Private => (&options.private_commands, "PrivateCommands"),
        CommandGroup::Crate => (&options.crate_commands, "CrateCommands"),
        CommandGroup::Super => (&options.super_commands, "SuperCommands"),
    }
}

fn option_name(group: CommandGroup) -> &'static str {
    match group {
        CommandGroup::Main => "commands",
        CommandGroup::Private => "private_commands",
        CommandGroup::Crate => "crate_commands",
        CommandGroup::Super => "super_commands",
    }
}

/// A visibility written for the entity's module, as seen from the hidden module inside it.
pub(crate) fn inner_vis(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => vis.to_token_stream(),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(r) => {
            let path = &r.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                Some("super") if r.in_token.is_none() => quote!(pub(in super::super)),
                Some("self" | "super") => {
                    let mut path = (*r.path).clone();
                    rebase_path(&mut path);
                    quote!(pub(in #path))
                }
                _ => vis.to_token_stream(),
            }
        }
    }
}

/// As [`inner_vis`], for a visibility already in tokens.
pub(crate) fn inner_vis_tokens(vis: &TokenStream) -> TokenStream {
    syn::parse2::<Visibility>(vis.clone()).map_or_else(|_| vis.clone(), |v| inner_vis(&v))
}

/// `self::x` as `super::x` and `super::x` as `super::super::x`: a path written in the
/// entity's module, used in the hidden module inside it.
fn rebase_path(path: &mut syn::Path) {
    if path.leading_colon.is_some() {
        return;
    }
    let Some(first) = path.segments.first_mut() else {
        return;
    };
    if first.ident == "self" {
        first.ident = syn::Ident::new("super", first.ident.span());
    } else if first.ident == "super" {
        let span = first.ident.span();
        path.segments
            .insert(0, syn::PathSegment::from(syn::Ident::new("super", span)));
    }
}

struct Rebase;

impl VisitMut for Rebase {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        rebase_path(path);
        syn::visit_mut::visit_path_mut(self, path);
    }
}

/// A type written in the entity's module, for the hidden module (other names come through
/// its `use super::*;`).
pub(crate) fn rebase_type(ty: &syn::Type) -> syn::Type {
    let mut ty = ty.clone();
    Rebase.visit_type_mut(&mut ty);
    ty
}

/// As [`rebase_type`], for a command's signature in its trait.
pub(crate) fn rebase_sig(mut sig: syn::Signature) -> syn::Signature {
    Rebase.visit_signature_mut(&mut sig);
    sig
}

/// Where a name clash is reported: the option that named the item, or the impl's self type.
fn clash_span(option: Option<&syn::Ident>, entity: &Entity) -> Span {
    option.map_or_else(|| entity.self_ty.span(), syn::Ident::span)
}

/// The check that `enum_ident`, as seen from the entity's module, is the generated enum:
/// an item for the hidden module and one for the entity's module.
pub(crate) fn enum_check(
    entity: &Entity,
    module: &syn::Ident,
    enum_ident: &syn::Ident,
) -> (TokenStream, TokenStream) {
    let ident = &entity.ident;
    let message = format!(
        "`{enum_ident}` in this module is not the event enum that `#[entity]` generates for \
         `{ident}`: another item named `{enum_ident}` is already here and hides it; rename that \
         item, or give the enum another name with `#[entity(event_enum = \"{ident}Events\")]`"
    );
    let label = format!("`#[entity]` generates `{enum_ident}` here");
    let span = clash_span(entity.options.event_enum.as_ref(), entity);
    let in_module = quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label)]
        pub(super) trait __EsGeneratedEventEnum {}
        #[diagnostic::do_not_recommend]
        impl __EsGeneratedEventEnum for #enum_ident {}
        pub(super) fn __es_is_generated_event_enum<T: __EsGeneratedEventEnum>() {}
    };
    let check = quote_spanned! {span=>
        const _: fn() = #module::__es_is_generated_event_enum::<#enum_ident>;
    };
    (in_module, check)
}

/// The check that a command trait, as seen from the entity's module, is the generated one.
pub(crate) fn trait_check(
    entity: &Entity,
    group: CommandGroup,
    module: &syn::Ident,
    trait_ident: &syn::Ident,
) -> (TokenStream, TokenStream) {
    let ident = &entity.ident;
    let (option, _) = group_option(&entity.options, group);
    let option_name = option_name(group);
    let suggestion = trait_ident.to_string().replace("Commands", "Actions");
    let message = format!(
        "`{trait_ident}` in this module is not the command trait that `#[entity]` generates for \
         `{ident}`: another item named `{trait_ident}` is already here and hides it; rename that \
         item, or give the trait another name with `#[entity({option_name} = \"{suggestion}\")]`"
    );
    let label = format!("`#[entity]` generates `{trait_ident}` here");
    let marker = format_ident!("__EsGenerated{}", trait_ident);
    let check_fn = format_ident!("__es_is_generated_{}", trait_ident);
    let span = clash_span(option.as_ref(), entity);
    let in_module = quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label)]
        pub(super) trait #marker {}
        #[diagnostic::do_not_recommend]
        impl<T: ?Sized + #trait_ident> #marker for T {}
        pub(super) fn #check_fn<T: ?Sized + #marker>() {}
    };
    let call = quote_spanned!(span=> #module::#check_fn::<__EsT>());
    let check = quote! {
        const _: () = {
            fn __es_check<__EsT: ?Sized + #trait_ident>() {
                #call;
            }
        };
    };
    (in_module, check)
}
