//! The generated names: the command traits' names and the options that rename them.
//!
//! The event enum and the command traits are defined in the entity's own module. A hidden
//! module re-exported by a glob was tried, so that a user item named like a generated one
//! would shadow the glob and give one clear error instead of a cascade; it broke every entity
//! declared inside a function body (doctests, tests), because a module declared there cannot
//! see the function's items through `super::*`. A clash is therefore rustc's own E0428 at the
//! user's name; the options `event_enum`, `commands`, `private_commands`, `crate_commands` and
//! `super_commands` rename the generated items.

use proc_macro2::TokenStream;
use quote::{format_ident, ToTokens};
use syn::Visibility;

use super::entity::CommandGroup;
use crate::attr::EntityOptions;

/// The name of a command group's trait: its option, or `DogCommands`, `DogPrivateCommands`,
/// `DogCrateCommands`, `DogSuperCommands`.
pub(crate) fn group_trait(
    ident: &syn::Ident,
    options: &EntityOptions,
    group: CommandGroup,
) -> syn::Ident {
    let (option, suffix) = match group {
        CommandGroup::Main => (&options.commands, "Commands"),
        CommandGroup::Private => (&options.private_commands, "PrivateCommands"),
        CommandGroup::Crate => (&options.crate_commands, "CrateCommands"),
        CommandGroup::Super => (&options.super_commands, "SuperCommands"),
    };
    option
        .clone()
        .unwrap_or_else(|| format_ident!("{}{}", ident, suffix))
}

/// The visibility of a generated item: as written (the items live in the entity's module).
pub(crate) fn inner_vis(vis: &Visibility) -> TokenStream {
    vis.to_token_stream()
}

/// As [`inner_vis`], for a visibility already in tokens.
pub(crate) fn inner_vis_tokens(vis: &TokenStream) -> TokenStream {
    vis.clone()
}

/// A type written in the entity's module, where the generated items are: unchanged.
pub(crate) fn rebase_type(ty: &syn::Type) -> syn::Type {
    ty.clone()
}

/// As [`rebase_type`], for a command's signature in its trait.
pub(crate) fn rebase_sig(sig: syn::Signature) -> syn::Signature {
    sig
}
