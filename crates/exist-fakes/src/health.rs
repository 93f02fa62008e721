//! A fake health-data API in the Human API style (`reference/source-sync.md`), for tests and
//! the demo, moved here from the agent so that it shares none of the agent's code: its time
//! format and its `Link` headers are written here, from the conventions, not borrowed from the
//! client that parses them.
//!
//! It is as strict as the real thing where a client could go wrong: `updated_since` and
//! `updated_before` must be `YYYYMMDDTHHmmssZ`, a closed window may span at most 31 days, a query
//! without `updated_since` sees only the last 24 hours, `limit` is at most 500. Pages carry
//! `X-Total-Count` and `Link` headers whose style varies from page to page (absolute and relative
//! targets, quoted and unquoted `rel`, one header or several) to exercise the client's parser.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Map, Value};
use url::Url;

/// The collection's path.
pub const COLLECTION_PATH: &str = "/v1/human/activities";

/// The longest closed window one query may span.
const MAX_WINDOW: TimeDelta = TimeDelta::days(31);

/// How far back a query without `updated_since` sees.
const DEFAULT_LOOKBACK: TimeDelta = TimeDelta::hours(24);

/// The largest page.
const MAX_LIMIT: usize = 500;

/// The page size when the query has no `limit`.
const DEFAULT_LIMIT: usize = 50;

/// The format of `updated_since` and `updated_before`: UTC, `YYYYMMDDTHHmmssZ`, e.g.
/// `20140110T000000Z`.
const QUERY_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Writes a time the way `updated_since` and `updated_before` take it (`20140110T000000Z`).
pub fn format_query_time(at: DateTime<Utc>) -> String {
    at.format(QUERY_TIME_FORMAT).to_string()
}

/// Reads an `updated_since`/`updated_before` value: exactly sixteen characters, eight digits,
/// `T`, six digits, `Z` (chrono alone would also take a longer year or a missing zero).
pub fn parse_query_time(text: &str) -> Option<DateTime<Utc>> {
    let shaped = text.len() == 16
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    NaiveDateTime::parse_from_str(text, QUERY_TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// A running health-data API on a local port; it stops when dropped.
pub struct HealthSandbox {
    base: Url,
    state: Arc<Mutex<SandboxState>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SandboxState {
    records: HashMap<String, Stored>,
    next_id: u64,
    token: Option<String>,
    /// Answers still to refuse with 429, and their `Retry-After` in seconds.
    rate_limited: (u32, u64),
    /// Answers still to fail, and their status.
    failing: (u32, u16),
    /// Whether pages go without `Link` headers (like APIs that only send `X-Total-Count`).
    no_links: bool,
    requests: Vec<(String, u16)>,
}

struct Stored {
    updated_at: DateTime<Utc>,
    record: Map<String, Value>,
}

/// One answer, before it becomes an HTTP response.
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Value,
}

impl Reply {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: json!({ "error": message.into() }),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

impl HealthSandbox {
    /// Starts the server on `addr` (use port 0 for a free port), on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base = Url::parse(&format!("http://{local}/"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(Mutex::new(SandboxState::default()));
        let app = Router::new()
            .route(COLLECTION_PATH, get(list))
            .with_state((Arc::clone(&state), base.clone()));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the health-data fake stopped: {e}");
            }
        });
        Ok(Self {
            base,
            state,
            server,
        })
    }

    /// The collection's URL, e.g. `http://127.0.0.1:PORT/v1/human/activities`.
    pub fn url(&self) -> Url {
        self.base
            .join(COLLECTION_PATH)
            .expect("the collection path is a valid relative URL")
    }

    /// Adds or replaces a record (by `id`, which is generated when absent) and returns its id.
    /// `updatedAt` is set to now unless the record has one; `createdAt` is kept from the record
    /// it replaces, or set to now.
    ///
    /// # Panics
    /// When `record` is not a JSON object, or its `updatedAt` is not an RFC 3339 timestamp.
    pub fn upsert(&self, record: Value) -> String {
        let Value::Object(mut record) = record else {
            panic!("a sandbox record is a JSON object, not {record}");
        };
        let now = Utc::now();
        let mut state = self.lock();
        let id = match record.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => {
                state.next_id += 1;
                format!("{:024x}", state.next_id)
            }
        };
        record.insert("id".into(), Value::String(id.clone()));
        let updated_at = match record.get("updatedAt").and_then(Value::as_str) {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|e| panic!("updatedAt {text:?} is not RFC 3339: {e}"))
                .with_timezone(&Utc),
            None => {
                record.insert("updatedAt".into(), Value::String(timestamp(now)));
                now
            }
        };
        if !record.contains_key("createdAt") {
            let created = state
                .records
                .get(&id)
                .and_then(|old| old.record.get("createdAt").cloned())
                .unwrap_or_else(|| Value::String(timestamp(now)));
            record.insert("createdAt".into(), created);
        }
        state
            .records
            .insert(id.clone(), Stored { updated_at, record });
        id
    }

    /// Deletes a record; whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().records.remove(id).is_some()
    }

    /// Requires `Authorization: Bearer <token>` from now on (`None`: no authentication).
    pub fn set_token(&self, token: Option<String>) {
        self.lock().token = token;
    }

    /// Answers the next `count` requests with 429 and `Retry-After: retry_after_secs`.
    pub fn inject_429(&self, count: u32, retry_after_secs: u64) {
        self.lock().rate_limited = (count, retry_after_secs);
    }

    /// Answers the next `count` requests with `status` (e.g. 503).
    pub fn inject_error(&self, count: u32, status: u16) {
        self.lock().failing = (count, status);
    }

    /// Sends `Link` headers (the default) or only `X-Total-Count`, like some APIs.
    pub fn set_link_headers(&self, enabled: bool) {
        self.lock().no_links = !enabled;
    }

    /// Every request so far: its path and query, and the status it got.
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, SandboxState> {
        lock(&self.state)
    }
}

impl Drop for HealthSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(state: &Mutex<SandboxState>) -> MutexGuard<'_, SandboxState> {
    // A panic elsewhere (a failing test) leaves the state usable.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn list(
    State((state, base)): State<(Arc<Mutex<SandboxState>>, Url)>,
    uri: Uri,
    headers: HeaderMap,
) -> Reply {
    let mut state = lock(&state);
    let reply = state.answer(&base, &uri, &headers, Utc::now());
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    state.requests.push((path_and_query, reply.status.as_u16()));
    reply
}

/// The query of one request, checked.
struct ListQuery {
    pairs: Vec<(String, String)>,
    since: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
    limit: usize,
    offset: usize,
    source: Option<String>,
}

impl ListQuery {
    fn parse(query: &str, now: DateTime<Utc>) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let time = |key: &str| {
            get(key)
                .map(|text| {
                    parse_query_time(text).ok_or_else(|| {
                        format!("{key} must be UTC YYYYMMDDTHHmmssZ, e.g. 20140110T000000Z, not {text:?}")
                    })
                })
                .transpose()
        };
        let since = time("updated_since")?;
        let before = time("updated_before")?;
        if let (Some(since), Some(before)) = (since, before) {
            if before - since > MAX_WINDOW {
                return Err("updated_since..updated_before spans more than 31 days; query consecutive windows of at most 31 days".into());
            }
        }
        let limit = match get("limit").map(str::parse::<usize>) {
            None => DEFAULT_LIMIT,
            Some(Ok(n @ 1..=MAX_LIMIT)) => n,
            Some(_) => return Err(format!("limit must be a number from 1 to {MAX_LIMIT}")),
        };
        let offset = get("offset")
            .map(str::parse::<usize>)
            .transpose()
            .map_err(|_| "offset must be a non-negative number".to_owned())?
            .unwrap_or(0);
        let source = get("source").map(str::to_owned);
        Ok(Self {
            since: since.unwrap_or(now - DEFAULT_LOOKBACK),
            before,
            limit,
            offset,
            source,
            pairs,
        })
    }

    /// Whether a record matches the filters.
    fn selects(&self, stored: &Stored) -> bool {
        stored.updated_at >= self.since
            && self.before.is_none_or(|before| stored.updated_at < before)
            && self.source.as_deref().is_none_or(|source| {
                stored.record.get("source").and_then(Value::as_str) == Some(source)
            })
    }

    /// This query at another offset, as a path and query.
    fn at_offset(&self, offset: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.pairs.iter().filter(|(k, _)| k != "offset") {
            query.append_pair(key, value);
        }
        query.append_pair("offset", &offset.to_string());
        format!("{COLLECTION_PATH}?{}", query.finish())
    }
}

impl SandboxState {
    fn answer(&mut self, base: &Url, uri: &Uri, headers: &HeaderMap, now: DateTime<Utc>) -> Reply {
        if let Some(token) = &self.token {
            let expected = format!("Bearer {token}");
            let given = headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            if given != Some(expected.as_bytes()) {
                return Reply::error(StatusCode::UNAUTHORIZED, "invalid or missing access token");
            }
        }
        if self.rate_limited.0 > 0 {
            self.rate_limited.0 -= 1;
            let mut reply = Reply::error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            reply
                .headers
                .push((header::RETRY_AFTER, self.rate_limited.1.to_string()));
            return reply;
        }
        if self.failing.0 > 0 {
            self.failing.0 -= 1;
            let status =
                StatusCode::from_u16(self.failing.1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Reply::error(status, "injected failure");
        }
        let query = match ListQuery::parse(uri.query().unwrap_or(""), now) {
            Ok(query) => query,
            Err(message) => return Reply::error(StatusCode::BAD_REQUEST, message),
        };
        self.page(base, &query)
    }

    fn page(&self, base: &Url, query: &ListQuery) -> Reply {
        let mut selected: Vec<&Stored> =
            self.records.values().filter(|s| query.selects(s)).collect();
        selected.sort_by(|a, b| (a.updated_at, record_id(a)).cmp(&(b.updated_at, record_id(b))));
        let total = selected.len();
        let body: Vec<Value> = selected
            .iter()
            .skip(query.offset)
            .take(query.limit)
            .map(|s| Value::Object(s.record.clone()))
            .collect();
        let mut headers = vec![(HeaderName::from_static("x-total-count"), total.to_string())];
        let links = match self.no_links {
            true => Vec::new(),
            false => links(base, query, total),
        };
        headers.extend(links.into_iter().map(|l| (header::LINK, l)));
        Reply {
            status: StatusCode::OK,
            headers,
            body: Value::Array(body),
        }
    }
}

fn record_id(stored: &Stored) -> &str {
    stored
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The `Link` header values of a page. Their style depends on the page number: even pages use
/// absolute targets, odd pages relative ones; every third page sends each link in its own
/// header; `next` carries a title with a comma and a semicolon.
fn links(base: &Url, query: &ListQuery, total: usize) -> Vec<String> {
    let limit = query.limit;
    let page = query.offset / limit;
    let target = |offset: usize| {
        let path = query.at_offset(offset);
        if page.is_multiple_of(2) {
            format!("{}{}", base.as_str().trim_end_matches('/'), path)
        } else {
            path
        }
    };
    let last = total.saturating_sub(1) / limit * limit;
    let mut entries = vec![format!("<{}>; rel=first", target(0))];
    if query.offset > 0 {
        entries.push(format!(
            "<{}>; rel=\"prev\"",
            target(query.offset.saturating_sub(limit))
        ));
    }
    if query.offset + limit < total {
        entries.push(format!(
            "<{}>; title=\"page {}, of {}; next\"; rel=\"next\"",
            target(query.offset + limit),
            page + 2,
            total.div_ceil(limit)
        ));
    }
    entries.push(format!("<{}>; rel=\"last\"", target(last)));
    if page % 3 == 1 {
        entries
    } else {
        vec![entries.join(", ")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn query_times_are_exactly_yyyymmddthhmmssz() {
        let at = Utc.with_ymd_and_hms(2014, 1, 10, 0, 0, 0).unwrap();
        assert_eq!(format_query_time(at), "20140110T000000Z");
        assert_eq!(parse_query_time("20140110T000000Z"), Some(at));
        for bad in [
            "2014-01-10T00:00:00Z",
            "20140110T000000",
            "020140110T00000Z",
            "20141310T000000Z",
            "20140110t000000Z",
            "",
        ] {
            assert_eq!(parse_query_time(bad), None, "{bad}");
        }
    }
}
