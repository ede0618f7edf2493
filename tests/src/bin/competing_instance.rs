//! One competing instance of the copier process application, for the multi-process tests:
//! configured by `ES_COMPETING_*` variables, runs until SIGTERM (see
//! `eventsourcing_examples::competing::run_instance`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = eventsourcing_examples::competing::config_from_env()?;
    eventsourcing_examples::competing::run_instance(&config)
}
