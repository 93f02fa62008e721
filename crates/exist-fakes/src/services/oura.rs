//! A fake of the Oura API v2 (`/v2/usercollection/...`): daily activity, daily sleep and sleep
//! periods, as the Oura ring's owners read them with a personal access token.
//!
//! Written from:
//! - the API reference and its OpenAPI document, <https://cloud.ouraring.com/v2/docs> and
//!   <https://cloud.ouraring.com/v2/static/json/openapi-1.35.json> (paths, `start_date`,
//!   `end_date`, `next_token`, record fields, 400/401/403/429 meanings);
//! - the error-handling page, <https://cloud.ouraring.com/docs/error-handling> (error bodies
//!   carry `status`, `title` and optionally `detail`);
//! - the authentication page, <https://cloud.ouraring.com/docs/authentication>
//!   (`Authorization: Bearer <token>`, personal access tokens).
//!
//! # What it serves
//!
//! | route | records |
//! |---|---|
//! | `GET /v2/usercollection/daily_activity` | [`DailyActivity`] (`steps`, `active_calories`, `contributors`, ...) |
//! | `GET /v2/usercollection/daily_sleep` | [`DailySleep`] (`score`, `contributors`) |
//! | `GET /v2/usercollection/sleep` | [`SleepPeriod`] (durations in seconds, `bedtime_start`/`_end`) |
//!
//! Each answers `{"data": [...], "next_token": null | "..."}`. A record belongs to the range when
//! `start_date <= day <= end_date`. Pages hold [`OuraFake::set_page_size`] records (default 50);
//! `next_token` is opaque and must be sent back as the `next_token` query parameter, with or
//! without the dates (the token remembers the window).
//!
//! **Strict:** a missing or unknown Bearer token is 401; a date that is neither `YYYY-MM-DD` nor
//! an RFC 3339 timestamp, `start_date` after `end_date`, or a `next_token` this fake did not issue
//! (or issued for another collection) is 400. **Lenient, as documented:** both dates are optional
//! (`end_date` defaults to today by [`OuraFake::clock`], `start_date` to the day before
//! `end_date`); a timestamp is read as its date.
//!
//! **Faults** ([`OuraFake::faults`]) answer in Oura's error shape. Oura documents 429 ("Request
//! Rate Limit Exceeded", 5000 requests per 5 minutes) without saying whether it sends
//! `Retry-After`; use `rate_limit_next` to test with one, or `push` a 429 fault without.
//!
//! # Ambiguities and how this fake decides
//!
//! - The reference does not say whether `end_date` is inclusive. This fake includes it (the
//!   natural reading). Users have reported that the real service filters daily collections by
//!   each record's `timestamp` (so a date-only `end_date` can miss that day) and treats
//!   `start_date` as exclusive for `sleep`; an agent that re-pulls a few days back
//!   (`lookback_days`) and ends its window a day late is safe against both.
//! - The page size is not documented; tests set it small to exercise paging.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [[source]]
//! name = "oura-activity"
//! kind = "http"
//! url = "https://api.ouraring.com/v2/usercollection/daily_activity"
//! auth = { bearer_env = "OURA_TOKEN" }
//! records = "/data"
//! id_field = "id"
//! date_field = "day"                       # a date: no timezone conversion
//! window = { style = "dates", start = "start_date", end = "end_date", lookback_days = 3 }
//! paging = { style = "cursor", token = "/next_token", param = "next_token" }
//!
//! [[source]]
//! name = "oura-sleep"
//! kind = "http"
//! url = "https://api.ouraring.com/v2/usercollection/sleep"
//! auth = { bearer_env = "OURA_TOKEN" }
//! records = "/data"
//! id_field = "id"
//! date_field = "day"                       # Oura's own day: the day the sleep ended
//! window = { style = "dates", start = "start_date", end = "end_date", lookback_days = 3 }
//! paging = { style = "cursor", token = "/next_token", param = "next_token" }
//!
//! [[attribute]]
//! template = "steps"
//! source = "oura-activity"
//! field = "steps"
//! aggregate = "sum"
//!
//! [[attribute]]
//! template = "active_energy"
//! source = "oura-activity"
//! field = "active_calories"
//! aggregate = "sum"
//!
//! [[attribute]]
//! label = "Oura activity: stay active"
//! group = "activity"
//! value_type = "integer"
//! source = "oura-activity"
//! field = "contributors.stay_active"       # a dotted path into the nested object
//! aggregate = "last"
//!
//! [[attribute]]
//! template = "sleep"                       # Exist's sleep is in minutes
//! source = "oura-sleep"
//! where = { field = "type", equals = "long_sleep" }   # naps are their own periods
//! field = "total_sleep_duration"           # seconds
//! multiply = 0.016666666666666666          # seconds -> minutes
//! aggregate = "sum"
//! ```
//!
//! With [`sample_week`] seeded (any timezone: Oura's `day` is already the user's day) the
//! config above gives `steps` 2026-11-16..22 = 8123, 10456, 4302, 12001, 7777, 9050, 6100;
//! `active_energy` = 402, 515, 188, 640, 377, 451, 295; and `sleep` (minutes, the 25-minute nap
//! on 2026-11-20 excluded by `where`) = 441, 402, 465, 388, 420, 452, 396.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    credentials, json as json_response, lock, Clock, Credentials, FakeServer, Fault, Faults, Layer,
    Params, RecordedRequest,
};

/// The personal access token the fake accepts unless told otherwise.
pub const TEST_TOKEN: &str = "oura-test-personal-access-token";

/// Contributors to the activity score (each 1..=100).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityContributors {
    pub meet_daily_targets: u8,
    pub move_every_hour: u8,
    pub recovery_time: u8,
    pub stay_active: u8,
    pub training_frequency: u8,
    pub training_volume: u8,
}

impl Default for ActivityContributors {
    fn default() -> Self {
        Self {
            meet_daily_targets: 80,
            move_every_hour: 90,
            recovery_time: 100,
            stay_active: 75,
            training_frequency: 85,
            training_volume: 90,
        }
    }
}

/// A sample series (`met`): `items` at `interval` seconds from `timestamp`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub interval: f64,
    pub items: Vec<Option<f64>>,
    pub timestamp: String,
}

/// One `daily_activity` document: a day that starts at 4 a.m. local time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyActivity {
    pub id: String,
    pub day: NaiveDate,
    pub score: Option<u8>,
    pub active_calories: i64,
    pub average_met_minutes: f64,
    pub class_5_min: Option<String>,
    pub contributors: ActivityContributors,
    pub equivalent_walking_distance: i64,
    pub high_activity_met_minutes: i64,
    pub high_activity_time: i64,
    pub inactivity_alerts: i64,
    pub low_activity_met_minutes: i64,
    pub low_activity_time: i64,
    pub medium_activity_met_minutes: i64,
    pub medium_activity_time: i64,
    pub met: Sample,
    pub meters_to_target: i64,
    pub non_wear_time: i64,
    pub resting_time: i64,
    pub sedentary_met_minutes: i64,
    pub sedentary_time: i64,
    pub steps: i64,
    pub target_calories: i64,
    pub target_meters: i64,
    /// The day's start in the user's local time, with its offset.
    pub timestamp: String,
    pub total_calories: i64,
}

impl DailyActivity {
    /// A plausible day with these steps and active calories, in UTC; change any field after.
    pub fn new(day: NaiveDate, steps: i64, active_calories: i64) -> Self {
        Self::in_offset(
            day,
            steps,
            active_calories,
            FixedOffset::east_opt(0).unwrap_or_else(utc),
        )
    }

    /// As [`DailyActivity::new`], with the `timestamp` in the user's UTC offset.
    pub fn in_offset(
        day: NaiveDate,
        steps: i64,
        active_calories: i64,
        offset: FixedOffset,
    ) -> Self {
        let timestamp = local_timestamp(day, 4, offset);
        Self {
            id: document_id("activity", day),
            day,
            score: Some(82),
            active_calories,
            average_met_minutes: 1.5,
            class_5_min: None,
            contributors: ActivityContributors::default(),
            // Roughly 0.75 m a step.
            equivalent_walking_distance: steps * 3 / 4,
            high_activity_met_minutes: 0,
            high_activity_time: 0,
            inactivity_alerts: 0,
            low_activity_met_minutes: 120,
            low_activity_time: 9000,
            medium_activity_met_minutes: 60,
            medium_activity_time: 1800,
            met: Sample {
                interval: 60.0,
                items: Vec::new(),
                timestamp: timestamp.clone(),
            },
            meters_to_target: 0,
            non_wear_time: 0,
            resting_time: 28800,
            sedentary_met_minutes: 10,
            sedentary_time: 30000,
            steps,
            target_calories: 450,
            target_meters: 8000,
            timestamp,
            total_calories: 2000 + active_calories,
        }
    }
}

/// Contributors to the sleep score (each 1..=100).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SleepContributors {
    pub deep_sleep: u8,
    pub efficiency: u8,
    pub latency: u8,
    pub rem_sleep: u8,
    pub restfulness: u8,
    pub timing: u8,
    pub total_sleep: u8,
}

impl Default for SleepContributors {
    fn default() -> Self {
        Self {
            deep_sleep: 80,
            efficiency: 85,
            latency: 90,
            rem_sleep: 75,
            restfulness: 70,
            timing: 95,
            total_sleep: 80,
        }
    }
}

/// One `daily_sleep` document: the day's sleep score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailySleep {
    pub id: String,
    pub contributors: SleepContributors,
    pub day: NaiveDate,
    pub score: Option<u8>,
    pub timestamp: String,
}

impl DailySleep {
    /// A day with this score, contributors at their defaults.
    pub fn new(day: NaiveDate, score: u8) -> Self {
        Self {
            id: document_id("daily-sleep", day),
            contributors: SleepContributors::default(),
            day,
            score: Some(score),
            timestamp: local_timestamp(day, 0, FixedOffset::east_opt(0).unwrap_or_else(utc)),
        }
    }
}

/// One `sleep` document: a sleep period, durations in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SleepPeriod {
    pub id: String,
    pub average_breath: Option<f64>,
    pub average_heart_rate: Option<f64>,
    pub average_hrv: Option<i64>,
    pub awake_time: Option<i64>,
    pub bedtime_end: String,
    pub bedtime_start: String,
    /// The day the period belongs to (the day it ended, for a night's sleep).
    pub day: NaiveDate,
    pub deep_sleep_duration: Option<i64>,
    pub efficiency: Option<i64>,
    pub latency: Option<i64>,
    pub light_sleep_duration: Option<i64>,
    pub low_battery_alert: bool,
    pub lowest_heart_rate: Option<i64>,
    pub period: i64,
    pub rem_sleep_duration: Option<i64>,
    pub restless_periods: Option<i64>,
    pub time_in_bed: i64,
    pub total_sleep_duration: Option<i64>,
    /// `long_sleep`, `late_nap`, `rest`, `sleep`, `deleted`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl SleepPeriod {
    /// A `long_sleep` period from `bedtime_start`, with these stage durations (seconds). The
    /// period's `day` is the local date it ends on; `time_in_bed` adds `awake` to the stages.
    pub fn new(
        bedtime_start: DateTime<FixedOffset>,
        deep: i64,
        light: i64,
        rem: i64,
        awake: i64,
    ) -> Self {
        let total = deep + light + rem;
        let in_bed = total + awake;
        let end = bedtime_start + Duration::seconds(in_bed);
        let day = end.date_naive();
        Self {
            id: document_id(&format!("sleep-{}", bedtime_start.timestamp()), day),
            average_breath: Some(14.5),
            average_heart_rate: Some(56.0),
            average_hrv: Some(48),
            awake_time: Some(awake),
            bedtime_end: end.to_rfc3339(),
            bedtime_start: bedtime_start.to_rfc3339(),
            day,
            deep_sleep_duration: Some(deep),
            efficiency: Some(if in_bed > 0 { total * 100 / in_bed } else { 0 }),
            latency: Some(600),
            light_sleep_duration: Some(light),
            low_battery_alert: false,
            lowest_heart_rate: Some(48),
            period: 0,
            rem_sleep_duration: Some(rem),
            restless_periods: Some(200),
            time_in_bed: in_bed,
            total_sleep_duration: Some(total),
            kind: "long_sleep".to_owned(),
        }
    }

    /// The same period marked as a nap (`late_nap`).
    pub fn nap(mut self) -> Self {
        self.kind = "late_nap".to_owned();
        self
    }
}

fn utc() -> FixedOffset {
    // Zero is always a valid offset; this only satisfies the Option.
    FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("UTC is a valid offset"))
}

fn local_timestamp(day: NaiveDate, hour: u32, offset: FixedOffset) -> String {
    let time = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN);
    offset
        .from_local_datetime(&day.and_time(time))
        .single()
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| format!("{day}T{time}+00:00"))
}

fn document_id(kind: &str, day: NaiveDate) -> String {
    format!("{kind}-{day}")
}

/// The three collections the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collection {
    DailyActivity,
    DailySleep,
    Sleep,
}

impl Collection {
    fn from_path(name: &str) -> Option<Self> {
        match name {
            "daily_activity" => Some(Self::DailyActivity),
            "daily_sleep" => Some(Self::DailySleep),
            "sleep" => Some(Self::Sleep),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::DailyActivity => "daily_activity",
            Self::DailySleep => "daily_sleep",
            Self::Sleep => "sleep",
        }
    }
}

#[derive(Default)]
struct Data {
    tokens: Vec<String>,
    page_size: usize,
    activity: Vec<DailyActivity>,
    daily_sleep: Vec<DailySleep>,
    sleep: Vec<SleepPeriod>,
}

#[derive(Clone)]
struct AppState {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

/// The Oura fake. See the module documentation.
pub struct OuraFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl OuraFake {
    /// Starts the fake on `addr` (e.g. `127.0.0.1:0`), accepting [`TEST_TOKEN`], pages of 50.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState {
            data: Arc::new(Mutex::new(Data {
                tokens: vec![TEST_TOKEN.to_owned()],
                page_size: 50,
                ..Data::default()
            })),
            clock: Clock::default(),
        };
        let faults = Faults::default();
        let layer = Layer::new(faults.clone(), render_fault);
        let router = Router::new()
            .route("/v2/usercollection/{collection}", get(collection))
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

    /// The base URL; collections are under `v2/usercollection/`.
    pub fn url(&self) -> url::Url {
        self.server.url()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.layer.recorded()
    }

    /// Faults for the next requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The clock that decides "today" (the default `end_date`).
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Accepts this token as well.
    pub fn add_token(&self, token: &str) {
        lock(&self.state.data).tokens.push(token.to_owned());
    }

    /// Stops accepting this token (a revoked personal access token).
    pub fn revoke_token(&self, token: &str) {
        lock(&self.state.data).tokens.retain(|t| t != token);
    }

    /// Records per page (at least 1).
    pub fn set_page_size(&self, size: usize) {
        lock(&self.state.data).page_size = size.max(1);
    }

    /// Adds (or replaces, by `id`) a daily activity document.
    pub fn add_daily_activity(&self, record: DailyActivity) {
        upsert(&mut lock(&self.state.data).activity, record, |r| {
            r.id.clone()
        });
    }

    /// Shorthand: "this day had this many steps and active calories".
    pub fn add_day_steps(&self, day: NaiveDate, steps: i64, active_calories: i64) {
        self.add_daily_activity(DailyActivity::new(day, steps, active_calories));
    }

    /// Adds (or replaces, by `id`) a daily sleep document.
    pub fn add_daily_sleep(&self, record: DailySleep) {
        upsert(&mut lock(&self.state.data).daily_sleep, record, |r| {
            r.id.clone()
        });
    }

    /// Adds (or replaces, by `id`) a sleep period.
    pub fn add_sleep_period(&self, record: SleepPeriod) {
        upsert(&mut lock(&self.state.data).sleep, record, |r| r.id.clone());
    }
}

fn upsert<T>(records: &mut Vec<T>, record: T, id: impl Fn(&T) -> String) {
    let key = id(&record);
    match records.iter_mut().find(|r| id(r) == key) {
        Some(existing) => *existing = record,
        None => records.push(record),
    }
}

/// A week of Oura data, 2026-11-16 to 2026-11-22 (the values in the module documentation),
/// in UTC+01:00: daily activity, daily sleep, one night's sleep per day and a nap on the 20th.
pub fn sample_week(fake: &OuraFake) {
    let offset = FixedOffset::east_opt(3600).unwrap_or_else(utc);
    let steps = [8123, 10456, 4302, 12001, 7777, 9050, 6100];
    let active = [402, 515, 188, 640, 377, 451, 295];
    let scores = [78, 72, 85, 69, 80, 83, 71];
    // Stage seconds per night (deep, light, rem); totals 441, 402, 465, 388, 420, 452, 396 min.
    let nights = [
        (5400, 15660, 5400),
        (4800, 14520, 4800),
        (6000, 15900, 6000),
        (4500, 14280, 4500),
        (5100, 15000, 5100),
        (5700, 15720, 5700),
        (4800, 14160, 4800),
    ];
    for (i, ((&s, &a), (&score, &(deep, light, rem)))) in steps
        .iter()
        .zip(&active)
        .zip(scores.iter().zip(&nights))
        .enumerate()
    {
        let Some(day) = NaiveDate::from_ymd_opt(2026, 11, 16 + i as u32) else {
            continue;
        };
        fake.add_daily_activity(DailyActivity::in_offset(day, s, a, offset));
        fake.add_daily_sleep(DailySleep::new(day, score));
        let Some(start) = day
            .pred_opt()
            .and_then(|eve| eve.and_hms_opt(23, 10, 0))
            .and_then(|t| offset.from_local_datetime(&t).single())
        else {
            continue;
        };
        fake.add_sleep_period(SleepPeriod::new(start, deep, light, rem, 1500));
        if i == 4 {
            if let Some(nap_start) = day
                .and_hms_opt(15, 0, 0)
                .and_then(|t| offset.from_local_datetime(&t).single())
            {
                fake.add_sleep_period(SleepPeriod::new(nap_start, 0, 1200, 300, 120).nap());
            }
        }
    }
}

fn error(status: StatusCode, title: &str, detail: &str) -> Response {
    json_response(
        status,
        json!({ "status": status.as_u16(), "title": title, "detail": detail }),
    )
}

fn render_fault(fault: &Fault) -> Response {
    let title = if fault.status == StatusCode::TOO_MANY_REQUESTS {
        "Request Rate Limit Exceeded."
    } else {
        fault.status.canonical_reason().unwrap_or("Server Error")
    };
    error(fault.status, title, "injected by the test")
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", "no such route")
}

/// The window and position a `next_token` stands for.
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    collection: &'static str,
    start: NaiveDate,
    end: NaiveDate,
    offset: usize,
}

impl Cursor {
    fn encode(&self) -> String {
        let raw = format!(
            "{}|{}|{}|{}",
            self.collection, self.start, self.end, self.offset
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(token: &str, collection: Collection) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('|');
        let name = parts.next()?;
        if name != collection.name() {
            return None;
        }
        let start = parts.next()?.parse().ok()?;
        let end = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            collection: collection.name(),
            start,
            end,
            offset,
        })
    }
}

/// A `start_date`/`end_date` value: a date, or an RFC 3339 timestamp read as its date.
fn parse_day(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|t| t.date_naive())
        })
}

async fn collection(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(collection) = Collection::from_path(&name) else {
        return not_found().await;
    };
    let data = lock(&state.data);
    match credentials(&headers) {
        Credentials::Bearer(token) if data.tokens.contains(&token) => {}
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Invalid access token: the token is missing, malformed, expired or revoked.",
            )
        }
    }
    let params = Params::from_query(query.as_deref());

    let cursor = match params.get("next_token") {
        Some(token) => match Cursor::decode(token, collection) {
            Some(cursor) => cursor,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "Invalid next_token.",
                )
            }
        },
        None => {
            let end = match params.get("end_date") {
                Some(raw) => match parse_day(raw) {
                    Some(day) => day,
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Bad Request",
                            &format!("Invalid end_date {raw:?}: expected YYYY-MM-DD."),
                        )
                    }
                },
                None => state.clock.now().date_naive(),
            };
            let start = match params.get("start_date") {
                Some(raw) => match parse_day(raw) {
                    Some(day) => day,
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Bad Request",
                            &format!("Invalid start_date {raw:?}: expected YYYY-MM-DD."),
                        )
                    }
                },
                None => end.pred_opt().unwrap_or(end),
            };
            if start > end {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "Start date is greater than end date.",
                );
            }
            Cursor {
                collection: collection.name(),
                start,
                end,
                offset: 0,
            }
        }
    };

    let in_window = |day: NaiveDate| cursor.start <= day && day <= cursor.end;
    let mut matching: Vec<(NaiveDate, Value)> = match collection {
        Collection::DailyActivity => to_values(&data.activity, |r| r.day),
        Collection::DailySleep => to_values(&data.daily_sleep, |r| r.day),
        Collection::Sleep => to_values(&data.sleep, |r| r.day),
    };
    matching.retain(|(day, _)| in_window(*day));
    // Oldest first, a stable order so pages never overlap.
    matching.sort_by_key(|(day, _)| *day);

    let page_size = data.page_size.max(1);
    let page: Vec<Value> = matching
        .iter()
        .skip(cursor.offset)
        .take(page_size)
        .map(|(_, v)| v.clone())
        .collect();
    let next = cursor.offset + page.len();
    let next_token = (next < matching.len()).then(|| {
        Cursor {
            collection: cursor.collection,
            start: cursor.start,
            end: cursor.end,
            offset: next,
        }
        .encode()
    });
    json_response(
        StatusCode::OK,
        json!({ "data": page, "next_token": next_token }),
    )
}

fn to_values<T: Serialize>(
    records: &[T],
    day: impl Fn(&T) -> NaiveDate,
) -> Vec<(NaiveDate, Value)> {
    records
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok().map(|v| (day(r), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_collection() {
        let cursor = Cursor {
            collection: "sleep",
            start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            offset: 4,
        };
        let token = cursor.encode();
        assert_eq!(Cursor::decode(&token, Collection::Sleep), Some(cursor));
        assert_eq!(Cursor::decode(&token, Collection::DailySleep), None);
        assert_eq!(Cursor::decode("not a token", Collection::Sleep), None);
    }

    #[test]
    fn sleep_period_durations_add_up() {
        let start = DateTime::parse_from_rfc3339("2026-11-19T23:10:00+01:00").unwrap();
        let p = SleepPeriod::new(start, 5400, 15660, 5400, 1500);
        assert_eq!(p.total_sleep_duration, Some(26460));
        assert_eq!(p.time_in_bed, 27960);
        assert_eq!(p.day, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
        assert_eq!(p.bedtime_end, "2026-11-20T06:56:00+01:00");
    }

    #[test]
    fn dates_and_timestamps_are_days() {
        assert_eq!(
            parse_day("2026-11-20"),
            NaiveDate::from_ymd_opt(2026, 11, 20)
        );
        assert_eq!(
            parse_day("2026-11-20T23:59:59+02:00"),
            NaiveDate::from_ymd_opt(2026, 11, 20)
        );
        assert_eq!(parse_day("20/11/2026"), None);
    }
}
