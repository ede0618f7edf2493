//! A load generator for the `bank_service` example, on loopback only: N clients, each with
//! one keep-alive HTTP/1.1 connection, first deposit into accounts of their own for the
//! given time, then read them for the same time; prints requests per second and latency
//! percentiles for each phase. Bounded in time and in clients, and it stops by itself.
//!
//! ```text
//! cargo run --release --example bank_service &
//! cargo run --release --example bank_service_load -- --clients 8 --seconds 10
//! ```
//!
//! Options: `--url http://127.0.0.1:PORT` (default `http://127.0.0.1:3000`; loopback
//! addresses only), `--clients N` (1 to 64, default 8), `--seconds S` (1 to 60, default 10).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One keep-alive connection speaking just enough HTTP/1.1 for the service's JSON answers.
struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    /// Sends a request; returns the status and the body.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), Error> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        if let Some(body) = body {
            request.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line `{line}`"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, String::from_utf8(body)?))
    }
}

/// Latencies of one phase, in microseconds.
struct Phase {
    name: &'static str,
    latencies: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Phase {
    fn report(&mut self) {
        self.latencies.sort_unstable();
        let percentile = |p: usize| {
            self.latencies
                .get((self.latencies.len().saturating_sub(1)) * p / 100)
                .copied()
                .unwrap_or(0)
        };
        let count = self.latencies.len();
        #[allow(clippy::cast_precision_loss)]
        let rate = count as f64 / self.elapsed.as_secs_f64();
        println!(
            "{:<9} {:>8} requests {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  max {:>7} us  errors {}",
            self.name,
            count,
            rate,
            percentile(50),
            percentile(99),
            self.latencies.last().copied().unwrap_or(0),
            self.errors
        );
    }
}

async fn client(
    addr: SocketAddr,
    account: String,
    path: String,
    body: Option<String>,
    until: Instant,
) -> Result<(Vec<u64>, u64), Error> {
    let mut connection = Connection::open(addr).await?;
    let (mut latencies, mut errors) = (Vec::new(), 0u64);
    let method = if body.is_some() { "POST" } else { "GET" };
    let path = path.replace("{id}", &account);
    while Instant::now() < until {
        let start = Instant::now();
        let (status, _) = connection.request(method, &path, body.as_deref()).await?;
        latencies.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        if status != 200 {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}

async fn phase(
    name: &'static str,
    addr: SocketAddr,
    accounts: &[String],
    path: &str,
    body: Option<&str>,
    seconds: u64,
) -> Result<Phase, Error> {
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = accounts
        .iter()
        .map(|account| {
            tokio::spawn(client(
                addr,
                account.clone(),
                path.to_owned(),
                body.map(str::to_owned),
                until,
            ))
        })
        .collect();
    let mut result = Phase {
        name,
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors) = task.await??;
        result.latencies.extend(latencies);
        result.errors += errors;
    }
    result.elapsed = start.elapsed();
    Ok(result)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (mut url, mut clients, mut seconds) = ("http://127.0.0.1:3000".to_owned(), 8usize, 10u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--url" => url = value,
            "--clients" => clients = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if !(1..=64).contains(&clients) || !(1..=60).contains(&seconds) {
        return Err("--clients must be 1 to 64 and --seconds 1 to 60".into());
    }
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or("--url must be http://ADDRESS:PORT")?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("only loopback addresses are load-tested".into());
    }
    // One account a client, so that deposits measure saves, not conflicts.
    let mut setup = Connection::open(addr).await?;
    let mut accounts = Vec::new();
    for n in 0..clients {
        let body = format!(r#"{{"owner":"load {n}"}}"#);
        let (status, answer) = setup.request("POST", "/accounts", Some(&body)).await?;
        if status != 201 {
            return Err(format!("opening an account: {status} {answer}").into());
        }
        let id = answer
            .split(r#""id":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("no id in the answer")?
            .to_owned();
        accounts.push(id);
    }
    println!("{clients} clients, {seconds} s a phase, against {addr}");
    phase(
        "deposits",
        addr,
        &accounts,
        "/accounts/{id}/deposits",
        Some(r#"{"amount":1}"#),
        seconds,
    )
    .await?
    .report();
    phase("reads", addr, &accounts, "/accounts/{id}", None, seconds)
        .await?
        .report();
    Ok(())
}
