//! A fake of WakaTime's daily summaries: `GET /api/v1/users/current/summaries`, a person's coding
//! time per day, by project, language, editor and so on.
//!
//! Written from:
//! - the API documentation, <https://wakatime.com/developers> (also served as
//!   <https://wakatime.com/api>): the `data` / `errors` / `error` reply convention, the status
//!   codes (400, 401, 403, 404, 429 "try making fewer than 10 requests per second on average over
//!   any 5 minute period", 50x), authentication with the secret API key by HTTP Basic (the key
//!   base64-encoded) or the `api_key` query parameter, OAuth Bearer tokens, and the summaries
//!   endpoint (`start`, `end`, `project`, `timezone`, `range`, the per-day `grand_total`,
//!   `projects`, `languages`, ..., `range`, and the top-level `cumulative_total`,
//!   `daily_average`, `start`, `end`);
//! - an example request and reply published for the endpoint,
//!   <https://apis.io/examples/wakatime/wakatime-list-summaries-example/> (field layout).
//!
//! # What it serves
//!
//! `GET /api/v1/users/{user}/summaries` for `user` = `current` (or the configured username),
//! one entry in `data` per day from `start` to `end` inclusive, days without coding included
//! with zeros. There is no paging: the whole range comes in one reply.
//!
//! **Auth:** `Authorization: Basic base64(api_key)` (a trailing `:` before encoding, as `curl -u
//! key:` sends, is accepted too), `?api_key=...`, or `Authorization: Bearer <oauth token>` when
//! one is configured. Anything else is 401 `{"error": ...}`.
//!
//! **Parameters:** `start` and `end` are required (`YYYY-MM-DD`; `today` and `yesterday` are
//! accepted, as public clients use them) unless `range` is given (`Today`, `Yesterday`,
//! `Last 7 Days`, `Last 7 Days from Yesterday`, `Last 14 Days`, `Last 30 Days`, `This Week`,
//! `Last Week`, `This Month`, `Last Month`). `end` before `start`, an unknown `range` or an
//! unknown IANA `timezone` is 400 `{"errors": [...]}`. `project` narrows every total to that
//! project; a range of more than 366 days is 400 too (a guard of this fake, which builds the
//! whole reply in memory). `timezone` sets the day boundaries reported in `range.start`/`range.end` (default:
//! the user's, [`WakaTimeFake::set_user_timezone`]); the seeded seconds belong to the days they
//! were seeded on.
//!
//! **Faults** answer `{"error": "..."}` with the injected status (429 is WakaTime's documented
//! rate-limit reply).
//!
//! # Ambiguities and how this fake decides
//!
//! - The documentation says "base64 encode your api key" for Basic auth; clients differ on
//!   whether a `:` follows the key. Both are accepted.
//! - "Week" ranges start on Monday here; WakaTime lets users choose the first day of the week.
//! - The published example shows `decimal` and `digital` strings next to `total_seconds`; the
//!   fake fills them, but an agent should read `total_seconds` only.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [[source]]
//! name = "wakatime"
//! kind = "http"
//! url = "https://wakatime.com/api/v1/users/current/summaries"
//! auth = { basic_user_env = "WAKATIME_API_KEY" }  # base64(key) with an empty password;
//!                                                 # or { query = "api_key", value_env = "WAKATIME_API_KEY" }
//! records = "/data"
//! date_field = "range.date"                      # the day, already in the user's timezone
//! window = { style = "dates", start = "start", end = "end", lookback_days = 2 }
//! paging = { style = "none" }
//!
//! [[attribute]]
//! template = "productive_min"                    # Exist's "productive time", in minutes
//! source = "wakatime"
//! field = "grand_total.total_seconds"
//! multiply = 0.016666666666666666                # seconds -> minutes
//! aggregate = "sum"
//! ```
//!
//! With [`sample_week`] seeded, the config above gives 2026-11-16..22 = 195, 0, 263, 72, 0, 30,
//! 148 minutes, in any timezone (WakaTime has already cut the days). Days without coding come
//! back as zeros, so the agent sends 0 for them rather than leaving them empty (the same as
//! `fill = "zero"`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::{
    credentials, hours_minutes_text, json as json_response, lock, Clock, Credentials, FakeServer,
    Fault, Faults, Layer, Params, RecordedRequest,
};

/// The secret API key the fake accepts unless told otherwise.
pub const TEST_API_KEY: &str = "waka_00000000-test-0000-0000-000000000000";

/// Seconds of coding on one day, with what they were spent on.
#[derive(Clone, Debug, PartialEq)]
pub struct CodingTime {
    pub date: NaiveDate,
    pub project: String,
    pub language: String,
    pub editor: String,
    pub operating_system: String,
    pub machine: String,
    /// `coding`, `debugging`, `building`, ...
    pub category: String,
    pub seconds: f64,
}

impl CodingTime {
    /// `seconds` of coding on `project` in `language`, in VS Code on Linux.
    pub fn new(date: NaiveDate, project: &str, language: &str, seconds: f64) -> Self {
        Self {
            date,
            project: project.to_owned(),
            language: language.to_owned(),
            editor: "VS Code".to_owned(),
            operating_system: "Linux".to_owned(),
            machine: "workstation".to_owned(),
            category: "coding".to_owned(),
            seconds,
        }
    }
}

struct Data {
    api_keys: Vec<String>,
    oauth_tokens: Vec<String>,
    username: String,
    timezone: Tz,
    entries: Vec<CodingTime>,
}

#[derive(Clone)]
struct AppState {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

/// The WakaTime fake. See the module documentation.
pub struct WakaTimeFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl WakaTimeFake {
    /// Starts the fake on `addr`, accepting [`TEST_API_KEY`], for a user in UTC.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState {
            data: Arc::new(Mutex::new(Data {
                api_keys: vec![TEST_API_KEY.to_owned()],
                oauth_tokens: Vec::new(),
                username: "test-user".to_owned(),
                timezone: Tz::UTC,
                entries: Vec::new(),
            })),
            clock: Clock::default(),
        };
        let faults = Faults::default();
        let mut layer = Layer::new(faults.clone(), render_fault);
        layer.credential_params = &["api_key"];
        let router = Router::new()
            .route("/api/v1/users/{user}/summaries", get(summaries))
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

    /// The base URL; the API is under `api/v1/`.
    pub fn url(&self) -> url::Url {
        self.server.url()
    }

    /// Every request answered so far (`api_key` values recorded as `***`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.layer.recorded()
    }

    /// Faults for the next requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The clock that decides "today" for `range` and `start=today`.
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Accepts this secret API key as well.
    pub fn add_api_key(&self, key: &str) {
        lock(&self.state.data).api_keys.push(key.to_owned());
    }

    /// Accepts this OAuth access token (`Authorization: Bearer`).
    pub fn add_oauth_token(&self, token: &str) {
        lock(&self.state.data).oauth_tokens.push(token.to_owned());
    }

    /// The user's own timezone (the default for `timezone`).
    pub fn set_user_timezone(&self, tz: Tz) {
        lock(&self.state.data).timezone = tz;
    }

    /// The username that also works in place of `current` in the path.
    pub fn set_username(&self, name: &str) {
        lock(&self.state.data).username = name.to_owned();
    }

    /// Adds coding time (added to what the day already has).
    pub fn add_coding(&self, entry: CodingTime) {
        lock(&self.state.data).entries.push(entry);
    }

    /// Shorthand: "on this day, this many seconds on this project in this language".
    pub fn add_seconds(&self, date: NaiveDate, project: &str, language: &str, seconds: f64) {
        self.add_coding(CodingTime::new(date, project, language, seconds));
    }
}

/// A week of coding, 2026-11-16 to 2026-11-22 (the values in the module documentation): two
/// projects, two languages, no coding on the 17th and the 20th.
pub fn sample_week(fake: &WakaTimeFake) {
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d);
    let entries: [(u32, &str, &str, f64); 7] = [
        (16, "exist-agent", "Rust", 9000.0),
        (16, "dotfiles", "Shell", 2700.0),
        (18, "exist-agent", "Rust", 12600.0),
        (18, "exist-agent", "TOML", 3180.0),
        (19, "dotfiles", "Shell", 4320.0),
        (21, "exist-agent", "Rust", 1800.0),
        (22, "exist-agent", "Rust", 8880.0),
    ];
    for (d, project, language, seconds) in entries {
        if let Some(date) = day(d) {
            fake.add_seconds(date, project, language, seconds);
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "error": message }))
}

fn errors(status: StatusCode, messages: &[String]) -> Response {
    json_response(status, json!({ "errors": messages }))
}

fn render_fault(fault: &Fault) -> Response {
    let message = if fault.status == StatusCode::TOO_MANY_REQUESTS {
        "Too Many Requests: make fewer than 10 requests per second on average over any 5 minute period."
    } else {
        "Service unavailable, try again later."
    };
    error(fault.status, message)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found.")
}

/// The first and last day a `range` name covers, relative to `today`.
fn named_range(name: &str, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let days_back = |n: i64| today - Duration::days(n);
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first_of_month = today.with_day(1)?;
    Some(match name {
        "Today" => (today, today),
        "Yesterday" => (days_back(1), days_back(1)),
        "Last 7 Days" => (days_back(6), today),
        "Last 7 Days from Yesterday" => (days_back(7), days_back(1)),
        "Last 14 Days" => (days_back(13), today),
        "Last 30 Days" => (days_back(29), today),
        "This Week" => (monday, today),
        "Last Week" => (monday - Duration::days(7), monday - Duration::days(1)),
        "This Month" => (first_of_month, today),
        "Last Month" => {
            let last = first_of_month.pred_opt()?;
            (last.with_day(1)?, last)
        }
        _ => return None,
    })
}

fn parse_date(raw: &str, today: NaiveDate) -> Option<NaiveDate> {
    match raw {
        "today" => Some(today),
        "yesterday" => today.pred_opt(),
        _ => NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok(),
    }
}

fn authorized(data: &Data, headers: &HeaderMap, params: &Params) -> bool {
    match credentials(headers) {
        Credentials::Basic { user, password } => {
            // base64(key), or base64(key:) as `curl -u key:` sends it.
            data.api_keys.contains(&user) && password.as_deref().is_none_or(str::is_empty)
        }
        Credentials::Bearer(token) => data.oauth_tokens.contains(&token),
        Credentials::Malformed => false,
        Credentials::None => params
            .get("api_key")
            .is_some_and(|k| data.api_keys.iter().any(|a| a == k)),
    }
}

async fn summaries(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_query(query.as_deref());
    let data = lock(&state.data);
    if !authorized(&data, &headers, &params) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: invalid or missing api key.",
        );
    }
    if user != "current" && user != data.username {
        return error(StatusCode::NOT_FOUND, "User not found.");
    }
    let tz = match params.get("timezone") {
        Some(name) => match name.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("Invalid timezone: {name}.")],
                )
            }
        },
        None => data.timezone,
    };
    let today = state.clock.now().with_timezone(&tz).date_naive();

    let (start, end) = if let Some(range) = params.get("range") {
        match named_range(range, today) {
            Some(span) => span,
            None => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("Invalid range: {range}.")],
                )
            }
        }
    } else {
        let mut problems = Vec::new();
        let start = match params.get("start") {
            Some(raw) => parse_date(raw, today).or_else(|| {
                problems.push(format!("start: invalid date {raw:?}, expected YYYY-MM-DD."));
                None
            }),
            None => {
                problems.push("start: this parameter is required.".to_owned());
                None
            }
        };
        let end = match params.get("end") {
            Some(raw) => parse_date(raw, today).or_else(|| {
                problems.push(format!("end: invalid date {raw:?}, expected YYYY-MM-DD."));
                None
            }),
            None => {
                problems.push("end: this parameter is required.".to_owned());
                None
            }
        };
        match (start, end) {
            (Some(start), Some(end)) if start <= end => (start, end),
            (Some(_), Some(_)) => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["end: must be after start.".to_owned()],
                )
            }
            _ => return errors(StatusCode::BAD_REQUEST, &problems),
        }
    };
    // The fake's own guard (one reply holds every day of the range): at most 366 days.
    if end - start > Duration::days(365) {
        return errors(
            StatusCode::BAD_REQUEST,
            &["The range is too long: this fake answers at most 366 days at once.".to_owned()],
        );
    }
    let project = params.get("project");

    let mut days = Vec::new();
    let mut total = 0.0;
    let mut date = start;
    while date <= end {
        let entries: Vec<&CodingTime> = data
            .entries
            .iter()
            .filter(|e| e.date == date && project.is_none_or(|p| e.project == p))
            .collect();
        let day_total: f64 = entries.iter().map(|e| e.seconds).sum();
        total += day_total;
        days.push(day_summary(
            date,
            tz,
            &entries,
            day_total,
            project.is_some(),
        ));
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    let day_count = days.len().max(1) as f64;
    let average = total / day_count;
    let reply = json!({
        "data": days,
        "cumulative_total": {
            "seconds": total,
            "text": hours_minutes_text(total),
            "decimal": format!("{:.2}", total / 3600.0),
            "digital": digital(total),
        },
        "daily_average": {
            "holidays": 0,
            "days_including_holidays": days.len(),
            "days_minus_holidays": days.len(),
            "seconds": average.round(),
            "text": hours_minutes_text(average),
            "seconds_including_other_language": average.round(),
            "text_including_other_language": hours_minutes_text(average),
        },
        "start": day_bounds(start, tz).0,
        "end": day_bounds(end, tz).1,
    });
    json_response(StatusCode::OK, reply)
}

/// The first and last second of a local day, as UTC timestamps the way WakaTime writes them.
fn day_bounds(date: NaiveDate, tz: Tz) -> (String, String) {
    let at = |time: NaiveTime| {
        tz.from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(time)))
    };
    let start: DateTime<Utc> = at(NaiveTime::MIN);
    let end = at(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN));
    (
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn digital(seconds: f64) -> String {
    let minutes = (seconds / 60.0).floor() as i64;
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

fn total_object(seconds: f64) -> Value {
    let minutes = (seconds / 60.0).floor() as i64;
    json!({
        "hours": minutes / 60,
        "minutes": minutes % 60,
        "total_seconds": seconds,
        "digital": digital(seconds),
        "decimal": format!("{:.2}", seconds / 3600.0),
        "text": hours_minutes_text(seconds),
    })
}

/// Totals by one dimension (project, language, ...), largest first, with percentages.
fn breakdown(entries: &[&CodingTime], key: impl Fn(&CodingTime) -> &str, day_total: f64) -> Value {
    let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
    for entry in entries {
        *by_name.entry(key(entry)).or_default() += entry.seconds;
    }
    let mut items: Vec<(&str, f64)> = by_name.into_iter().collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    Value::Array(
        items
            .into_iter()
            .map(|(name, seconds)| {
                let mut item = total_object(seconds);
                if let Value::Object(map) = &mut item {
                    map.insert("name".to_owned(), json!(name));
                    let percent = if day_total > 0.0 {
                        seconds * 100.0 / day_total
                    } else {
                        0.0
                    };
                    map.insert(
                        "percent".to_owned(),
                        json!((percent * 100.0).round() / 100.0),
                    );
                    map.insert("seconds".to_owned(), json!((seconds as i64) % 60));
                }
                item
            })
            .collect(),
    )
}

fn day_summary(
    date: NaiveDate,
    tz: Tz,
    entries: &[&CodingTime],
    day_total: f64,
    for_project: bool,
) -> Value {
    let (start, end) = day_bounds(date, tz);
    let mut summary = json!({
        "grand_total": total_object(day_total),
        "categories": breakdown(entries, |e| &e.category, day_total),
        "projects": breakdown(entries, |e| &e.project, day_total),
        "languages": breakdown(entries, |e| &e.language, day_total),
        "editors": breakdown(entries, |e| &e.editor, day_total),
        "operating_systems": breakdown(entries, |e| &e.operating_system, day_total),
        "machines": breakdown(entries, |e| &e.machine, day_total),
        "dependencies": [],
        "range": {
            "date": date.to_string(),
            "start": start,
            "end": end,
            "text": date.format("%a %b %-d %Y").to_string(),
            "timezone": tz.name(),
        },
    });
    // Branches and entities are reported only when the summary is for one project.
    if for_project {
        if let Value::Object(map) = &mut summary {
            map.insert("branches".to_owned(), json!([]));
            map.insert("entities".to_owned(), json!([]));
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn named_ranges_relative_to_a_thursday() {
        let today = d(2026, 11, 19);
        assert_eq!(
            named_range("Last 7 Days", today),
            Some((d(2026, 11, 13), today))
        );
        assert_eq!(
            named_range("Last 7 Days from Yesterday", today),
            Some((d(2026, 11, 12), d(2026, 11, 18)))
        );
        assert_eq!(
            named_range("This Week", today),
            Some((d(2026, 11, 16), today))
        );
        assert_eq!(
            named_range("Last Week", today),
            Some((d(2026, 11, 9), d(2026, 11, 15)))
        );
        assert_eq!(
            named_range("Last Month", today),
            Some((d(2026, 10, 1), d(2026, 10, 31)))
        );
        assert_eq!(named_range("last_7_days", today), None);
    }

    #[test]
    fn day_bounds_follow_the_timezone() {
        let (start, end) = day_bounds(d(2026, 11, 20), "Europe/Berlin".parse().unwrap());
        assert_eq!(start, "2026-11-19T23:00:00Z");
        assert_eq!(end, "2026-11-20T22:59:59Z");
    }
}
