//! One module per command.

pub(crate) mod log;
pub(crate) mod show;
pub(crate) mod stats;
pub(crate) mod streams;
pub(crate) mod transfer;
pub(crate) mod verify;
