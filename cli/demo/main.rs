//! The embedding example: a user's own operator tool, the `eventsourcing` commands with the
//! dog school's event types, so that `show` and `verify` decode and upcast `DogEvent`s.
//!
//! ```sh
//! eventsourcing-dogs --url sqlite://dogs.db show STREAM_ID
//! ```

mod dog;

fn main() -> std::process::ExitCode {
    eventsourcing_cli::Cli::new()
        .with_events::<dog::DogEvent>()
        .run()
}
