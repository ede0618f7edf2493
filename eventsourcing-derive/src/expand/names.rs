//! The generated names: the command traits' names and the options that rename them.
//!
//! The event enum and the command traits are defined in the entity's own module. A hidden
//! module re-exported by a glob was tried, so that a user item named like a generated one
//! would shadow the glob and give one clear error instead of a cascade; it broke every entity
//! declared inside a function body (doctests, tests), because a module declared there cannot
//! see the function's items through `super::*`. A clash is therefore rustc's own E0428 at the
//! user's name; the options `event_enum`, `commands`, `private_commands`, `crate_commands` and
//! `super_commands` rename the generated items.

use quote::format_ident;

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
