//! A fake of Withings: its OAuth 2.0 flow (`/oauth2_user/authorize2`, `POST /v2/oauth2` with
//! `action=requesttoken`) and the Measure API's `getmeas` (weight, fat ratio, blood pressure...).
//!
//! Written from:
//! - the API reference, <https://developer.withings.com/api-reference> (OAuth2 authorization URL
//!   parameters `response_type=code`, `client_id`, `state`, `scope` (comma separated),
//!   `redirect_uri` (must be a registered callback), the code "only valid for 30 seconds"; the
//!   token request `action=requesttoken`, `grant_type` `authorization_code` (with `code`,
//!   `redirect_uri`) or `refresh_token` (with `refresh_token`), `client_id`, `client_secret`; its
//!   reply `{status, body: {userid, access_token, refresh_token, expires_in, scope, token_type}}`;
//!   `Measure - Getmeas`: `action=getmeas`, `meastype`, `meastypes`, `category` (1 real, 2
//!   objectives), `startdate`, `enddate`, `lastupdate`, `offset`, `Authorization: Bearer`, and the
//!   reply `{status, body: {updatetime, timezone, measuregrps: [{grpid, attrib, date, created,
//!   modified, category, deviceid, measures: [{value, type, unit, ...}]}], more, offset}}`);
//! - the access and refresh tokens guide,
//!   <https://developer.withings.com/developer-guide/v3/integration-guide/public-health-data-api/get-access/access-and-refresh-tokens-no-recover>
//!   (access tokens last 3 hours, refresh tokens a year; every refresh returns a new refresh
//!   token, and the old one "expires 8 hours after new issuance or once the new access_token is
//!   used");
//! - the web flow guide,
//!   <https://developer.withings.com/developer-guide/v3/integration-guide/public-health-data-api/get-access/oauth-web-flow>.
//!
//! Withings answers errors with HTTP 200 and a non-zero `status` in the body (`{"status": 401,
//! "body": {}, "error": "..."}`); the statuses used here are those users have recorded in public
//! (401 for an invalid or expired access token, 503 for invalid parameters, including a bad code
//! or refresh token, 601 for too many requests).
//!
//! # What it serves
//!
//! - `GET /oauth2_user/authorize2?response_type=code&client_id=..&state=..&scope=..&redirect_uri=..`:
//!   approves at once (a user who always says yes) and redirects (302) to `redirect_uri` with
//!   `code` and `state`; after [`WithingsFake::deny_next_authorization`] it redirects with
//!   `error=access_denied` instead. An unknown `client_id`, an unregistered `redirect_uri`, or a
//!   missing parameter is a 400 page (never a redirect to an unchecked URI).
//! - `POST /v2/oauth2` (form body): `action=requesttoken`. Codes work once, for
//!   [`WithingsFake::set_code_lifetime`] (default 30 s), with the same `redirect_uri`. Access
//!   tokens last [`WithingsFake::set_access_token_lifetime`] (default 10800 s). Refresh rotates:
//!   the reply carries a new refresh token; the old one keeps working until the new access token
//!   is first used or 8 hours pass. After [`WithingsFake::revoke_all`] (the user unlinked the
//!   app) refreshing answers status 503.
//! - `GET` or `POST /measure` with `action=getmeas` (parameters in the query or the form body):
//!   groups newest first, [`WithingsFake::set_page_size`] per page (default 200), `more` 1 with
//!   the next `offset` while groups remain, then `more` 0 and `offset` 0.
//!
//! **Strict:** a missing, unknown or expired Bearer token is status 401; an unknown `action`, a
//! non-numeric `meastype`/`meastypes`/`category`/dates/`offset` is status 503. **Faults:** the
//! shared [`Faults`] give HTTP-level failures (5xx, 429 with `Retry-After`: a proxy in front);
//! [`WithingsFake::throttle_next`] gives Withings' own rate limiting, HTTP 200 with status 601.
//!
//! # Ambiguities and how this fake decides
//!
//! - The reference types `updatetime` as a string; recorded replies carry an integer (epoch
//!   seconds). The fake sends the integer.
//! - Whether `lastupdate` combines with `startdate`/`enddate` is not said ("use this instead");
//!   the fake applies every filter it is given.
//! - Withings refuses `localhost` callback URLs for real apps; the fake accepts whatever callbacks
//!   are registered (by default `http://localhost:8000/`), since tests log in on loopback.
//! - The exact `error` texts are not documented; the wording is this fake's.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [[source]]
//! name = "withings"
//! kind = "http"
//! url = "https://wbsapi.withings.net/measure"
//! params = { action = "getmeas", meastypes = "1,6", category = "1" }
//! auth = { oauth2 = { authorize_url = "https://account.withings.com/oauth2_user/authorize2",
//!                     token_url = "https://wbsapi.withings.net/v2/oauth2",
//!                     client_id = "...", client_secret_env = "WITHINGS_CLIENT_SECRET",
//!                     scopes = ["user.metrics"] } }
//!                              # Withings' token endpoint wants action=requesttoken in the form
//!                              # and answers inside {status, body}: the oauth2 form needs a
//!                              # "withings" dialect (extra form fields, a reply pointer "/body",
//!                              # and status != 0 read as an error)
//! records = "/body/measuregrps"
//! id_field = "grpid"
//! updated_field = "modified"
//! date_field = "date"                 # epoch seconds
//! window = { style = "timestamps", format = "epoch", start = "startdate", end = "enddate", lookback_days = 7 }
//! paging = { style = "offset", param = "offset" }   # driven by "more"/"offset" in the body:
//!                                                   # the offset style needs a "next offset"
//!                                                   # pointer (/body/offset) and a "more" pointer
//!
//! [[attribute]]
//! template = "weight"
//! source = "withings"
//! where = { field = "measures.0.type", equals = 1 }  # type 1: weight
//! field = "measures.0.value"          # with unit -3 this is grams: value * 10^unit kg
//! multiply = 0.001                    # (a general "value * 10^unit" needs a new rule)
//! aggregate = "last"
//! ```
//!
//! With [`sample_weighins`] seeded and the user in `Europe/Paris`, "weight" is 2026-11-18 =
//! 72.35, 2026-11-19 = 72.1 (two weigh-ins: the evening one, 72.1, is the day's last),
//! 2026-11-20 = 71.95 (its 00:30 weigh-in is 23:30 UTC on the 19th); the objective group
//! (category 2) is excluded by `category = "1"`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    credentials, is_get_or_post, json as json_response, lock, Clock, Credentials, FakeServer,
    Fault, Faults, Layer, Params, RecordedRequest,
};

/// The app's client id the fake knows unless told otherwise.
pub const TEST_CLIENT_ID: &str = "withings-test-client-id";
/// That app's client secret.
pub const TEST_CLIENT_SECRET: &str = "withings-test-client-secret";
/// The callback URL registered for that app.
pub const TEST_REDIRECT_URI: &str = "http://localhost:8000/";
/// The Withings user id the tokens belong to.
pub const TEST_USER_ID: i64 = 363;

/// Measure types (the `meastype` table of the reference).
pub mod meastype {
    pub const WEIGHT_KG: u32 = 1;
    pub const HEIGHT_M: u32 = 4;
    pub const FAT_FREE_MASS_KG: u32 = 5;
    pub const FAT_RATIO_PERCENT: u32 = 6;
    pub const FAT_MASS_KG: u32 = 8;
    pub const DIASTOLIC_MMHG: u32 = 9;
    pub const SYSTOLIC_MMHG: u32 = 10;
    pub const HEART_PULSE_BPM: u32 = 11;
    pub const SPO2_PERCENT: u32 = 54;
    pub const MUSCLE_MASS_KG: u32 = 76;
    pub const BONE_MASS_KG: u32 = 88;
}

/// One measure: the real value is `value * 10^unit`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measure {
    pub value: i64,
    #[serde(rename = "type")]
    pub kind: u32,
    pub unit: i32,
}

impl Measure {
    /// `amount` of measure `kind`, kept to `decimals` decimal places (e.g. 72.35 kg, 3 →
    /// value 72350, unit -3).
    pub fn new(kind: u32, amount: f64, decimals: u32) -> Self {
        let scale = 10f64.powi(decimals as i32);
        Self {
            value: (amount * scale).round() as i64,
            kind,
            unit: -(decimals as i32),
        }
    }

    /// A weight in kilograms, to the gram.
    pub fn weight_kg(kg: f64) -> Self {
        Self::new(meastype::WEIGHT_KG, kg, 3)
    }

    /// A fat ratio in percent, to a tenth.
    pub fn fat_ratio(percent: f64) -> Self {
        Self::new(meastype::FAT_RATIO_PERCENT, percent, 1)
    }
}

/// A measure group: measures taken together (a weigh-in, a blood-pressure reading).
#[derive(Clone, Debug, PartialEq)]
pub struct MeasureGroup {
    pub grpid: i64,
    pub date: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// 1 real measures, 2 user objectives.
    pub category: u8,
    /// 0 device, unambiguous; 2 entered by hand; ... (the reference's `attrib` table).
    pub attrib: u8,
    pub measures: Vec<Measure>,
}

impl MeasureGroup {
    /// A real measurement taken at `date` by a device (created and modified at `date` too).
    pub fn new(date: DateTime<Utc>, measures: Vec<Measure>) -> Self {
        Self {
            grpid: 0,
            date,
            created: date,
            modified: date,
            category: 1,
            attrib: 0,
            measures,
        }
    }

    /// The same group as a user objective (category 2).
    pub fn objective(mut self) -> Self {
        self.category = 2;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "grpid": self.grpid,
            "attrib": self.attrib,
            "date": self.date.timestamp(),
            "created": self.created.timestamp(),
            "modified": self.modified.timestamp(),
            "category": self.category,
            "deviceid": "fake-device-0001",
            "hash_deviceid": "fake-device-0001",
            "measures": self.measures.iter().map(|m| json!({
                "value": m.value, "type": m.kind, "unit": m.unit, "algo": 0, "fm": 3,
            })).collect::<Vec<_>>(),
            "modelid": 13,
            "model": "Body+",
            "comment": null,
        })
    }
}

struct Code {
    redirect_uri: String,
    scope: String,
    issued: DateTime<Utc>,
}

struct AccessToken {
    expires: DateTime<Utc>,
    /// The refresh token that was rotated out when this token was issued: it dies when this
    /// token is first used.
    retires: Option<String>,
}

struct RefreshToken {
    scope: String,
    expires: DateTime<Utc>,
}

struct Data {
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    user_timezone: String,
    code_lifetime: Duration,
    access_lifetime: Duration,
    page_size: usize,
    deny_next: bool,
    throttled: usize,
    codes: HashMap<String, Code>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    groups: Vec<MeasureGroup>,
    next_grpid: i64,
    next_secret: u64,
}

impl Data {
    /// A fresh, unguessable-enough secret for tests (unique within the fake).
    fn secret(&mut self, kind: &str) -> String {
        self.next_secret += 1;
        let n = self.next_secret;
        // A 40-hex-digit token, like the real ones, different per call.
        let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        format!("{kind}{mixed:016x}{n:08x}{:016x}", mixed.rotate_left(17))
    }
}

#[derive(Clone)]
struct AppState {
    data: Arc<Mutex<Data>>,
    clock: Clock,
}

/// The Withings fake. See the module documentation.
pub struct WithingsFake {
    server: FakeServer,
    state: AppState,
    layer: Layer,
    faults: Faults,
}

impl WithingsFake {
    /// Starts the fake on `addr` with the test app ([`TEST_CLIENT_ID`], [`TEST_CLIENT_SECRET`],
    /// [`TEST_REDIRECT_URI`]), a user in `Europe/Paris`, 3-hour access tokens, pages of 200.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let state = AppState {
            data: Arc::new(Mutex::new(Data {
                client_id: TEST_CLIENT_ID.to_owned(),
                client_secret: TEST_CLIENT_SECRET.to_owned(),
                redirect_uris: vec![TEST_REDIRECT_URI.to_owned()],
                user_timezone: "Europe/Paris".to_owned(),
                code_lifetime: Duration::seconds(30),
                access_lifetime: Duration::seconds(10800),
                page_size: 200,
                deny_next: false,
                throttled: 0,
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                groups: Vec::new(),
                next_grpid: 4_716_596_600,
                next_secret: 0,
            })),
            clock: Clock::default(),
        };
        let faults = Faults::default();
        let mut layer = Layer::new(faults.clone(), render_fault);
        layer.secret_params = &["client_secret", "code", "refresh_token"];
        let router = Router::new()
            .route("/oauth2_user/authorize2", get(authorize))
            .route("/v2/oauth2", post(token))
            .route("/measure", any(measure))
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

    /// The base URL: the authorization page is `oauth2_user/authorize2`, the token endpoint
    /// `v2/oauth2`, the Measure API `measure` (Withings splits these over two hosts; the fake
    /// serves both).
    pub fn url(&self) -> url::Url {
        self.server.url()
    }

    /// Every request answered so far (`client_secret`, `code` and `refresh_token` as `***`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.layer.recorded()
    }

    /// HTTP-level faults for the next requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The clock that ages codes and tokens.
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// The next `n` API or token requests answer Withings' "too many requests" (HTTP 200,
    /// status 601).
    pub fn throttle_next(&self, n: usize) {
        lock(&self.state.data).throttled += n;
    }

    /// Registers another callback URL for the app.
    pub fn add_redirect_uri(&self, uri: &str) {
        lock(&self.state.data).redirect_uris.push(uri.to_owned());
    }

    /// The next authorization is refused by the user.
    pub fn deny_next_authorization(&self) {
        lock(&self.state.data).deny_next = true;
    }

    /// How long an authorization code lives.
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        lock(&self.state.data).code_lifetime = lifetime;
    }

    /// How long access tokens issued from now on live (`expires_in`).
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        lock(&self.state.data).access_lifetime = lifetime;
    }

    /// Measure groups per `getmeas` page (at least 1).
    pub fn set_page_size(&self, size: usize) {
        lock(&self.state.data).page_size = size.max(1);
    }

    /// The timezone reported in `getmeas` replies.
    pub fn set_user_timezone(&self, tz: &str) {
        lock(&self.state.data).user_timezone = tz.to_owned();
    }

    /// Issues an access/refresh pair directly, as if the user had logged in (scope
    /// `user.metrics`): `(access_token, refresh_token)`.
    pub fn issue_tokens(&self) -> (String, String) {
        let now = self.state.clock.now();
        let mut data = lock(&self.state.data);
        let (access, refresh, _) = issue(&mut data, now, "user.metrics", None);
        (access, refresh)
    }

    /// Revokes every code, access and refresh token (the user unlinked the app).
    pub fn revoke_all(&self) {
        let mut data = lock(&self.state.data);
        data.codes.clear();
        data.access.clear();
        data.refresh.clear();
    }

    /// Adds a measure group and returns its `grpid` (assigned if the group's is 0).
    pub fn add_group(&self, mut group: MeasureGroup) -> i64 {
        let mut data = lock(&self.state.data);
        if group.grpid == 0 {
            data.next_grpid += 1;
            group.grpid = data.next_grpid;
        }
        let id = group.grpid;
        data.groups.retain(|g| g.grpid != id);
        data.groups.push(group);
        id
    }

    /// Shorthand: "weighed `kg` at `date`".
    pub fn add_weight(&self, date: DateTime<Utc>, kg: f64) -> i64 {
        self.add_group(MeasureGroup::new(date, vec![Measure::weight_kg(kg)]))
    }
}

/// Weigh-ins on 2026-11-18..20 plus a weight objective (the values in the module documentation).
pub fn sample_weighins(fake: &WithingsFake) {
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let weighins = [
        ("2026-11-18T07:10:00+01:00", 72.35, 18.4),
        ("2026-11-19T07:05:00+01:00", 72.4, 18.5),
        ("2026-11-19T21:40:00+01:00", 72.1, 18.3),
        ("2026-11-20T00:30:00+01:00", 71.95, 18.2),
    ];
    for (time, kg, fat) in weighins {
        if let Some(date) = at(time) {
            fake.add_group(MeasureGroup::new(
                date,
                vec![Measure::weight_kg(kg), Measure::fat_ratio(fat)],
            ));
        }
    }
    if let Some(date) = at("2026-11-19T12:00:00+01:00") {
        fake.add_group(MeasureGroup::new(date, vec![Measure::weight_kg(70.0)]).objective());
    }
}

/// Creates a token pair; returns `(access, refresh, expires_in)`.
fn issue(
    data: &mut Data,
    now: DateTime<Utc>,
    scope: &str,
    retires: Option<String>,
) -> (String, String, i64) {
    let access = data.secret("a");
    let refresh = data.secret("r");
    let lifetime = data.access_lifetime;
    data.access.insert(
        access.clone(),
        AccessToken {
            expires: now + lifetime,
            retires,
        },
    );
    data.refresh.insert(
        refresh.clone(),
        RefreshToken {
            scope: scope.to_owned(),
            expires: now + Duration::days(365),
        },
    );
    (access, refresh, lifetime.num_seconds())
}

fn withings_error(status: u32, text: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "status": status, "body": {}, "error": text }),
    )
}

fn render_fault(fault: &Fault) -> Response {
    (
        fault.status,
        fault
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_owned(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn bad_page(text: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><body><h1>Invalid request</h1><p>{text}</p></body></html>"),
    )
        .into_response()
}

fn redirect(location: &url::Url) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.as_str().to_owned())],
    )
        .into_response()
}

async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = Params::from_query(query.as_deref());
    let now = state.clock.now();
    let mut data = lock(&state.data);
    let required = [
        "response_type",
        "client_id",
        "state",
        "scope",
        "redirect_uri",
    ];
    if let Some(missing) = required
        .iter()
        .find(|p| params.get(p).is_none_or(str::is_empty))
    {
        return bad_page(&format!("Missing parameter: {missing}"));
    }
    let (Some(client_id), Some(redirect_uri), Some(scope), Some(oauth_state)) = (
        params.get("client_id"),
        params.get("redirect_uri"),
        params.get("scope"),
        params.get("state"),
    ) else {
        return bad_page("Missing parameter");
    };
    if params.get("response_type") != Some("code") {
        return bad_page("response_type must be code");
    }
    if client_id != data.client_id {
        return bad_page("Unknown client_id");
    }
    if !data.redirect_uris.iter().any(|u| u == redirect_uri) {
        return bad_page("redirect_uri is not a registered callback URL of this application");
    }
    let Ok(mut location) = url::Url::parse(redirect_uri) else {
        return bad_page("redirect_uri is not a URL");
    };
    if std::mem::take(&mut data.deny_next) {
        location
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", oauth_state);
        return redirect(&location);
    }
    let code = data.secret("c");
    data.codes.insert(
        code.clone(),
        Code {
            redirect_uri: redirect_uri.to_owned(),
            scope: scope.to_owned(),
            issued: now,
        },
    );
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", oauth_state);
    redirect(&location)
}

async fn token(State(state): State<AppState>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let params = Params::from_query_and_form(query.as_deref(), &body);
    let now = state.clock.now();
    let mut data = lock(&state.data);
    if data.throttled > 0 {
        data.throttled -= 1;
        return withings_error(601, "Too Many Requests");
    }
    if params.get("action") != Some("requesttoken") {
        return withings_error(503, "Invalid Params: action must be requesttoken");
    }
    if params.get("signature").is_some() || params.get("nonce").is_some() {
        return withings_error(
            503,
            "Invalid Params: this fake supports the client_secret form only",
        );
    }
    if params.get("client_id") != Some(data.client_id.as_str())
        || params.get("client_secret") != Some(data.client_secret.as_str())
    {
        return withings_error(503, "Invalid Params: invalid client_id or client_secret");
    }
    match params.get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (params.get("code"), params.get("redirect_uri"))
            else {
                return withings_error(503, "Invalid Params: code and redirect_uri are required");
            };
            // A code works once, whatever happens next.
            let Some(issued) = data.codes.remove(code) else {
                return withings_error(503, "Invalid Params: invalid code");
            };
            if now - issued.issued > data.code_lifetime {
                return withings_error(503, "Invalid Params: the code has expired");
            }
            if issued.redirect_uri != redirect_uri {
                return withings_error(
                    503,
                    "Invalid Params: redirect_uri does not match the authorization",
                );
            }
            let (access, refresh, expires_in) = issue(&mut data, now, &issued.scope, None);
            token_reply(&access, &refresh, expires_in, &issued.scope)
        }
        Some("refresh_token") => {
            let Some(old) = params.get("refresh_token") else {
                return withings_error(503, "Invalid Params: refresh_token is required");
            };
            let scope = match data.refresh.get(old) {
                Some(token) if token.expires > now => token.scope.clone(),
                _ => return withings_error(503, "Invalid Params: invalid refresh_token"),
            };
            // The old refresh token lives on for 8 hours, or until the new access token is used.
            if let Some(token) = data.refresh.get_mut(old) {
                token.expires = token.expires.min(now + Duration::hours(8));
            }
            let (access, refresh, expires_in) = issue(&mut data, now, &scope, Some(old.to_owned()));
            token_reply(&access, &refresh, expires_in, &scope)
        }
        _ => withings_error(
            503,
            "Invalid Params: grant_type must be authorization_code or refresh_token",
        ),
    }
}

fn token_reply(access: &str, refresh: &str, expires_in: i64, scope: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "status": 0,
            "body": {
                "userid": TEST_USER_ID,
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": expires_in,
                "scope": scope,
                "csrf_token": "fake-csrf-token",
                "token_type": "Bearer",
            }
        }),
    )
}

async fn measure(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if !is_get_or_post(&method) {
        return (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response();
    }
    let params = Params::from_query_and_form(query.as_deref(), &body);
    let now = state.clock.now();
    let mut data = lock(&state.data);
    if data.throttled > 0 {
        data.throttled -= 1;
        return withings_error(601, "Too Many Requests");
    }
    let token = match credentials(&headers) {
        Credentials::Bearer(token) => token,
        _ => return withings_error(401, "invalid_token: The access token provided is invalid"),
    };
    let retires = match data.access.get(&token) {
        Some(t) if t.expires > now => t.retires.clone(),
        Some(_) => {
            return withings_error(401, "invalid_token: The access token provided has expired")
        }
        None => return withings_error(401, "invalid_token: The access token provided is invalid"),
    };
    // First use of a refreshed access token retires the refresh token it replaced.
    if let Some(old) = retires {
        data.refresh.remove(&old);
        if let Some(t) = data.access.get_mut(&token) {
            t.retires = None;
        }
    }
    if params.get("action") != Some("getmeas") {
        return withings_error(503, "Invalid Params: unknown action");
    }

    let number = |name: &str| -> Result<Option<i64>, String> {
        match params.get(name) {
            None | Some("") => Ok(None),
            Some(raw) => raw
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("Invalid Params: {name} must be an integer")),
        }
    };
    let filters = (|| -> Result<_, String> {
        let mut types: Vec<u32> = Vec::new();
        if let Some(t) = number("meastype")? {
            types.push(
                u32::try_from(t).map_err(|_| "Invalid Params: meastype out of range".to_owned())?,
            );
        }
        if let Some(list) = params.get("meastypes").filter(|l| !l.is_empty()) {
            for item in list.split(',') {
                let t = item.trim().parse::<u32>().map_err(|_| {
                    "Invalid Params: meastypes must be integers separated by commas".to_owned()
                })?;
                types.push(t);
            }
        }
        Ok((
            types,
            number("category")?,
            number("startdate")?,
            number("enddate")?,
            number("lastupdate")?,
            number("offset")?.unwrap_or(0).max(0) as usize,
        ))
    })();
    let (types, category, startdate, enddate, lastupdate, offset) = match filters {
        Ok(f) => f,
        Err(text) => return withings_error(503, &text),
    };

    let mut groups: Vec<Value> = {
        let mut matching: Vec<&MeasureGroup> = data
            .groups
            .iter()
            .filter(|g| category.is_none_or(|c| i64::from(g.category) == c))
            .filter(|g| startdate.is_none_or(|s| g.date.timestamp() >= s))
            .filter(|g| enddate.is_none_or(|e| g.date.timestamp() <= e))
            .filter(|g| lastupdate.is_none_or(|u| g.modified.timestamp() >= u))
            .filter(|g| types.is_empty() || g.measures.iter().any(|m| types.contains(&m.kind)))
            .collect();
        matching.sort_by(|a, b| b.date.cmp(&a.date).then(b.grpid.cmp(&a.grpid)));
        matching
            .into_iter()
            .map(|g| {
                // Only the requested types are reported within a group.
                let mut g = g.clone();
                if !types.is_empty() {
                    g.measures.retain(|m| types.contains(&m.kind));
                }
                g.to_json()
            })
            .collect()
    };
    let total = groups.len();
    let page_size = data.page_size;
    let page: Vec<Value> = groups.drain(..).skip(offset).take(page_size).collect();
    let next = offset + page.len();
    let more = next < total;
    json_response(
        StatusCode::OK,
        json!({
            "status": 0,
            "body": {
                "updatetime": now.timestamp(),
                "timezone": data.user_timezone,
                "measuregrps": page,
                "more": i32::from(more),
                "offset": if more { next } else { 0 },
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_keep_their_decimals_as_a_power_of_ten() {
        assert_eq!(
            Measure::weight_kg(72.35),
            Measure {
                value: 72350,
                kind: 1,
                unit: -3
            }
        );
        assert_eq!(
            Measure::fat_ratio(18.4),
            Measure {
                value: 184,
                kind: 6,
                unit: -1
            }
        );
    }
}
