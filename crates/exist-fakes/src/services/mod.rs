//! Fakes of the services people pull their own data from, each written from that service's public
//! documentation (and, where the documentation is silent, from behaviour its users have recorded
//! in public; every such choice is named in the module's doc comment).
//!
//! Servers (axum on tokio, bound to loopback by the caller):
//!
//! - [`oura`]: Oura API v2 daily activity, daily sleep and sleep periods, cursor paging;
//! - [`wakatime`]: WakaTime daily summaries;
//! - [`toggl`]: Toggl Track API v9 time entries;
//! - [`home_assistant`]: Home Assistant's REST history;
//! - [`activitywatch`]: ActivityWatch's local REST API (buckets and events);
//! - [`withings`]: Withings OAuth 2.0 and the Measure API (`getmeas`).
//!
//! Not servers:
//!
//! - [`health_auto_export`]: the JSON the iOS app Health Auto Export posts, as a typed builder;
//! - [`gadgetbridge`]: a Gadgetbridge SQLite database file with its activity-sample table.
//!
//! What every server fake shares lives here: starting and stopping a loopback server, the log of
//! requests it answered ([`RecordedRequest`], secrets never recorded), injected faults
//! ([`Faults`]) and a clock tests can move ([`Clock`]), so that "the token expired" or "today"
//! needs no sleeping.

pub mod activitywatch;
pub mod gadgetbridge;
pub mod health_auto_export;
pub mod home_assistant;
pub mod oura;
pub mod toggl;
pub mod wakatime;
pub mod withings;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use tokio::task::JoinHandle;

/// Locks a mutex, recovering the data if a panicking test thread poisoned it: the fakes' state is
/// plain data, always left consistent between statements, so a poisoned lock is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The largest request body a fake reads (only Withings takes form bodies). Bigger bodies are
/// refused with 413 rather than buffered.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A running fake: the listener's address and the task serving it. Dropping it stops the server.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and serves `router` on it, with the
    /// shared recording and fault layer in front of every route.
    pub(crate) async fn spawn(
        addr: SocketAddr,
        router: Router,
        layer: Layer,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router.layer(middleware::from_fn_with_state(layer, record_and_inject));
        let task = tokio::spawn(async move {
            // An accept error ends the fake; the test then sees connection errors, which is
            // what a dead service looks like.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    /// The base URL, `http://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> url::Url {
        // A socket address always makes a valid http URL.
        url::Url::parse(&format!("http://{}/", self.addr)).unwrap_or_else(|_| {
            unreachable!("an http URL built from a socket address always parses")
        })
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which authentication a request presented. The secret itself is never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// No credentials at all.
    None,
    /// `Authorization: Bearer ...`.
    Bearer,
    /// `Authorization: Basic ...`.
    Basic,
    /// A credential in the query string (or form body), under this parameter name.
    QueryParam(String),
    /// Some other `Authorization` scheme, named as sent (e.g. `Token`).
    Other(String),
}

/// One request a fake answered, as tests assert on it: what was asked, how it authenticated and
/// what the fake replied. Secret parameters (API keys, client secrets, codes, refresh tokens) are
/// recorded as `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-decoding left as sent (e.g. `/api/history/period/2026-11-20T00:00:00+01:00`).
    pub path: String,
    /// Query parameters in order, decoded.
    pub query: Vec<(String, String)>,
    /// Form body parameters in order (`application/x-www-form-urlencoded` bodies only).
    pub form: Vec<(String, String)>,
    /// The authentication presented.
    pub auth: AuthScheme,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of query parameter `name`.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// The first value of form parameter `name`.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A fault the next requests get instead of their normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The HTTP status to answer (5xx, 429, ...).
    pub status: StatusCode,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after: Option<u64>,
}

/// Faults queued for the next requests, shared by every server fake. Each queued fault answers
/// exactly one request (any route), in order; the body is the service's own error shape for that
/// status (see each fake's documentation).
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    /// The next `n` requests answer `status` (e.g. 500 or 503), without `Retry-After`.
    pub fn fail_next(&self, n: usize, status: StatusCode) {
        self.push(
            n,
            Fault {
                status,
                retry_after: None,
            },
        );
    }

    /// The next `n` requests answer 429 Too Many Requests with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        self.push(
            n,
            Fault {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(retry_after_secs),
            },
        );
    }

    /// Queues `n` copies of an arbitrary fault.
    pub fn push(&self, n: usize, fault: Fault) {
        let mut queue = lock(&self.0);
        queue.extend(std::iter::repeat_n(fault, n));
    }

    /// Forgets every queued fault.
    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// How many faults are still queued.
    pub fn pending(&self) -> usize {
        lock(&self.0).len()
    }

    fn take(&self) -> Option<Fault> {
        lock(&self.0).pop_front()
    }
}

/// The time as a fake sees it: the real time, shifted by tests, or frozen at a chosen instant.
/// Token lifetimes, "today" and default periods all read it, so tests can expire a token or move
/// to tomorrow without sleeping.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<Mutex<ClockMode>>);

#[derive(Clone, Copy, Debug)]
enum ClockMode {
    /// Real time plus an offset.
    Running(Duration),
    /// Always this instant (until moved).
    Frozen(DateTime<Utc>),
}

impl Default for ClockMode {
    fn default() -> Self {
        Self::Running(Duration::zero())
    }
}

impl Clock {
    /// Now, as the fake sees it.
    pub fn now(&self) -> DateTime<Utc> {
        match *lock(&self.0) {
            ClockMode::Running(offset) => Utc::now() + offset,
            ClockMode::Frozen(at) => at,
        }
    }

    /// Freezes the clock at `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *lock(&self.0) = ClockMode::Frozen(at);
    }

    /// Moves the clock forward (or back, with a negative duration), frozen or running.
    pub fn advance(&self, by: Duration) {
        let mut mode = lock(&self.0);
        *mode = match *mode {
            ClockMode::Running(offset) => ClockMode::Running(offset + by),
            ClockMode::Frozen(at) => ClockMode::Frozen(at + by),
        };
    }
}

/// Renders a fault in the service's own error shape.
pub(crate) type FaultRenderer = fn(&Fault) -> Response;

/// What the shared middleware needs from a fake: where to record, which faults to inject and how
/// the service words them, and which parameters carry secrets.
#[derive(Clone)]
pub(crate) struct Layer {
    pub(crate) requests: Arc<Mutex<Vec<RecordedRequest>>>,
    pub(crate) faults: Faults,
    pub(crate) render_fault: FaultRenderer,
    /// Query or form parameters that authenticate (recorded as [`AuthScheme::QueryParam`] when
    /// no `Authorization` header is sent) and whose values are never recorded.
    pub(crate) credential_params: &'static [&'static str],
    /// Other secret parameters, recorded as `***`.
    pub(crate) secret_params: &'static [&'static str],
}

impl Layer {
    pub(crate) fn new(faults: Faults, render_fault: FaultRenderer) -> Self {
        Self {
            requests: Arc::default(),
            faults,
            render_fault,
            credential_params: &[],
            secret_params: &[],
        }
    }

    pub(crate) fn recorded(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }
}

/// The middleware every fake runs: buffers a form body (so both it and the handler can read it),
/// answers an injected fault if one is queued, and records the request with its final status.
async fn record_and_inject(State(layer): State<Layer>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let query = parts.uri.query().map(parse_pairs).unwrap_or_default();
    let form = if is_form {
        parse_pairs_bytes(&bytes)
    } else {
        Vec::new()
    };
    let auth = auth_scheme(&parts.headers, &query, &form, layer.credential_params);
    let hidden: Vec<&str> = layer
        .credential_params
        .iter()
        .chain(layer.secret_params)
        .copied()
        .collect();
    let mut recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: redact(query, &hidden),
        form: redact(form, &hidden),
        auth,
        status: 0,
    };

    let response = match layer.faults.take() {
        Some(fault) => {
            let mut response = (layer.render_fault)(&fault);
            *response.status_mut() = fault.status;
            if let Some(secs) = fault.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    recorded.status = response.status().as_u16();
    lock(&layer.requests).push(recorded);
    response
}

fn redact(pairs: Vec<(String, String)>, hidden: &[&str]) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            if hidden.contains(&k.as_str()) {
                (k, "***".to_owned())
            } else {
                (k, v)
            }
        })
        .collect()
}

fn auth_scheme(
    headers: &HeaderMap,
    query: &[(String, String)],
    form: &[(String, String)],
    credential_params: &[&str],
) -> AuthScheme {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let scheme = value.split_whitespace().next().unwrap_or("");
        return match scheme.to_ascii_lowercase().as_str() {
            "bearer" => AuthScheme::Bearer,
            "basic" => AuthScheme::Basic,
            _ => AuthScheme::Other(scheme.to_owned()),
        };
    }
    credential_params
        .iter()
        .find(|name| first(query, name).is_some() || first(form, name).is_some())
        .map_or(AuthScheme::None, |name| {
            AuthScheme::QueryParam((*name).to_owned())
        })
}

/// Decoded `key=value` pairs of a query string or form body, in order. `+` is a space, as in
/// HTML forms, which is also how the real services' frameworks read them.
pub(crate) fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    parse_pairs_bytes(raw.as_bytes())
}

fn parse_pairs_bytes(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// Request parameters (query, or query then form body) with first-value lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn from_query(query: Option<&str>) -> Self {
        Self(query.map(parse_pairs).unwrap_or_default())
    }

    /// Query parameters followed by those of a form body (Withings reads both).
    pub(crate) fn from_query_and_form(query: Option<&str>, body: &[u8]) -> Self {
        let mut pairs = query.map(parse_pairs).unwrap_or_default();
        pairs.extend(parse_pairs_bytes(body));
        Self(pairs)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        first(&self.0, name)
    }

    /// Present, whatever its value (flags such as Home Assistant's `minimal_response`).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Credentials as presented in the `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Credentials {
    None,
    Bearer(String),
    /// Basic credentials; `password` is `None` when the decoded value has no `:` (WakaTime's
    /// base64-encoded key alone).
    Basic {
        user: String,
        password: Option<String>,
    },
    /// A header that could not be read as either (bad base64, unknown scheme, not UTF-8).
    Malformed,
}

pub(crate) fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credentials::None;
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Credentials::Bearer(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        return match decoded {
            Some(text) => match text.split_once(':') {
                Some((user, password)) => Credentials::Basic {
                    user: user.to_owned(),
                    password: Some(password.to_owned()),
                },
                None => Credentials::Basic {
                    user: text,
                    password: None,
                },
            },
            None => Credentials::Malformed,
        };
    }
    Credentials::Malformed
}

/// A JSON response with a status.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Whether a request's method is one a route accepts, for fakes that take GET and POST alike.
pub(crate) fn is_get_or_post(method: &Method) -> bool {
    method == Method::GET || method == Method::POST
}

/// Human-readable duration in the style several services use (`2 hrs 5 mins`).
pub(crate) fn hours_minutes_text(total_seconds: f64) -> String {
    let minutes_total = (total_seconds / 60.0).floor() as i64;
    let (hours, minutes) = (minutes_total / 60, minutes_total % 60);
    match (hours, minutes) {
        (0, m) => format!("{m} min{}", if m == 1 { "" } else { "s" }),
        (h, 0) => format!("{h} hr{}", if h == 1 { "" } else { "s" }),
        (h, m) => format!(
            "{h} hr{} {m} min{}",
            if h == 1 { "" } else { "s" },
            if m == 1 { "" } else { "s" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_with_and_without_a_colon() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("key123:api_token");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            credentials(&headers),
            Credentials::Basic {
                user: "key123".into(),
                password: Some("api_token".into())
            }
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("waka_abc");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            credentials(&headers),
            Credentials::Basic {
                user: "waka_abc".into(),
                password: None
            }
        );
        headers.insert(header::AUTHORIZATION, "Basic %%%".parse().unwrap());
        assert_eq!(credentials(&headers), Credentials::Malformed);
        headers.insert(header::AUTHORIZATION, "bearer tok".parse().unwrap());
        assert_eq!(credentials(&headers), Credentials::Bearer("tok".into()));
    }

    #[test]
    fn clock_freezes_and_advances() {
        let clock = Clock::default();
        let at = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(at);
        assert_eq!(clock.now(), at);
        clock.advance(Duration::hours(3));
        assert_eq!(clock.now(), at + Duration::hours(3));
    }

    #[test]
    fn faults_answer_one_request_each_in_order() {
        let faults = Faults::default();
        faults.fail_next(1, StatusCode::BAD_GATEWAY);
        faults.rate_limit_next(1, 7);
        assert_eq!(faults.pending(), 2);
        assert_eq!(
            faults.take().map(|f| f.status),
            Some(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(faults.take().and_then(|f| f.retry_after), Some(7));
        assert_eq!(faults.take(), None);
    }

    #[test]
    fn durations_read_like_the_services_write_them() {
        assert_eq!(hours_minutes_text(59.0), "0 mins");
        assert_eq!(hours_minutes_text(60.0), "1 min");
        assert_eq!(hours_minutes_text(3600.0), "1 hr");
        assert_eq!(hours_minutes_text(7500.0), "2 hrs 5 mins");
    }
}
