//! The names of every attribute and option the macros understand, in one place.

use std::fmt;

use syn::{Ident, Path};

/// An attribute or option name.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Symbol(pub(crate) &'static str);

pub(crate) const EVENT: Symbol = Symbol("event");
pub(crate) const DOMAIN_EVENT: Symbol = Symbol("domain_event");
pub(crate) const SERDE: Symbol = Symbol("serde");
pub(crate) const DOC: Symbol = Symbol("doc");
pub(crate) const CFG: Symbol = Symbol("cfg");

pub(crate) const CRATE: Symbol = Symbol("crate");
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const EVENT_ENUM: Symbol = Symbol("event_enum");
pub(crate) const COMMANDS: Symbol = Symbol("commands");
pub(crate) const PRIVATE_COMMANDS: Symbol = Symbol("private_commands");
pub(crate) const CRATE_COMMANDS: Symbol = Symbol("crate_commands");
pub(crate) const SUPER_COMMANDS: Symbol = Symbol("super_commands");
pub(crate) const SNAPSHOTS: Symbol = Symbol("snapshots");
pub(crate) const SNAPSHOT_EVERY: Symbol = Symbol("snapshot_every");
pub(crate) const SNAPSHOT_VERSION: Symbol = Symbol("snapshot_version");
pub(crate) const SNAPSHOT_UPCAST: Symbol = Symbol("snapshot_upcast");
pub(crate) const VIS: Symbol = Symbol("vis");
pub(crate) const DERIVE: Symbol = Symbol("derive");

pub(crate) const ENTITY: Symbol = Symbol("entity");
pub(crate) const TOPIC: Symbol = Symbol("topic");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const ALIASES: Symbol = Symbol("aliases");
pub(crate) const UPCAST: Symbol = Symbol("upcast");
pub(crate) const CREATES: Symbol = Symbol("creates");

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0)
    }
}

/// Formats a list of symbols as "`a`, `b` or `c`" for error messages.
pub(crate) fn one_of(symbols: &[Symbol]) -> String {
    let names: Vec<String> = symbols.iter().map(|s| format!("`{s}`")).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
