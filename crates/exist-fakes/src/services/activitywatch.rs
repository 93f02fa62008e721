//! A fake of ActivityWatch's local REST API (aw-server, normally `http://localhost:5600`): its
//! buckets and their events, e.g. `aw-watcher-afk` (at the keyboard or not) and
//! `aw-watcher-window` (which app and window had focus).
//!
//! Written from:
//! - the REST API documentation, <https://docs.activitywatch.net/en/latest/api/rest.html> (the
//!   `/api/0/` prefix, `GET /api/0/buckets/`, `GET /api/0/buckets/<bucket_id>`, events, and "our
//!   current security consists only of not allowing non-localhost connections": no
//!   authentication);
//! - the data model in the FAQ, <https://docs.activitywatch.net/en/latest/faq.html> (every event
//!   has `timestamp` (ISO 8601), `duration` (seconds) and `data` (a JSON object));
//! - the server's published API description (Swagger, served by aw-server at `/api/`), which
//!   names `start`, `end` and `limit` for the events route and describes `GET /api/0/buckets/` as
//!   a dict from bucket id to bucket;
//! - aw-server-rust's datastore, read for the behaviour the documentation leaves out: events
//!   overlapping `[start, end]` are returned, clipped to it, newest first; `start` after `end`
//!   gives an empty list.
//!
//! # What it serves
//!
//! - `GET /api/0/info` → `{hostname, version, testing, device_id}`;
//! - `GET /api/0/buckets/` → `{"<id>": {id, name, type, client, hostname, created, data,
//!   last_updated}, ...}`;
//! - `GET /api/0/buckets/{id}` → one bucket, 404 `{"message": ...}` if unknown;
//! - `GET /api/0/buckets/{id}/events?start=..&end=..&limit=..` → `[{id, timestamp, duration,
//!   data}, ...]`, newest first. No paging: `limit` (default: all; `-1` also means all) keeps the
//!   newest events, so a client walks history by time windows.
//!
//! **Strict:** an unreadable `start`/`end` (not ISO 8601) or `limit` is 400 `{"message": ...}`;
//! an unknown bucket is 404. **Lenient:** no authentication at all, as documented (any
//! `Authorization` header is ignored, and recorded). **Faults** answer `{"message": ...}`.
//!
//! # Reading it with exist-agent (draft)
//!
//! Minutes at the keyboard per day, and minutes in a terminal:
//!
//! ```toml
//! [[source]]
//! name = "afk"
//! kind = "http"
//! url = "http://localhost:5600/api/0/buckets/aw-watcher-afk_laptop/events"
//! records = ""                                  # the reply is the array itself
//! id_field = "id"
//! date_field = "timestamp"                      # UTC: placed on the user's local day by its start
//! window = { style = "timestamps", format = "rfc3339", start = "start", end = "end", lookback_days = 1 }
//! paging = { style = "none" }
//!
//! [[source]]
//! name = "windows"
//! kind = "http"
//! url = "http://localhost:5600/api/0/buckets/aw-watcher-window_laptop/events"
//! records = ""
//! id_field = "id"
//! date_field = "timestamp"
//! window = { style = "timestamps", format = "rfc3339", start = "start", end = "end", lookback_days = 1 }
//! paging = { style = "none" }
//!
//! [[attribute]]
//! label = "At the keyboard"
//! group = "productivity"
//! value_type = "duration"
//! source = "afk"
//! where = { field = "data.status", equals = "not-afk" }
//! field = "duration"                            # seconds, fractional
//! multiply = 0.016666666666666666               # -> minutes
//! aggregate = "sum"
//!
//! [[attribute]]
//! label = "Terminal time"
//! group = "productivity"
//! value_type = "duration"
//! source = "windows"
//! where = { field = "data.app", in = ["Alacritty", "kitty", "gnome-terminal-server"] }
//! field = "duration"
//! multiply = 0.016666666666666666
//! aggregate = "sum"
//! ```
//!
//! With [`sample_laptop`] seeded and the user in `UTC`: "At the keyboard" 2026-11-19 = 190,
//! 2026-11-20 = 95; "Terminal time" 2026-11-19 = 75, 2026-11-20 = 40. An event that crosses
//! midnight counts on the day it starts unless the window clips it (the fake clips to the query
//! window, as aw-server does), which is why the agent should pull day-aligned windows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{
    json as json_response, lock, FakeServer, Fault, Faults, Layer, Params, RecordedRequest,
};

/// A bucket's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub id: String,
    /// `afkstatus`, `currentwindow`, `web.tab.current`, ...
    pub kind: String,
    pub client: String,
    pub hostname: String,
    pub created: DateTime<Utc>,
}

/// One event: `duration` seconds from `timestamp`, with free-form `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    pub duration: f64,
    pub data: Value,
}

#[derive(Default)]
struct Data {
    buckets: BTreeMap<String, (Bucket, Vec<Event>)>,
    next_id: u64,
}

type AppState = Arc<Mutex<Data>>;

/// The ActivityWatch fake. See the module documentation.
pub struct ActivityWatchFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl ActivityWatchFake {
    /// Starts the fake on `addr`, with no buckets.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState::default();
        let faults = Faults::default();
        let layer = Layer::new(faults.clone(), render_fault);
        let router = Router::new()
            .route("/api/0/info", get(info))
            .route("/api/0/buckets/", get(buckets))
            .route("/api/0/buckets/{bucket}", get(bucket))
            .route("/api/0/buckets/{bucket}/events", get(events))
            .fallback(not_found)
            .with_state(state.clone());
        let server = FakeServer::spawn(addr, router, layer.clone()).await?;
        Ok(Self {
            server,
            state,
            layer,
            faults,
        })
    }

    /// The base URL; the API is under `api/0/`.
    pub fn url(&self) -> url::Url {
        self.server.url()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.layer.recorded()
    }

    /// Faults for the next requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Creates a bucket (replacing one with the same id, events included).
    pub fn add_bucket(&self, id: &str, kind: &str, client: &str, hostname: &str) {
        let bucket = Bucket {
            id: id.to_owned(),
            kind: kind.to_owned(),
            client: client.to_owned(),
            hostname: hostname.to_owned(),
            created: DateTime::UNIX_EPOCH + Duration::days(20_000),
        };
        lock(&self.state)
            .buckets
            .insert(id.to_owned(), (bucket, Vec::new()));
    }

    /// Creates the AFK watcher's bucket for `hostname` and returns its id
    /// (`aw-watcher-afk_<hostname>`).
    pub fn add_afk_bucket(&self, hostname: &str) -> String {
        let id = format!("aw-watcher-afk_{hostname}");
        self.add_bucket(&id, "afkstatus", "aw-watcher-afk", hostname);
        id
    }

    /// Creates the window watcher's bucket for `hostname` and returns its id
    /// (`aw-watcher-window_<hostname>`).
    pub fn add_window_bucket(&self, hostname: &str) -> String {
        let id = format!("aw-watcher-window_{hostname}");
        self.add_bucket(&id, "currentwindow", "aw-watcher-window", hostname);
        id
    }

    /// Adds an event to a bucket and returns its id; `None` if there is no such bucket.
    pub fn add_event(
        &self,
        bucket: &str,
        timestamp: DateTime<Utc>,
        duration_secs: f64,
        data: Value,
    ) -> Option<u64> {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = state.next_id;
        let (_, events) = state.buckets.get_mut(bucket)?;
        events.push(Event {
            id,
            timestamp,
            duration: duration_secs,
            data,
        });
        Some(id)
    }

    /// An AFK-watcher event (`data.status` = `afk` or `not-afk`).
    pub fn add_afk(
        &self,
        bucket: &str,
        timestamp: DateTime<Utc>,
        duration_secs: f64,
        afk: bool,
    ) -> Option<u64> {
        let status = if afk { "afk" } else { "not-afk" };
        self.add_event(
            bucket,
            timestamp,
            duration_secs,
            json!({ "status": status }),
        )
    }

    /// A window-watcher event (`data.app`, `data.title`).
    pub fn add_window(
        &self,
        bucket: &str,
        timestamp: DateTime<Utc>,
        duration_secs: f64,
        app: &str,
        title: &str,
    ) -> Option<u64> {
        self.add_event(
            bucket,
            timestamp,
            duration_secs,
            json!({ "app": app, "title": title }),
        )
    }
}

/// Two days on a laptop called `laptop` (the values in the module documentation). Returns the
/// AFK and window bucket ids.
pub fn sample_laptop(fake: &ActivityWatchFake) -> (String, String) {
    let afk = fake.add_afk_bucket("laptop");
    let window = fake.add_window_bucket("laptop");
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let afk_events = [
        ("2026-11-19T08:00:00Z", 5400.0, false),
        ("2026-11-19T09:30:00Z", 1800.0, true),
        ("2026-11-19T10:00:00Z", 6000.0, false),
        ("2026-11-19T11:40:00Z", 3600.0, true),
        ("2026-11-20T09:00:00Z", 3300.0, false),
        ("2026-11-20T09:55:00Z", 600.0, true),
        ("2026-11-20T10:05:00Z", 2400.0, false),
    ];
    for (time, secs, is_afk) in afk_events {
        if let Some(t) = at(time) {
            fake.add_afk(&afk, t, secs, is_afk);
        }
    }
    let window_events = [
        ("2026-11-19T08:00:00Z", 2700.0, "Alacritty", "cargo test"),
        ("2026-11-19T08:45:00Z", 2700.0, "firefox", "Oura API docs"),
        ("2026-11-19T10:00:00Z", 1800.0, "Alacritty", "vim oura.rs"),
        ("2026-11-19T10:30:00Z", 4200.0, "code", "services.rs"),
        ("2026-11-20T09:00:00Z", 2400.0, "kitty", "git log"),
        ("2026-11-20T09:40:00Z", 900.0, "firefox", "Exist"),
    ];
    for (time, secs, app, title) in window_events {
        if let Some(t) = at(time) {
            fake.add_window(&window, t, secs, app, title);
        }
    }
    (afk, window)
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, json!({ "message": text }))
}

fn render_fault(fault: &Fault) -> Response {
    message(
        fault.status,
        fault.status.canonical_reason().unwrap_or("Error"),
    )
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found")
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn bucket_json(bucket: &Bucket, events: &[Event]) -> Value {
    let last_updated = events
        .iter()
        .map(|e| e.timestamp + Duration::milliseconds((e.duration * 1000.0) as i64))
        .max()
        .unwrap_or(bucket.created);
    json!({
        "id": bucket.id,
        "name": null,
        "type": bucket.kind,
        "client": bucket.client,
        "hostname": bucket.hostname,
        "created": ts(bucket.created),
        "data": {},
        "last_updated": ts(last_updated),
    })
}

async fn info() -> Response {
    json_response(
        StatusCode::OK,
        json!({ "hostname": "laptop", "version": "v0.13.2 (fake)", "testing": false, "device_id": "fake-device" }),
    )
}

async fn buckets(State(state): State<AppState>) -> Response {
    let state = lock(&state);
    let map: serde_json::Map<String, Value> = state
        .buckets
        .iter()
        .map(|(id, (bucket, events))| (id.clone(), bucket_json(bucket, events)))
        .collect();
    json_response(StatusCode::OK, Value::Object(map))
}

fn no_such_bucket(id: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        &format!("There's no bucket named {id}"),
    )
}

async fn bucket(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let state = lock(&state);
    match state.buckets.get(&id) {
        Some((bucket, events)) => json_response(StatusCode::OK, bucket_json(bucket, events)),
        None => no_such_bucket(&id),
    }
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            // ISO 8601 without an offset is read as UTC, like aw-server does.
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref());
    let parse = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match params.get(name) {
            None => Ok(None),
            Some(raw) => parse_time(raw)
                .map(Some)
                .ok_or_else(|| format!("Failed to parse {name}: {raw:?} is not ISO 8601")),
        }
    };
    let (start, end) = match (parse("start"), parse("end")) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(text), _) | (_, Err(text)) => return message(StatusCode::BAD_REQUEST, &text),
    };
    let limit = match params.get("limit") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return message(StatusCode::BAD_REQUEST, &format!("Invalid limit {raw:?}")),
        },
    };

    let state = lock(&state);
    let Some((_, events)) = state.buckets.get(&id) else {
        return no_such_bucket(&id);
    };
    if let (Some(start), Some(end)) = (start, end) {
        if start > end {
            return json_response(StatusCode::OK, json!([]));
        }
    }
    let mut selected: Vec<Value> = Vec::new();
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
    for event in sorted {
        if limit.is_some_and(|l| selected.len() >= l) {
            break;
        }
        let event_end =
            event.timestamp + Duration::milliseconds((event.duration * 1000.0).round() as i64);
        if start.is_some_and(|s| event_end < s) || end.is_some_and(|e| event.timestamp > e) {
            continue;
        }
        // Clip to the query window.
        let from = start.map_or(event.timestamp, |s| s.max(event.timestamp));
        let to = end.map_or(event_end, |e| e.min(event_end));
        let duration = (to - from).num_milliseconds() as f64 / 1000.0;
        selected.push(json!({
            "id": event.id,
            "timestamp": ts(from),
            "duration": duration,
            "data": event.data,
        }));
    }
    json_response(StatusCode::OK, Value::Array(selected))
}
