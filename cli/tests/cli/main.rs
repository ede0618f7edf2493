//! The `eventsourcing` binary run as a subprocess, on SQLite and PostgreSQL.

mod damage;
#[path = "../../demo/dog.rs"]
mod dog;
mod postgres;
mod sqlite;
mod support;
