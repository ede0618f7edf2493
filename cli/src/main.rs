//! The `eventsourcing` operator tool; see `eventsourcing --help` and `docs/CLI.md`.

fn main() -> std::process::ExitCode {
    eventsourcing_cli::run_main()
}
