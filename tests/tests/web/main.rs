//! The bank service example end to end, over real HTTP: its router served on an ephemeral
//! loopback port and driven by a real HTTP client (ureq), on memory, a SQLite file and
//! PostgreSQL (when configured).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventsourcing::asynchronous::AsyncApplication;
use eventsourcing::persistence::{MemoryRecorder, Storage};
use eventsourcing::Application;
use eventsourcing_examples::bank_service::router_with_poll;
use eventsourcing_tests::{fresh_postgres, fresh_sqlite};
use serde_json::{json, Value};

/// The service on `127.0.0.1:0`, on a runtime of its own; stops when dropped.
struct Server {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    fn start(storage: Arc<dyn Storage>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let app = Application::builder()
            .storage(storage)
            .build()
            .expect("application");
        // A long poll: the event stream must be woken by the save itself.
        let router = router_with_poll(AsyncApplication::new(app), Duration::from_secs(30));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        runtime.spawn(async move { axum::serve(listener, router).await });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A fresh connection per request: the server may close a kept-alive connection after
        // an error response, and a request sent on it then fails with "peer disconnected"
        // (seen once in CI), which is the connection pool's race, not the service's.
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A status and a JSON body.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value, Option<String>) {
    let mut response = agent.post(url).send_json(body).expect("request");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_json::<Value>()
        .expect("a JSON body");
    (status, body, location)
}

fn post_raw(agent: &ureq::Agent, url: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut response = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        response
            .body_mut()
            .read_json::<Value>()
            .expect("a JSON body"),
    )
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut response = agent.get(url).call().expect("request");
    let status = response.status().as_u16();
    (
        status,
        response
            .body_mut()
            .read_json::<Value>()
            .expect("a JSON body"),
    )
}

fn open(server: &Server, agent: &ureq::Agent, owner: &str, overdraft: i64) -> String {
    let (status, body, location) = post(
        agent,
        &server.url("/accounts"),
        &json!({ "owner": owner, "overdraft_limit": overdraft }),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/accounts/{id}").as_str())
    );
    id
}

fn whole_flow(storage: Arc<dyn Storage>) {
    let server = Server::start(storage);
    let agent = client();
    let alice = open(&server, &agent, "Alice", 5_000);
    let bob = open(&server, &agent, "Bob", 0);

    let (status, body, _) = post(
        &agent,
        &server.url(&format!("/accounts/{alice}/deposits")),
        &json!({ "amount": 10_000 }),
    );
    assert_eq!((status, &body["balance"]), (200, &json!(10_000)), "{body}");
    let (status, body, _) = post(
        &agent,
        &server.url(&format!("/accounts/{alice}/withdrawals")),
        &json!({ "amount": 1_000 }),
    );
    assert_eq!((status, &body["balance"]), (200, &json!(9_000)), "{body}");
    let (status, body, _) = post(
        &agent,
        &server.url("/transfers"),
        &json!({ "from": alice, "to": bob, "amount": 12_000 }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from"]["balance"], json!(-3_000));
    assert_eq!(body["to"]["balance"], json!(12_000));

    let (status, body) = get(&agent, &server.url(&format!("/accounts/{bob}")));
    assert_eq!(status, 200);
    assert_eq!(
        (&body["owner"], &body["balance"], &body["version"]),
        (&json!("Bob"), &json!(12_000), &json!(2))
    );

    // The log: 2 opened, a credit, a debit, the transfer's debit and credit.
    let (status, body) = get(&agent, &server.url("/events?after=0&limit=100"));
    assert_eq!(status, 200);
    let events = body["events"].as_array().expect("events");
    let topics: Vec<&str> = events.iter().filter_map(|e| e["topic"].as_str()).collect();
    assert_eq!(
        topics,
        [
            "Account.Opened",
            "Account.Opened",
            "Account.Credited",
            "Account.Debited",
            "Account.Debited",
            "Account.Credited"
        ]
    );
    assert_eq!(
        events[2]["payload"]["amount"],
        json!(10_000),
        "{}",
        events[2]
    );
    // The transfer's two events are one save: adjacent positions.
    let last = body["last"].as_u64().expect("last");
    let (_, page) = get(
        &agent,
        &server.url(&format!("/events?after={}&limit=2", last - 2)),
    );
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2));
    let (_, empty) = get(&agent, &server.url(&format!("/events?after={last}")));
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["last"], json!(last));
}

#[test]
fn the_whole_flow_in_memory() {
    whole_flow(Arc::new(MemoryRecorder::new()));
}

#[test]
fn the_whole_flow_on_sqlite() {
    whole_flow(fresh_sqlite("web-flow"));
}

#[test]
fn the_whole_flow_on_postgres() {
    if let Some(storage) = fresh_postgres("web::the_whole_flow_on_postgres") {
        whole_flow(storage);
    }
}

#[test]
fn each_error_status() {
    let server = Server::start(Arc::new(MemoryRecorder::new()));
    let agent = client();
    let alice = open(&server, &agent, "Alice", 0);
    let bob = open(&server, &agent, "Bob", 0);
    let unknown = eventsourcing::Uuid::now_v7();
    let deposits = server.url(&format!("/accounts/{alice}/deposits"));

    // 404: an unknown account, for reads, commands and transfers; an unknown route.
    assert_eq!(
        get(&agent, &server.url(&format!("/accounts/{unknown}"))).0,
        404
    );
    let (status, body, _) = post(
        &agent,
        &server.url(&format!("/accounts/{unknown}/deposits")),
        &json!({ "amount": 1 }),
    );
    assert_eq!((status, &body["error"]), (404, &json!("not_found")));
    let (status, _, _) = post(
        &agent,
        &server.url("/transfers"),
        &json!({ "from": alice, "to": unknown, "amount": 1 }),
    );
    assert_eq!(status, 404);
    assert_eq!(get(&agent, &server.url("/nowhere")).0, 404);

    // 422: broken business rules.
    for (url, body) in [
        (
            server.url(&format!("/accounts/{alice}/withdrawals")),
            json!({ "amount": 1 }),
        ),
        (deposits.clone(), json!({ "amount": 0 })),
        (deposits.clone(), json!({ "amount": -5 })),
        (deposits.clone(), json!({ "amount": i64::MAX })),
        (
            server.url("/transfers"),
            json!({ "from": alice, "to": bob, "amount": 1 }),
        ),
        (
            server.url("/transfers"),
            json!({ "from": alice, "to": alice, "amount": 1 }),
        ),
        (server.url("/accounts"), json!({ "owner": "  " })),
        (
            server.url("/accounts"),
            json!({ "owner": "x", "overdraft_limit": -1 }),
        ),
    ] {
        let (status, response, _) = post(&agent, &url, &body);
        assert_eq!(status, 422, "{url} {body}: {response}");
        assert_eq!(response["error"], json!("rule_broken"), "{response}");
    }
    // A closed account refuses deposits; closing twice is refused too.
    let closed = open(&server, &agent, "Carol", 0);
    let (status, _, _) = post(
        &agent,
        &server.url(&format!("/accounts/{closed}/close")),
        &json!(null),
    );
    assert_eq!(status, 200);
    let (status, body, _) = post(
        &agent,
        &server.url(&format!("/accounts/{closed}/deposits")),
        &json!({ "amount": 1 }),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("closed")));

    // 400: malformed input, never a 500.
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", r#"{"amount": "ten"}"#),
        ("application/json", r#"{"amount": 1.5}"#),
        ("application/json", r#"{"amount": 99999999999999999999999}"#),
        ("application/json", r#"{"amount": 1, "extra": true}"#),
        ("application/json", r#"[]"#),
        ("application/json", ""),
        ("text/plain", r#"{"amount": 1}"#),
    ] {
        let (status, response) = post_raw(&agent, &deposits, content_type, body);
        assert_eq!(status, 400, "{content_type} {body}: {response}");
        assert_eq!(response["error"], json!("bad_request"), "{response}");
    }
    let (status, response, _) = post(
        &agent,
        &server.url("/accounts/not-a-uuid/deposits"),
        &json!({ "amount": 1 }),
    );
    assert_eq!((status, &response["error"]), (400, &json!("bad_request")));
    assert_eq!(get(&agent, &server.url("/accounts/123")).0, 400);
    assert_eq!(get(&agent, &server.url("/events?after=-1")).0, 400);
    assert_eq!(get(&agent, &server.url("/events?limit=0")).0, 400);
    assert_eq!(get(&agent, &server.url("/events?limit=100000")).0, 400);
    assert_eq!(get(&agent, &server.url("/events?after=x")).0, 400);
    let (status, _, _) = post(
        &agent,
        &server.url("/transfers"),
        &json!({ "from": "nope", "to": bob, "amount": 1 }),
    );
    assert_eq!(status, 400);

    // 409: a stated precondition that no longer holds is not retried.
    let (status, body, _) = post(
        &agent,
        &deposits,
        &json!({ "amount": 1, "expected_version": 7 }),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], json!("conflict"));
    assert_eq!(
        (&body["expected_version"], &body["actual_version"]),
        (&json!(7), &json!(1))
    );
    let (status, body, _) = post(
        &agent,
        &deposits,
        &json!({ "amount": 1, "expected_version": 1 }),
    );
    assert_eq!((status, &body["version"]), (200, &json!(2)), "{body}");

    // 413: a body past axum's limit (2 MiB). Sent raw, one byte past the limit: the server
    // reads that much, refuses, and closes; a client still writing would see a broken pipe.
    let size = 2 * 1024 * 1024 + 1;
    let mut raw = std::net::TcpStream::connect(server.addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        raw,
        "POST /accounts HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {size}\r\nconnection: close\r\n\r\n",
        server.addr,
    )
    .expect("write");
    raw.write_all(&vec![b' '; size]).expect("write the body");
    let mut status_line = String::new();
    BufReader::new(raw)
        .read_line(&mut status_line)
        .expect("read");
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

/// 16 concurrent random transfers between 4 accounts: each one atomic, conflicts retried, so
/// the sum of balances is conserved and every transfer accounted for.
fn concurrent_transfers(storage: Arc<dyn Storage>) {
    let server = Server::start(storage);
    let agent = client();
    let accounts: Vec<String> = (0..4)
        .map(|i| {
            let id = open(&server, &agent, &format!("owner {i}"), 1_000_000);
            let (status, _, _) = post(
                &agent,
                &server.url(&format!("/accounts/{id}/deposits")),
                &json!({ "amount": 1_000 }),
            );
            assert_eq!(status, 200);
            id
        })
        .collect();
    let accounts = Arc::new(accounts);
    let server = Arc::new(server);
    let handles: Vec<_> = (0..16u64)
        .map(|n| {
            let (accounts, server) = (Arc::clone(&accounts), Arc::clone(&server));
            std::thread::spawn(move || {
                let client = client();
                // A small deterministic pseudo-random choice per thread.
                let mut seed = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut next = |m: u64| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    usize::try_from(seed % m).expect("small")
                };
                let from = next(4);
                let to = (from + 1 + next(3)) % 4;
                let amount = 1 + next(500);
                let (status, body, _) = post(
                    &client,
                    &server.url("/transfers"),
                    &json!({ "from": accounts[from], "to": accounts[to], "amount": amount }),
                );
                (status, body)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        let (status, body) = handle.join().expect("client thread");
        assert!(status == 200 || status == 409, "{status} {body}");
        if status == 409 {
            assert_eq!(body["error"], json!("conflict"), "{body}");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        ok >= 8,
        "most transfers succeed after retries: {statuses:?}"
    );
    let (mut sum, mut versions) = (0i64, 0u64);
    for id in accounts.iter() {
        let (status, body) = get(&agent, &server.url(&format!("/accounts/{id}")));
        assert_eq!(status, 200);
        sum += body["balance"].as_i64().expect("balance");
        versions += body["version"].as_u64().expect("version");
    }
    assert_eq!(sum, 4_000, "the sum of balances is conserved");
    // Each account: opened and credited; each successful transfer adds two events.
    assert_eq!(versions, 8 + 2 * u64::try_from(ok).expect("small"));
}

#[test]
fn sixteen_concurrent_transfers_conserve_the_sum_in_memory() {
    concurrent_transfers(Arc::new(MemoryRecorder::new()));
}

#[test]
fn sixteen_concurrent_transfers_conserve_the_sum_on_sqlite() {
    concurrent_transfers(fresh_sqlite("web-transfers"));
}

#[test]
fn sixteen_concurrent_transfers_conserve_the_sum_on_postgres() {
    if let Some(storage) = fresh_postgres("web::sixteen_concurrent_transfers_conserve_the_sum") {
        concurrent_transfers(storage);
    }
}

/// The SSE stream delivers an event saved by another request, woken by the save (the poll
/// interval is 30 s), and resumes after `Last-Event-ID`.
#[test]
fn the_event_stream_receives_events_saved_by_another_request() {
    let server = Server::start(Arc::new(MemoryRecorder::new()));
    let agent = client();
    let alice = open(&server, &agent, "Alice", 0);
    let stream = agent
        .get(&server.url("/events/stream"))
        .header("accept", "text/event-stream")
        .call()
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(stream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream")));
    let mut lines = BufReader::new(stream.into_body().into_reader()).lines();
    let started = std::time::Instant::now();
    let (status, _, _) = post(
        &agent,
        &server.url(&format!("/accounts/{alice}/deposits")),
        &json!({ "amount": 42 }),
    );
    assert_eq!(status, 200);
    let mut event = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        if line.is_empty() && !event.is_empty() {
            break;
        }
        if !line.starts_with(':') && !line.is_empty() {
            event.push(line);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the save"
    );
    let field = |name: &str| {
        event
            .iter()
            .find_map(|line| line.strip_prefix(name))
            .map(str::to_owned)
    };
    assert_eq!(field("event: ").as_deref(), Some("Account.Credited"));
    assert_eq!(field("id: ").as_deref(), Some("2"));
    let data: Value = serde_json::from_str(&field("data: ").expect("data")).expect("json");
    assert_eq!(data["payload"]["amount"], json!(42));
    assert_eq!(data["stream_id"], json!(alice));

    // Reconnecting after position 1 replays position 2 first.
    let resumed = agent
        .get(&server.url("/events/stream"))
        .header("last-event-id", "1")
        .call()
        .expect("stream");
    let first = BufReader::new(resumed.into_body().into_reader())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("id: "));
    assert_eq!(first.as_deref(), Some("id: 2"));
    let bad = agent
        .get(&server.url("/events/stream"))
        .header("last-event-id", "yesterday")
        .call()
        .expect("request");
    assert_eq!(bad.status().as_u16(), 400);
}
