//! The bank accounts as a web service: axum over the async facade.
//!
//! ```text
//! cargo run --example bank_service                      # SQLite file eventsourcing.db, port 3000
//! PORT=8080 EVENTSOURCING_URL=memory: cargo run --example bank_service
//! curl -si -X POST localhost:3000/accounts -H 'content-type: application/json' -d '{"owner":"Alice"}'
//! ```
//!
//! It listens on 127.0.0.1, on the port in `PORT` (3000 by default), and stores its events
//! wherever `EVENTSOURCING_URL` points (the SQLite file `eventsourcing.db` in the working
//! directory by default). `EVENTSOURCING_MAX_BLOCKING` bounds the blocking calls running at
//! once (8 by default). The routes are listed in `eventsourcing_examples::bank_service`.

use std::net::{Ipv4Addr, SocketAddr};

use eventsourcing::asynchronous::{AsyncApplication, DEFAULT_MAX_BLOCKING};
use eventsourcing::prelude::*;
use eventsourcing_examples::bank_service::router;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not `{port}`"))?,
        Err(_) => 3000,
    };
    let max_blocking = match std::env::var("EVENTSOURCING_MAX_BLOCKING") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("EVENTSOURCING_MAX_BLOCKING must be a number, not `{n}`"))?,
        Err(_) => DEFAULT_MAX_BLOCKING,
    };
    // Opening the store is blocking work (files, connections): off the executor too.
    let app = tokio::task::spawn_blocking(Application::open_default).await??;
    let app = AsyncApplication::with_max_blocking(app, max_blocking);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!(
        "bank_service listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
