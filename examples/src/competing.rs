//! Competing instances of one process application: the model of `cargo run --example
//! competing` and of the multi-process tests.
//!
//! Upstream, [`Ticker`]s tick. Downstream, one [`struct@Copy`] per upstream event records which
//! stream and version it copied and which instance did it. [`run_instance`] is one OS process
//! of the deployment: it follows the upstream as a competing instance until SIGTERM or
//! Ctrl-C, printing a status line (`STATUS ...`) a few times a second.

use std::time::Duration;

use eventsourcing::persistence::BoxError;
use eventsourcing::prelude::*;
use eventsourcing::system::{
    Competing, FollowerStatus, Notification, Policy, ProcessApplication, ProcessingContext, Runner,
    Serve, Upstream,
};

/// An upstream stream: a ticker that ticks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticker {
    ticks: u64,
}

#[entity]
impl Ticker {
    /// The ticker started.
    #[event(Started)]
    pub fn start() -> Self {
        Ticker { ticks: 0 }
    }

    /// It ticked once more.
    #[event(Ticked)]
    pub fn tick(&mut self) {
        self.ticks += 1;
    }
}

/// A downstream record of one upstream event processed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Copy {
    /// The upstream stream.
    pub stream: String,
    /// The upstream version.
    pub version: u64,
    /// The instance that processed it.
    pub instance: String,
}

#[entity]
impl Copy {
    /// One upstream event was processed.
    #[event(Made)]
    pub fn make(stream: String, version: u64, instance: String) -> Self {
        Copy {
            stream,
            version,
            instance,
        }
    }
}

/// Copies every upstream event, spending `work` on each (the stand-in for a policy's real
/// work: a call to another service, say).
#[derive(Debug, Clone)]
pub struct CopyPolicy {
    /// This instance's name, written into each copy.
    pub instance: String,
    /// Time spent per event.
    pub work: Duration,
    /// Prints `WORK <position>` and `DONE <position>` around the work of each event.
    pub trace: bool,
}

impl Policy for CopyPolicy {
    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        if !event.is::<TickerEvent>() {
            return Ok(());
        }
        if self.trace {
            println!("WORK {}", event.position());
        }
        if !self.work.is_zero() {
            std::thread::sleep(self.work);
        }
        if self.trace {
            println!("DONE {}", event.position());
        }
        let mut copy = Copy::make(
            event.stream_id.clone(),
            event.version,
            self.instance.clone(),
        );
        ctx.save(&mut copy)?;
        Ok(())
    }
}

/// How one instance runs.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// The upstream store's URL.
    pub upstream_url: String,
    /// The downstream store's URL (where copies, tracking records and leases live).
    pub downstream_url: String,
    /// This instance's owner id in the leases.
    pub instance: String,
    /// Partitions of the upstream.
    pub partitions: u32,
    /// The leases' time to live.
    pub lease_ttl: Duration,
    /// Time spent per event.
    pub work: Duration,
    /// Prints the start and end of each event's work (`ES_COMPETING_TRACE`).
    pub trace: bool,
}

/// The process application of one instance.
///
/// # Errors
/// Opening either store.
pub fn process_application(
    config: &InstanceConfig,
) -> Result<ProcessApplication<CopyPolicy>, ApplicationError> {
    let upstream = Application::open(&config.upstream_url)?;
    let downstream = Application::open(&config.downstream_url)?;
    let competing = Competing::new(config.partitions)
        .owner(config.instance.clone())
        .lease_ttl(config.lease_ttl);
    let policy = CopyPolicy {
        instance: config.instance.clone(),
        work: config.work,
        trace: config.trace,
    };
    Ok(ProcessApplication::new(
        downstream,
        Upstream::application("tickers", &upstream),
        policy,
    )
    .named("copier")
    .competing(competing))
}

/// Runs one instance until SIGTERM or Ctrl-C; prints `STATUS <instance> <status>` lines
/// every 100 ms and `STOPPED <instance> <status>` at the end, after releasing its leases.
///
/// # Errors
/// Opening the stores, installing the signal handlers.
pub fn run_instance(config: &InstanceConfig) -> Result<(), Box<dyn std::error::Error>> {
    let process = process_application(config)?;
    let poll = (config.lease_ttl / 6).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let serve = Serve::new(poll).status_every(Duration::from_millis(100));
    let instance = config.instance.clone();
    let last = Runner::new().with(process).serve(serve, |status| {
        for follower in status {
            println!("STATUS {instance} {}", line(follower));
        }
    })?;
    for follower in &last {
        println!("STOPPED {} {}", config.instance, line(follower));
    }
    Ok(())
}

/// `partitions=0,3,5 members=2 fenced=0 position=17 lag=3`.
#[must_use]
pub fn line(status: &FollowerStatus) -> String {
    let held: Vec<String> = status
        .partitions
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    format!(
        "partitions={} members={} fenced={} position={} lag={}",
        held.join(","),
        status.members,
        status.fenced,
        status.position.unwrap_or_default(),
        status
            .lag
            .map_or_else(|| "-".to_owned(), |lag| lag.to_string())
    )
}

/// Reads an [`InstanceConfig`] from `ES_COMPETING_*` environment variables (upstream and
/// downstream URLs, instance, partitions, lease ttl and work in milliseconds, and `TRACE`
/// for lines around each event's work).
///
/// # Errors
/// A missing URL or a number that does not parse.
pub fn config_from_env() -> Result<InstanceConfig, String> {
    let var = |name: &str| std::env::var(format!("ES_COMPETING_{name}"));
    let number = |name: &str, default: u64| -> Result<u64, String> {
        var(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|e| format!("ES_COMPETING_{name}={v}: {e}"))
        })
    };
    Ok(InstanceConfig {
        upstream_url: var("UPSTREAM").map_err(|_| "ES_COMPETING_UPSTREAM is not set")?,
        downstream_url: var("DOWNSTREAM").map_err(|_| "ES_COMPETING_DOWNSTREAM is not set")?,
        instance: var("INSTANCE").unwrap_or_else(|_| format!("instance-{}", std::process::id())),
        partitions: u32::try_from(number("PARTITIONS", 8)?).map_err(|e| e.to_string())?,
        lease_ttl: Duration::from_millis(number("LEASE_TTL_MS", 1000)?),
        work: Duration::from_millis(number("WORK_MS", 1)?),
        trace: var("TRACE").is_ok(),
    })
}
