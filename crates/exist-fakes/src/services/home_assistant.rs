//! A fake of Home Assistant's REST API history: `GET /api/history/period/<timestamp>`, the state
//! changes of chosen entities (a door, a plug's power, a "person is home" tracker...).
//!
//! Written from the REST API documentation,
//! <https://developers.home-assistant.io/docs/api/rest/> (source:
//! <https://github.com/home-assistant/developers.home-assistant/blob/master/docs/api/rest.md>):
//! `Authorization: Bearer <long-lived access token>`; status codes 200, 400, 401, 404, 405;
//! `GET /api/` ("API running."); the history endpoint's optional `<timestamp>`
//! (`YYYY-MM-DDThh:mm:ssTZD`, default one day before the request), the **required**
//! `filter_entity_id` (comma separated), and the optional `end_time`, `minimal_response`,
//! `no_attributes`, `significant_changes_only`; the reply, an array with one array of state
//! objects (`entity_id`, `state` as a string, `attributes`, `last_changed`, `last_updated`) per
//! entity.
//!
//! # What it serves
//!
//! - `GET /api/` → `{"message": "API running."}` (a token check);
//! - `GET /api/history/period` and `GET /api/history/period/{timestamp}`: for each entity in
//!   `filter_entity_id` that has history, the state in effect at the period's start (reported at
//!   the start time) followed by every state recorded after the start and up to `end_time`
//!   (default: start + 1 day). Entities without states in the period are left out; the outer
//!   array follows `filter_entity_id`'s order. `minimal_response` strips every state but the
//!   first and last of each entity down to `state` and `last_changed`; `no_attributes` sends
//!   `attributes: {}`. `significant_changes_only` is accepted and changes nothing (every seeded
//!   state is treated as significant).
//!
//! States are seeded with [`HomeAssistantFake::record_state`], any string included
//! (`"unavailable"`, `"unknown"`, `"12.5"`, `"on"`). Recording the same state again with other
//! attributes moves `last_updated` but keeps `last_changed`, as Home Assistant does.
//!
//! **Strict:** a missing or wrong token is 401 with the text body `401: Unauthorized`; no
//! `filter_entity_id` is 400 `{"message": "filter_entity_id is missing"}`; a malformed entity id
//! is 400 `{"message": "Invalid filter_entity_id"}`; an unreadable timestamp or `end_time` is 400
//! `{"message": "Invalid datetime"}` / `{"message": "Invalid end_time"}`. A timestamp without an
//! offset is read in the instance's timezone ([`HomeAssistantFake::set_time_zone`], default UTC).
//! Note that a `+` in `end_time` must be percent-encoded (`%2B`): a bare `+` in a query string
//! reads as a space and the time is refused, as the real server's parser does.
//!
//! **Faults** answer `{"message": "..."}` with the injected status. Home Assistant documents no
//! rate limiting of its own.
//!
//! # Ambiguities and how this fake decides
//!
//! - The documentation does not say how the state in effect at the start is reported; this fake
//!   reports it with `last_changed`/`last_updated` set to the period's start, which is what
//!   current Home Assistant versions send, and what lets a client compute durations within the
//!   period.
//! - Which messages the 400 replies carry is not documented; the wording is this fake's.
//!
//! # Reading it with exist-agent (draft)
//!
//! A daily count of front-door openings, and hours the desk plug drew power:
//!
//! ```toml
//! [[source]]
//! name = "door"
//! kind = "http"
//! url = "http://homeassistant.local:8123/api/history/period"
//! auth = { bearer_env = "HA_TOKEN" }
//! params = { filter_entity_id = "binary_sensor.front_door", minimal_response = "", no_attributes = "" }
//! records = "/0"                      # the first (only) entity's array
//! date_field = "last_changed"         # RFC 3339 with offset: placed on the user's local day
//! window = { style = "timestamps", format = "rfc3339", start = "{path}", end = "end_time", lookback_days = 1 }
//!                                     # "{path}": the start goes in the URL path, a form the
//!                                     # window syntax still has to allow
//! paging = { style = "none" }
//!
//! [[attribute]]
//! label = "Front door opened"
//! group = "custom"                    # Exist's custom group holds booleans only,
//! value_type = "integer"              #   so in practice pick group = "home" (or similar)
//! source = "door"
//! where = { field = "state", equals = "on" }   # "off", "unavailable", "unknown" are not openings
//! aggregate = "count"
//! ```
//!
//! With [`sample_history`] seeded and the user in `Europe/Berlin`, a pull of
//! 2026-11-19T00:00:00+01:00 .. 2026-11-21T00:00:00+01:00 gives "Front door opened"
//! 2026-11-19 = 3, 2026-11-20 = 2 (the `unavailable` and `unknown` states are not counted, and
//! the start-of-period state is `off`). The plug's `sensor.desk_plug_power` history (watts, as
//! strings, `unavailable` in between) is there for a `mean` attribute: its numeric states on
//! 2026-11-19 average 61.25.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use super::{
    credentials, json as json_response, lock, Clock, Credentials, FakeServer, Fault, Faults, Layer,
    Params, RecordedRequest,
};

/// The long-lived access token the fake accepts unless told otherwise.
pub const TEST_TOKEN: &str = "ha-test-long-lived-access-token";

/// One recorded state of an entity.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRecord {
    pub entity_id: String,
    pub state: String,
    pub attributes: Map<String, Value>,
    pub last_changed: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}

struct Data {
    tokens: Vec<String>,
    time_zone: Tz,
    states: Vec<StateRecord>,
}

#[derive(Clone)]
struct AppState {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

/// The Home Assistant fake. See the module documentation.
pub struct HomeAssistantFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl HomeAssistantFake {
    /// Starts the fake on `addr`, accepting [`TEST_TOKEN`], in UTC.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState {
            data: Arc::new(Mutex::new(Data {
                tokens: vec![TEST_TOKEN.to_owned()],
                time_zone: Tz::UTC,
                states: Vec::new(),
            })),
            clock: Clock::default(),
        };
        let faults = Faults::default();
        let layer = Layer::new(faults.clone(), render_fault);
        let router = Router::new()
            .route("/api/", get(api_running))
            .route("/api/history/period", get(history_default))
            .route("/api/history/period/{timestamp}", get(history))
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

    /// The base URL; the API is under `api/`.
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

    /// The clock for the default period (the day before "now").
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Accepts this token as well.
    pub fn add_token(&self, token: &str) {
        lock(&self.state.data).tokens.push(token.to_owned());
    }

    /// The instance's timezone, for timestamps sent without an offset.
    pub fn set_time_zone(&self, tz: Tz) {
        lock(&self.state.data).time_zone = tz;
    }

    /// Records that `entity_id` had `state` from `at`, with these attributes (a JSON object, or
    /// `Value::Null` for none). States may be recorded in any order.
    pub fn record_state(&self, entity_id: &str, state: &str, at: DateTime<Utc>, attributes: Value) {
        let attributes = match attributes {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut data = lock(&self.state.data);
        // The state just before this one decides whether it is a change.
        let previous = data
            .states
            .iter()
            .filter(|s| s.entity_id == entity_id && s.last_updated < at)
            .max_by_key(|s| s.last_updated);
        let last_changed = match previous {
            Some(p) if p.state == state => p.last_changed,
            _ => at,
        };
        data.states.push(StateRecord {
            entity_id: entity_id.to_owned(),
            state: state.to_owned(),
            attributes,
            last_changed,
            last_updated: at,
        });
        data.states.sort_by_key(|s| s.last_updated);
    }
}

/// Two days of a front door and a desk plug (the values in the module documentation).
pub fn sample_history(fake: &HomeAssistantFake) {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    let door = json!({ "device_class": "door", "friendly_name": "Front door" });
    let door_states = [
        ("2026-11-18T21:00:00+01:00", "off"),
        ("2026-11-19T07:45:00+01:00", "on"),
        ("2026-11-19T07:46:00+01:00", "off"),
        ("2026-11-19T12:10:00+01:00", "on"),
        ("2026-11-19T12:12:00+01:00", "off"),
        ("2026-11-19T14:00:00+01:00", "unavailable"),
        ("2026-11-19T14:30:00+01:00", "off"),
        ("2026-11-19T23:59:00+01:00", "on"),
        ("2026-11-20T00:01:00+01:00", "off"),
        ("2026-11-20T08:00:00+01:00", "on"),
        ("2026-11-20T08:01:00+01:00", "off"),
        ("2026-11-20T09:00:00+01:00", "unknown"),
        ("2026-11-20T18:30:00+01:00", "on"),
        ("2026-11-20T18:31:00+01:00", "off"),
    ];
    for (time, state) in door_states {
        if let Ok(time) = at(time) {
            fake.record_state("binary_sensor.front_door", state, time, door.clone());
        }
    }
    let plug = json!({ "unit_of_measurement": "W", "device_class": "power", "friendly_name": "Desk plug" });
    let plug_states = [
        ("2026-11-19T08:00:00+01:00", "55.0"),
        ("2026-11-19T10:00:00+01:00", "72.5"),
        ("2026-11-19T12:00:00+01:00", "unavailable"),
        ("2026-11-19T13:00:00+01:00", "48.0"),
        ("2026-11-19T17:00:00+01:00", "69.5"),
        ("2026-11-20T09:00:00+01:00", "60.0"),
    ];
    for (time, state) in plug_states {
        if let Ok(time) = at(time) {
            fake.record_state("sensor.desk_plug_power", state, time, plug.clone());
        }
    }
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
    message(StatusCode::NOT_FOUND, "Not Found")
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "401: Unauthorized",
    )
        .into_response()
}

fn authorized(data: &Data, headers: &HeaderMap) -> bool {
    matches!(credentials(headers), Credentials::Bearer(token) if data.tokens.contains(&token))
}

async fn api_running(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&lock(&state.data), &headers) {
        return unauthorized();
    }
    message(StatusCode::OK, "API running.")
}

async fn history_default(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    answer(&state, &headers, None, query.as_deref())
}

async fn history(
    State(state): State<AppState>,
    Path(timestamp): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    answer(&state, &headers, Some(&timestamp), query.as_deref())
}

/// An ISO 8601 / RFC 3339 time; without an offset it is local to `tz`.
fn parse_datetime(raw: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw, format) {
            return tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc));
        }
    }
    None
}

/// `domain.object_id`, lower case letters, digits and underscores, as Home Assistant requires.
fn valid_entity_id(id: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match id.split_once('.') {
        Some((domain, object)) => ok(domain) && ok(object),
        None => false,
    }
}

fn answer(
    state: &AppState,
    headers: &HeaderMap,
    timestamp: Option<&str>,
    query: Option<&str>,
) -> Response {
    let data = lock(&state.data);
    if !authorized(&data, headers) {
        return unauthorized();
    }
    let start = match timestamp {
        Some(raw) => match parse_datetime(raw, data.time_zone) {
            Some(t) => t,
            None => return message(StatusCode::BAD_REQUEST, "Invalid datetime"),
        },
        None => state.clock.now() - Duration::days(1),
    };
    let params = Params::from_query(query);
    let end = match params.get("end_time") {
        Some(raw) => match parse_datetime(raw, data.time_zone) {
            Some(t) => t,
            None => return message(StatusCode::BAD_REQUEST, "Invalid end_time"),
        },
        None => start + Duration::days(1),
    };
    let Some(filter) = params
        .get("filter_entity_id")
        .filter(|f| !f.trim().is_empty())
    else {
        return message(StatusCode::BAD_REQUEST, "filter_entity_id is missing");
    };
    let entity_ids: Vec<String> = filter
        .split(',')
        .map(|id| id.trim().to_ascii_lowercase())
        .collect();
    if !entity_ids.iter().all(|id| valid_entity_id(id)) {
        return message(StatusCode::BAD_REQUEST, "Invalid filter_entity_id");
    }
    let minimal = params.has("minimal_response");
    let no_attributes = params.has("no_attributes");

    let mut reply = Vec::new();
    for entity_id in &entity_ids {
        let of_entity = || data.states.iter().filter(|s| &s.entity_id == entity_id);
        let mut states: Vec<StateRecord> = Vec::new();
        // The state in effect at the start, reported at the start.
        if let Some(initial) = of_entity().rfind(|s| s.last_updated <= start) {
            states.push(StateRecord {
                last_changed: start,
                last_updated: start,
                ..initial.clone()
            });
        }
        states.extend(
            of_entity()
                .filter(|s| s.last_updated > start && s.last_updated <= end)
                .cloned(),
        );
        if states.is_empty() || start > end {
            continue;
        }
        let last = states.len() - 1;
        let rendered: Vec<Value> = states
            .iter()
            .enumerate()
            .map(|(i, s)| render_state(s, minimal && i != 0 && i != last, no_attributes))
            .collect();
        reply.push(Value::Array(rendered));
    }
    json_response(StatusCode::OK, Value::Array(reply))
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn render_state(state: &StateRecord, minimal: bool, no_attributes: bool) -> Value {
    if minimal {
        return json!({ "state": state.state, "last_changed": timestamp(state.last_changed) });
    }
    let attributes = if no_attributes {
        Map::new()
    } else {
        state.attributes.clone()
    };
    json!({
        "entity_id": state.entity_id,
        "state": state.state,
        "attributes": attributes,
        "last_changed": timestamp(state.last_changed),
        "last_updated": timestamp(state.last_updated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_follow_the_domain_dot_object_rule() {
        assert!(valid_entity_id("sensor.desk_plug_power"));
        assert!(!valid_entity_id("sensor"));
        assert!(!valid_entity_id("Sensor.Desk"));
        assert!(!valid_entity_id("sensor.desk plug"));
    }

    #[test]
    fn naive_times_are_local_to_the_instance() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_datetime("2026-11-19T00:00:00", berlin).map(timestamp),
            Some("2026-11-18T23:00:00+00:00".to_owned())
        );
        assert_eq!(
            parse_datetime("2026-11-19T00:00:00+01:00", Tz::UTC).map(timestamp),
            Some("2026-11-18T23:00:00+00:00".to_owned())
        );
        assert_eq!(parse_datetime("2026-11-19 00:00:00 01:00", Tz::UTC), None);
    }
}
