//! The bank accounts of [`crate::bank`] as an axum web service over the async facade
//! ([`eventsourcing::asynchronous`]): JSON in and out, HTTP statuses a client can act on.
//!
//! | request | success | errors |
//! |---|---|---|
//! | `POST /accounts` `{"owner": "Alice", "overdraft_limit": 0}` | 201, `Location: /accounts/{id}`, the account | 400, 422 |
//! | `GET /accounts/{id}` | 200, the account | 400, 404 |
//! | `POST /accounts/{id}/deposits` `{"amount": 100}` | 200, the account | 400, 404, 409, 422 |
//! | `POST /accounts/{id}/withdrawals` `{"amount": 100}` | 200, the account | 400, 404, 409, 422 |
//! | `POST /accounts/{id}/close` (`?expected_version=V`) | 200, the account | 400, 404, 409, 422 |
//! | `POST /transfers` `{"from": id, "to": id, "amount": 100}` | 200, both accounts | 400, 404, 409, 422 |
//! | `GET /events?after=N&limit=M` | 200, `{"events": [..], "last": P}` | 400 |
//! | `GET /events/stream?after=N` (or `Last-Event-ID`) | 200, server-sent events, one per stored event | 400 |
//!
//! Statuses: 400 for malformed input (bad JSON, a bad uuid, a bad query), 404 for an unknown
//! account, 409 for a concurrency conflict, 422 for a broken business rule (insufficient
//! funds, a closed account, a non-positive amount), 413 for a body or event that is too
//! large, 503 when the blocking pool is gone; every error body is
//! `{"error": "<code>", "message": "..."}`. A 500 means the store failed, never bad input.
//!
//! Commands on accounts are safe to retry on a conflict (a conflict writes nothing, and the
//! command is decided again on the fresh state), so they are retried up to
//! [`MAX_ATTEMPTS`] times before the 409. A deposit, withdrawal or closure with
//! `"expected_version": V` in its body (a closure: `?expected_version=V`) states a precondition instead: it is not retried, and
//! answers 409 at once when the account is not at version `V`.

use eventsourcing::Conflict;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use eventsourcing::asynchronous::AsyncApplication;
use eventsourcing::persistence::{PayloadContext, PersistenceError};
use eventsourcing::prelude::*;
use eventsourcing::StoredEvent;
use futures_util::stream::{self, Stream};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::bank::{transfer, Account, AccountCommands, AccountError};

/// How many times a command is tried when its save conflicts, before answering 409.
pub const MAX_ATTEMPTS: usize = 5;
/// The largest amount (in cents) a command accepts: balances stay far from `i64` overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// The longest owner name accepted, in characters.
pub const MAX_OWNER_LEN: usize = 200;
/// The most events `GET /events` returns at once (and its default).
pub const MAX_PAGE: usize = 1_000;

/// The service's shared state: the application behind its async facade.
#[derive(Debug, Clone)]
struct Service {
    app: AsyncApplication,
    poll_interval: Duration,
}

/// The service's routes over `app`; the event stream re-reads the store every second for
/// events written elsewhere, and at once after each save through `app`.
pub fn router(app: AsyncApplication) -> Router {
    router_with_poll(app, Duration::from_secs(1))
}

/// [`router`] with another poll interval for the event stream.
pub fn router_with_poll(app: AsyncApplication, poll_interval: Duration) -> Router {
    Router::new()
        .route("/accounts", post(open_account))
        .route("/accounts/{id}", get(get_account))
        .route("/accounts/{id}/deposits", post(deposit))
        .route("/accounts/{id}/withdrawals", post(withdraw))
        .route("/accounts/{id}/close", post(close))
        .route("/transfers", post(transfer_money))
        .route("/events", get(events))
        .route("/events/stream", get(event_stream))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(Service { app, poll_interval })
}

/// An error answered as `{"error": code, "message": ..}` (plus details) with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": code, "message": message.into() }),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn rule(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_broken", message)
    }

    /// The status answered.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        Self::rule(error.to_string())
    }
}

impl From<ApplicationError> for ApiError {
    fn from(error: ApplicationError) -> Self {
        match &error {
            ApplicationError::NotFound { .. } | ApplicationError::Discarded { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            ApplicationError::Conflict(Conflict {
                stream_id,
                expected,
                actual,
            }) => Self {
                status: StatusCode::CONFLICT,
                body: json!({
                    "error": "conflict",
                    "message": error.to_string(),
                    "stream_id": stream_id,
                    "expected_version": expected,
                    "actual_version": actual,
                }),
            },
            ApplicationError::Persistence(PersistenceError::LimitExceeded { .. }) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                error.to_string(),
            ),
            ApplicationError::Worker { .. } => {
                tracing::warn!(%error, "request not served");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    error.to_string(),
                )
            }
            _ => {
                // The one place a store failure is recorded: it is handled here.
                tracing::error!(%error, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; see the service's log",
                )
            }
        }
    }
}

/// A JSON body whose every rejection (syntax, wrong shape, wrong content type) is a 400 with a
/// JSON error body.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(JsonRejection::BytesRejection(rejection)) => Err(ApiError::new(
                rejection.status(),
                "bad_body",
                rejection.body_text(),
            )),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// An account id from the path; a malformed one is a 400.
struct AccountId(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for AccountId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<Uuid>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| AccountId(id))
            .map_err(|rejection: PathRejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A query string; a malformed one is a 400.
struct Query<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    owner: String,
    #[serde(default)]
    overdraft_limit: i64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountRequest {
    amount: i64,
    expected_version: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    expected_version: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferRequest {
    from: Uuid,
    to: Uuid,
    amount: i64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<u64>,
}

fn view(account: &Aggregate<Account>) -> Value {
    json!({
        "id": account.id(),
        "owner": account.owner(),
        "balance": account.balance(),
        "overdraft_limit": account.overdraft_limit(),
        "closed": account.is_closed(),
        "version": account.version(),
    })
}

fn check_amount(amount: i64) -> Result<(), ApiError> {
    if amount > MAX_AMOUNT {
        return Err(ApiError::rule(format!(
            "amount must be at most {MAX_AMOUNT}, got {amount}"
        )));
    }
    Ok(())
}

/// Balances stay within ±(`MAX_AMOUNT` × a lot): refuse what would leave `i64`.
fn check_balance(account: &Account, delta: i64) -> Result<(), ApiError> {
    match account.balance().checked_add(delta) {
        Some(_) => Ok(()),
        None => Err(ApiError::rule("the balance would overflow")),
    }
}

async fn open_account(
    State(service): State<Service>,
    Body(request): Body<OpenRequest>,
) -> Result<Response, ApiError> {
    let owner = request.owner.trim().to_owned();
    if owner.is_empty() || owner.chars().count() > MAX_OWNER_LEN {
        return Err(ApiError::rule(format!(
            "owner must have 1 to {MAX_OWNER_LEN} characters"
        )));
    }
    if !(0..=MAX_AMOUNT).contains(&request.overdraft_limit) {
        return Err(ApiError::rule(format!(
            "overdraft_limit must be between 0 and {MAX_AMOUNT}"
        )));
    }
    let account = Account::open(owner, request.overdraft_limit);
    let (account, _) = service.app.save(account).await?;
    let location = format!("/accounts/{}", account.id());
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    Ok((StatusCode::CREATED, headers, axum::Json(view(&account))).into_response())
}

async fn get_account(
    State(service): State<Service>,
    AccountId(id): AccountId,
) -> Result<axum::Json<Value>, ApiError> {
    let account: Aggregate<Account> = service.app.get(id).await?;
    Ok(axum::Json(view(&account)))
}

/// Loads an account, runs `command` on it and saves it; on a conflict, again on the fresh
/// state, up to [`MAX_ATTEMPTS`] times (once with an expected version).
async fn command<C>(
    service: &Service,
    id: Uuid,
    expected_version: Option<u64>,
    command: C,
) -> Result<axum::Json<Value>, ApiError>
where
    C: Fn(&mut Aggregate<Account>) -> Result<(), ApiError>,
{
    let attempts = if expected_version.is_some() {
        1
    } else {
        MAX_ATTEMPTS
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut account: Aggregate<Account> = service.app.get(id).await?;
        if let Some(expected) = expected_version {
            if account.version() != expected {
                return Err(ApplicationError::Conflict(Conflict {
                    stream_id: id.to_string(),
                    expected,
                    actual: account.version(),
                })
                .into());
            }
        }
        command(&mut account)?;
        match service.app.save(account).await {
            Ok((account, _)) => return Ok(axum::Json(view(&account))),
            Err(error) if error.is_conflict() && attempt < attempts => {
                tracing::debug!(%id, attempt, "conflict, retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

async fn deposit(
    State(service): State<Service>,
    AccountId(id): AccountId,
    Body(request): Body<AmountRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    check_amount(request.amount)?;
    command(&service, id, request.expected_version, |account| {
        check_balance(account, request.amount)?;
        Ok(account.deposit(request.amount)?)
    })
    .await
}

async fn withdraw(
    State(service): State<Service>,
    AccountId(id): AccountId,
    Body(request): Body<AmountRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    check_amount(request.amount)?;
    command(&service, id, request.expected_version, |account| {
        Ok(account.withdraw(request.amount)?)
    })
    .await
}

async fn close(
    State(service): State<Service>,
    AccountId(id): AccountId,
    Query(request): Query<CloseRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    command(&service, id, request.expected_version, |account| {
        Ok(account.close()?)
    })
    .await
}

async fn transfer_money(
    State(service): State<Service>,
    Body(request): Body<TransferRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    if request.from == request.to {
        return Err(ApiError::rule("cannot transfer to the same account"));
    }
    check_amount(request.amount)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let repository = service.app.repository::<Account>();
        let mut from = repository.get(request.from).await?;
        let mut to = repository.get(request.to).await?;
        check_balance(&to, request.amount)?;
        transfer(&mut from, &mut to, request.amount)?;
        // One atomic save of both accounts: both change, or neither.
        match service.app.save((from, to)).await {
            Ok(((from, to), _)) => {
                return Ok(axum::Json(json!({ "from": view(&from), "to": view(&to) })));
            }
            Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, "transfer conflicted, retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// One stored event as JSON; the payload decoded (through the application's transcoders).
fn event_json(app: &AsyncApplication, event: &StoredEvent) -> Value {
    let context = PayloadContext::event(&event.stream_id, event.version, &event.topic);
    let payload = app
        .blocking_app()
        .event_store()
        .mapper()
        .decode_payload(&event.payload, &context)
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .unwrap_or(Value::Null);
    json!({
        "position": event.position,
        "stream_id": event.stream_id,
        "version": event.version,
        "topic": event.topic,
        "event_id": event.metadata.event_id,
        "timestamp": event.metadata.timestamp.to_string(),
        "payload": payload,
    })
}

async fn events(
    State(service): State<Service>,
    Query(query): Query<EventsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let page = service
        .app
        .notification_log()
        .select(query.after.saturating_add(1), limit)
        .await?;
    let last = page.last().and_then(|e| e.position).unwrap_or(query.after);
    let events: Vec<Value> = page.iter().map(|e| event_json(&service.app, e)).collect();
    Ok(axum::Json(json!({ "events": events, "last": last })))
}

async fn event_stream(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a position"))?,
        ),
        None => None,
    };
    let after = match last_event_id.or(query.after) {
        Some(after) => after,
        // By default, only what comes from now on.
        None => service.app.notification_log().max_position().await?,
    };
    let state = (
        service,
        after,
        std::collections::VecDeque::<SseEvent>::new(),
    );
    let events = stream::unfold(state, |(service, mut after, mut ready)| async move {
        loop {
            if let Some(event) = ready.pop_front() {
                return Some((Ok(event), (service, after, ready)));
            }
            let page = service
                .app
                .notification_log()
                .wait_after(after, 100, service.poll_interval)
                .await;
            match page {
                Ok(page) => {
                    for stored in &page {
                        let position = stored.position.unwrap_or(after);
                        after = after.max(position);
                        let data = event_json(&service.app, stored).to_string();
                        ready.push_back(
                            SseEvent::default()
                                .id(position.to_string())
                                .event(stored.topic.clone())
                                .data(data),
                        );
                    }
                }
                Err(error) => {
                    // Recorded here, where it is handled: the stream ends; the client
                    // reconnects with Last-Event-ID.
                    tracing::warn!(%error, "event stream stopped");
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
