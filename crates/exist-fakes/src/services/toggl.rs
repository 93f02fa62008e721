//! A fake of the Toggl Track API v9 time entries of the signed-in user:
//! `GET /api/v9/me/time_entries`.
//!
//! Written from:
//! - the time entries reference, <https://engineering.toggl.com/docs/api/time_entries> (as
//!   republished at <https://community.toggl.com/t/time-entries-endpoints-get-timeentries/182>):
//!   `since`, `before`, `start_date`/`end_date` ("to be used with" each other, `YYYY-MM-DD` or
//!   RFC 3339, filtering on the entry's start), `meta`, `include_sharing`, and the entry fields
//!   (`id`, `workspace_id`, `project_id`, `start`, `stop`, `duration`, `description`, `tags`,
//!   `tag_ids`, `at`, `server_deleted_at`, ...);
//! - the authentication page, <https://engineering.toggl.com/docs/authentication>: HTTP Basic with
//!   `email:password` or `API_TOKEN:api_token`, and "if authentication fails, HTTP status code
//!   403 is returned";
//! - the tracking guide, <https://engineering.toggl.com/docs/tracking> (a running entry has
//!   `stop: null` and a negative `duration`; `at` is the last update, in UTC);
//! - the overview, <https://engineering.toggl.space/docs/index.html> (leaky-bucket rate limiting
//!   answered with 429, "a safe window will be 1 request per second");
//! - Toggl's API limits article, <https://support.toggl.com/en/articles/11484112-api-webhook-limits>
//!   (hourly quotas, 30 requests an hour for `/me` endpoints, answered with 402 once spent);
//! - a Toggl engineer's answer in the API docs' tracker,
//!   <https://github.com/toggl/toggl_api_docs/issues/294> ("for fetching time entries for longer
//!   period than 3 months use the reporting API").
//!
//! # What it serves
//!
//! `GET /api/v9/me/time_entries` answers a JSON array of entries, latest start first, no paging.
//!
//! - `start_date` + `end_date`: entries whose `start` is at or after `start_date` and before
//!   `end_date` (a date means midnight UTC of that day, so `end_date` is exclusive);
//! - `before`: entries starting before it; `since` (Unix seconds): entries changed (`at`) since
//!   then, **deleted ones included** (with `server_deleted_at` set), the way a sync catches up;
//! - none: entries that started in the last 9 days (the older API's documented default).
//!
//! **Strict:** wrong or missing credentials are 403; `start_date` without `end_date` (or the
//! reverse), an unparsable date, `end_date` before `start_date`, or a `start_date` more than
//! [`TogglFake::set_max_history_days`] (default 92, "3 months") before now is 400 with a JSON
//! string message. A quota set with [`TogglFake::set_hourly_quota`] answers 402 once spent, with
//! `X-Toggl-Quota-Remaining` and `X-Toggl-Quota-Resets-In` (header names as public clients read
//! them; every successful reply carries them too when a quota is set). **Faults** answer a JSON
//! string message with the injected status (429 is Toggl's documented rate-limit reply).
//!
//! # Ambiguities and how this fake decides
//!
//! - Whether a date-only `end_date` is inclusive is not documented. This fake excludes it (the
//!   stricter reading); an agent should send the day after its last day.
//! - The reference says a running entry's `duration` "should be negative, preferable -1"; older
//!   replies carried `-start_epoch`. This fake sends -1.
//! - The "3 months" history limit is a staff comment, not reference text; its exact edge is
//!   configurable.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [[source]]
//! name = "toggl"
//! kind = "http"
//! url = "https://api.track.toggl.com/api/v9/me/time_entries"
//! auth = { basic_user_env = "TOGGL_API_TOKEN", basic_password_env = "TOGGL_BASIC_PASSWORD" }
//!                                    # TOGGL_BASIC_PASSWORD=api_token (the literal word)
//! records = ""                       # the reply is the array itself (the empty JSON Pointer)
//! id_field = "id"
//! updated_field = "at"
//! date_field = "start"               # RFC 3339 with offset: placed on the user's local day
//! window = { style = "dates", start = "start_date", end = "end_date", lookback_days = 2 }
//! paging = { style = "none" }
//! every = "1h"                       # /me endpoints allow 30 requests an hour
//!
//! [[attribute]]
//! label = "Focused work"
//! group = "productivity"
//! value_type = "duration"            # minutes
//! source = "toggl"
//! where = [{ field = "duration", matches = "^[0-9]+$" }, { field = "tags", in = ["deep"] }]
//!                                    # finished entries only (a running one is -1), tagged "deep"
//! field = "duration"
//! multiply = 0.016666666666666666    # seconds -> minutes
//! aggregate = "sum"
//!
//! [[tags]]
//! source = "toggl"
//! field = "tags"
//! prefix = "toggl "
//! ```
//!
//! With [`sample_entries`] seeded and the user in `Europe/Berlin`, "Focused work" is 2026-11-18 =
//! 90, 2026-11-19 = 150 (the entry that started at 23:30 UTC on the 18th is 00:30 on the 19th in
//! Berlin), and no value for 2026-11-20 (its only deep entry is still running; `fill = "zero"`
//! would send 0); in `UTC` it is 2026-11-18 = 150, 2026-11-19 = 90. (`in` on a list field such as
//! `tags` is read here as "any element is in the list", a rule the config syntax still has to
//! fix.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{
    credentials, json as json_response, lock, Clock, Credentials, FakeServer, Fault, Faults, Layer,
    Params, RecordedRequest,
};

/// The API token the fake accepts unless told otherwise (sent as `TOKEN:api_token`).
pub const TEST_API_TOKEN: &str = "1971800d4d82861d8f2c1651fea4d212";

/// One time entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeEntry {
    pub id: i64,
    pub workspace_id: i64,
    pub project_id: Option<i64>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub billable: bool,
    pub start: DateTime<Utc>,
    /// `None` while the entry runs.
    pub stop: Option<DateTime<Utc>>,
    /// Last change; set by the fake when the entry is added or deleted.
    pub at: DateTime<Utc>,
    pub server_deleted_at: Option<DateTime<Utc>>,
}

impl TimeEntry {
    /// A finished entry from `start` lasting `seconds`.
    pub fn new(id: i64, start: DateTime<Utc>, seconds: i64, description: &str) -> Self {
        Self {
            id,
            workspace_id: 777,
            project_id: None,
            description: Some(description.to_owned()),
            tags: Vec::new(),
            billable: false,
            start,
            stop: Some(start + Duration::seconds(seconds)),
            at: start + Duration::seconds(seconds),
            server_deleted_at: None,
        }
    }

    /// A running entry, started at `start`.
    pub fn running(id: i64, start: DateTime<Utc>, description: &str) -> Self {
        Self {
            stop: None,
            at: start,
            ..Self::new(id, start, 0, description)
        }
    }

    /// The same entry with these tags.
    pub fn with_tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The same entry in this project.
    pub fn in_project(mut self, project_id: i64) -> Self {
        self.project_id = Some(project_id);
        self
    }

    fn duration(&self) -> i64 {
        match self.stop {
            Some(stop) => (stop - self.start).num_seconds(),
            None => -1,
        }
    }

    fn to_json(&self, user_id: i64) -> Value {
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        // Tag ids are stable per name: the fake has no tag table, only names.
        let tag_ids: Vec<u64> = self
            .tags
            .iter()
            .map(|t| {
                t.bytes().fold(1000u64, |h, b| {
                    h.wrapping_mul(31).wrapping_add(u64::from(b))
                })
            })
            .collect();
        json!({
            "id": self.id,
            "workspace_id": self.workspace_id,
            "wid": self.workspace_id,
            "project_id": self.project_id,
            "pid": self.project_id,
            "task_id": null,
            "tid": null,
            "billable": self.billable,
            "start": ts(self.start),
            "stop": self.stop.map(ts),
            "duration": self.duration(),
            "description": self.description,
            "tags": self.tags,
            "tag_ids": tag_ids,
            "duronly": true,
            "at": ts(self.at),
            "server_deleted_at": self.server_deleted_at.map(ts),
            "user_id": user_id,
            "uid": user_id,
            "permissions": null,
        })
    }
}

struct Data {
    tokens: Vec<String>,
    accounts: Vec<(String, String)>,
    user_id: i64,
    entries: Vec<TimeEntry>,
    max_history_days: Option<i64>,
    hourly_quota: Option<u32>,
    /// Requests counted against the quota: when each was made.
    quota_window: Vec<DateTime<Utc>>,
}

#[derive(Clone)]
struct AppState {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

/// The Toggl Track fake. See the module documentation.
pub struct TogglFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl TogglFake {
    /// Starts the fake on `addr`, accepting [`TEST_API_TOKEN`], no quota, 92 days of history.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState {
            data: Arc::new(Mutex::new(Data {
                tokens: vec![TEST_API_TOKEN.to_owned()],
                accounts: Vec::new(),
                user_id: 4242,
                entries: Vec::new(),
                max_history_days: Some(92),
                hourly_quota: None,
                quota_window: Vec::new(),
            })),
            clock: Clock::default(),
        };
        let faults = Faults::default();
        let layer = Layer::new(faults.clone(), render_fault);
        let router = Router::new()
            .route("/api/v9/me/time_entries", get(time_entries))
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

    /// The base URL; the API is under `api/v9/`.
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

    /// The fake's "now" (history limit, default window, quota window, deletion times).
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Accepts this API token as well.
    pub fn add_api_token(&self, token: &str) {
        lock(&self.state.data).tokens.push(token.to_owned());
    }

    /// Accepts `email:password` Basic credentials.
    pub fn add_account(&self, email: &str, password: &str) {
        lock(&self.state.data)
            .accounts
            .push((email.to_owned(), password.to_owned()));
    }

    /// How far back `start_date` may reach, in days (`None`: no limit).
    pub fn set_max_history_days(&self, days: Option<i64>) {
        lock(&self.state.data).max_history_days = days;
    }

    /// Requests allowed per sliding hour before 402 (`None`: unlimited).
    pub fn set_hourly_quota(&self, quota: Option<u32>) {
        let mut data = lock(&self.state.data);
        data.hourly_quota = quota;
        data.quota_window.clear();
    }

    /// Adds or replaces (by `id`) a time entry.
    pub fn add_entry(&self, entry: TimeEntry) {
        let mut data = lock(&self.state.data);
        match data.entries.iter_mut().find(|e| e.id == entry.id) {
            Some(existing) => *existing = entry,
            None => data.entries.push(entry),
        }
    }

    /// Stops a running entry at `stop` (its `at` becomes the fake's now).
    pub fn stop_entry(&self, id: i64, stop: DateTime<Utc>) {
        let now = self.state.clock.now();
        let mut data = lock(&self.state.data);
        if let Some(entry) = data.entries.iter_mut().find(|e| e.id == id) {
            entry.stop = Some(stop);
            entry.at = now;
        }
    }

    /// Deletes an entry: gone from date queries, reported by `since` with `server_deleted_at`.
    pub fn delete_entry(&self, id: i64) {
        let now = self.state.clock.now();
        let mut data = lock(&self.state.data);
        if let Some(entry) = data.entries.iter_mut().find(|e| e.id == id) {
            entry.server_deleted_at = Some(now);
            entry.at = now;
        }
    }
}

/// Time entries around 2026-11-18..20 (the values in the module documentation).
pub fn sample_entries(fake: &TogglFake) {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    let entries = [
        (
            "2026-11-18T08:00:00Z",
            5400,
            "Write the Oura fake",
            &["deep"][..],
        ),
        ("2026-11-18T11:00:00Z", 1800, "Standup", &["meeting"][..]),
        // 00:30 on the 19th in Berlin, still the 18th in UTC.
        ("2026-11-18T23:30:00Z", 3600, "Late fix", &["deep"][..]),
        ("2026-11-19T09:00:00Z", 5400, "Review", &["deep"][..]),
        ("2026-11-19T13:00:00Z", 2700, "Email", &[][..]),
    ];
    for (i, (start, seconds, description, tags)) in entries.into_iter().enumerate() {
        if let Ok(start) = at(start) {
            fake.add_entry(
                TimeEntry::new(100 + i as i64, start, seconds, description).with_tags(tags),
            );
        }
    }
    if let Ok(start) = at("2026-11-20T08:15:00Z") {
        fake.add_entry(TimeEntry::running(200, start, "Still at it").with_tags(&["deep"]));
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, Value::String(text.to_owned()))
}

fn render_fault(fault: &Fault) -> Response {
    if fault.status == StatusCode::TOO_MANY_REQUESTS {
        message(
            fault.status,
            "Too Many Requests: slow down to about one request per second.",
        )
    } else {
        message(fault.status, "Service unavailable.")
    }
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

/// A date (midnight UTC) or an RFC 3339 time.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn quota_headers(response: &mut Response, remaining: u32, resets_in: i64) {
    let headers = response.headers_mut();
    headers.insert("X-Toggl-Quota-Remaining", HeaderValue::from(remaining));
    headers.insert(
        "X-Toggl-Quota-Resets-In",
        HeaderValue::from(resets_in.max(0)),
    );
}

async fn time_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let mut data = lock(&state.data);
    let authorized = match credentials(&headers) {
        Credentials::Basic {
            user,
            password: Some(password),
        } => {
            (password == "api_token" && data.tokens.contains(&user))
                || data
                    .accounts
                    .iter()
                    .any(|(e, p)| *e == user && *p == password)
        }
        _ => false,
    };
    if !authorized {
        return message(StatusCode::FORBIDDEN, "Incorrect username and/or password");
    }

    // The quota counts authenticated requests over a sliding hour.
    let mut quota_left = None;
    if let Some(quota) = data.hourly_quota {
        let hour_ago = now - Duration::hours(1);
        data.quota_window.retain(|t| *t > hour_ago);
        let resets_in = data.quota_window.first().map_or(3600, |first| {
            (*first + Duration::hours(1) - now).num_seconds()
        });
        if data.quota_window.len() >= quota as usize {
            let mut response = message(
                StatusCode::PAYMENT_REQUIRED,
                "You have hit your hourly limit for API calls. Your quota will reset soon.",
            );
            quota_headers(&mut response, 0, resets_in);
            return response;
        }
        data.quota_window.push(now);
        quota_left = Some((quota - data.quota_window.len() as u32, resets_in));
    }

    let params = Params::from_query(query.as_deref());
    let mut response = match select(&data, &params, now) {
        Ok(entries) => {
            let body: Vec<Value> = entries.iter().map(|e| e.to_json(data.user_id)).collect();
            json_response(StatusCode::OK, Value::Array(body))
        }
        Err(text) => message(StatusCode::BAD_REQUEST, &text),
    };
    if let Some((remaining, resets_in)) = quota_left {
        quota_headers(&mut response, remaining, resets_in);
    }
    response.into_response()
}

/// The entries a query asks for, latest start first, or the 400 message.
fn select<'a>(
    data: &'a Data,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<Vec<&'a TimeEntry>, String> {
    let parse = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match params.get(name) {
            None => Ok(None),
            Some(raw) => parse_time(raw).map(Some).ok_or_else(|| {
                format!("Invalid {name}: expected YYYY-MM-DD or RFC3339, got {raw:?}")
            }),
        }
    };
    let start = parse("start_date")?;
    let end = parse("end_date")?;
    let before = parse("before")?;
    let since = match params.get("since") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .ok_or_else(|| format!("Invalid since: expected a UNIX timestamp, got {raw:?}"))?,
        ),
    };

    let mut selected: Vec<&TimeEntry> = match (start, end) {
        (Some(start), Some(end)) => {
            if end < start {
                return Err("end_date must not be earlier than start_date".to_owned());
            }
            if let Some(days) = data.max_history_days {
                if start < now - Duration::days(days) {
                    return Err(format!(
                        "start_date must not be earlier than {} (use the Reports API for older entries)",
                        (now - Duration::days(days)).date_naive()
                    ));
                }
            }
            data.entries
                .iter()
                .filter(|e| e.server_deleted_at.is_none() && e.start >= start && e.start < end)
                .collect()
        }
        (Some(_), None) => return Err("start_date must be used with end_date".to_owned()),
        (None, Some(_)) => return Err("end_date must be used with start_date".to_owned()),
        (None, None) => match (since, before) {
            (Some(since), _) => data.entries.iter().filter(|e| e.at >= since).collect(),
            (None, Some(before)) => data
                .entries
                .iter()
                .filter(|e| e.server_deleted_at.is_none() && e.start < before)
                .collect(),
            (None, None) => {
                let from = now - Duration::days(9);
                data.entries
                    .iter()
                    .filter(|e| e.server_deleted_at.is_none() && e.start >= from)
                    .collect()
            }
        },
    };
    selected.sort_by(|a, b| b.start.cmp(&a.start).then(b.id.cmp(&a.id)));
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnight_and_times_keep_their_offset() {
        assert_eq!(
            parse_time("2026-11-18"),
            DateTime::parse_from_rfc3339("2026-11-18T00:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(
            parse_time("2026-11-18T01:00:00+02:00"),
            DateTime::parse_from_rfc3339("2026-11-17T23:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(parse_time("18.11.2026"), None);
    }

    #[test]
    fn running_entries_have_minus_one_and_no_stop() {
        let start = DateTime::parse_from_rfc3339("2026-11-20T08:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let json = TimeEntry::running(1, start, "x").to_json(7);
        assert_eq!(json["duration"], -1);
        assert!(json["stop"].is_null());
        let json = TimeEntry::new(2, start, 90, "y").to_json(7);
        assert_eq!(json["duration"], 90);
        assert_eq!(json["stop"], "2026-11-20T08:16:30Z");
    }
}
