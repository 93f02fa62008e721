//! The fake's world: the user's attributes and values, tokens, queued faults, the request log,
//! the registered redirect URI and the rate-limit hour. One mutex guards it all; handlers hold
//! it only for synchronous work, so requests see each other's effects in a simple, serial order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use url::Url;

use super::rules::{self, Template, ValueType};
use super::tokens::{Scopes, Tokens};
use super::SandboxOptions;

/// Who owns an attribute, and so who may write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// An OAuth client of the fake, by client id.
    Client(String),
    /// Some other service the user connected (see [`super::Sandbox::give_to_other_service`]).
    OtherService,
    /// Nobody: released, or never acquired. Exist shows such an attribute with
    /// `"service": null, "active": false` (N).
    Unowned,
}

/// One of the user's attributes, as the fake holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeInfo {
    /// Machine name, unique per user.
    pub name: String,
    /// User-facing title.
    pub label: String,
    /// The group's name (see [`rules::GROUPS`]), which decides the scopes it needs.
    pub group: String,
    /// The type its values have.
    pub value_type: ValueType,
    /// Whether the user tracks it by hand (then `manual_write` suffices to write it).
    pub manual: bool,
    /// The template it was made from, if any.
    pub template: Option<String>,
    /// Who may write it.
    pub owner: Owner,
    /// Sorting order within its group.
    pub priority: u32,
    /// The user's day it was created on: `attributes/values/` lists every day from here (or
    /// from an earlier day that holds a value).
    pub created: NaiveDate,
}

impl AttributeInfo {
    /// The attribute a template gives, not yet owned by anyone.
    pub(crate) fn from_template(template: &Template, manual: bool, created: NaiveDate) -> Self {
        Self {
            name: template.name.to_owned(),
            label: template.label.to_owned(),
            group: template.group.to_owned(),
            value_type: template.value_type,
            manual,
            template: Some(template.name.to_owned()),
            owner: Owner::Unowned,
            priority: template.priority(),
            created,
        }
    }

    /// Whether `client_id` owns it.
    pub fn is_owned_by(&self, client_id: &str) -> bool {
        matches!(&self.owner, Owner::Client(id) if id == client_id)
    }

    /// Whether some service owns it; an unowned attribute is inactive (D: a released
    /// attribute passes to another service "or otherwise become\[s\] inactive").
    pub fn is_active(&self) -> bool {
        self.owner != Owner::Unowned
    }

    /// Its group's sorting priority.
    pub(crate) fn group_priority(&self) -> u32 {
        rules::group(&self.group).map_or(u32::MAX, |g| g.priority)
    }
}

/// One request the fake served, for tests to assert on. Secrets never appear in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/2/attributes/update/`.
    pub path: String,
    /// The query string, decoded and encoded again with the values of secret-looking
    /// parameters as `***`; empty when there is none.
    pub query: String,
    /// The status answered; `0` when the connection was dropped without an answer.
    pub status: u16,
    /// The JSON body, or the form fields as a JSON object; secrets (`client_secret`, tokens,
    /// codes, passwords) replaced by `"***"`. `None` when the body was empty or neither.
    pub body: Option<serde_json::Value>,
    /// The `grant_type` of a token request.
    pub grant_type: Option<String>,
    /// The first 8 hex digits of the SHA-256 of the refresh token presented, so that tests can
    /// tell whether a (rotated-out) refresh token was sent again without seeing it.
    pub refresh_token_fingerprint: Option<String>,
    /// How many items a JSON array body held (0 otherwise).
    pub items: usize,
    /// Whether a queued [`Fault`] answered, cut or altered this request.
    pub faulted: bool,
}

/// How a [`Fault::Misreport`] gets one item of a write wrong in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misreport {
    /// The item is in neither `success` nor `failed` (and the status may well be 200).
    Omitted,
    /// The item's `failed` entry has no `name`.
    MissingName,
    /// The item's `failed` entry has no `date`.
    MissingDate,
    /// The item's `failed` entry carries its `name` in upper case.
    AlteredName,
    /// The item's `failed` entry carries its `date` as a date-time (`YYYY-MM-DDT00:00:00`).
    AlteredDate,
}

/// A failure to inflict on upcoming requests, to exercise a client's error handling.
///
/// Over HTTP (`POST /sandbox/faults`) they are written with a `kind` tag, e.g.
/// `{"kind":"status","status":503,"count":2,"path_prefix":"/api/2/attributes/update/"}`,
/// `{"kind":"drop","count":1}`, `{"kind":"retry_after_429","count":1,"retry_after_secs":60}`,
/// `{"kind":"misreport","count":1,"item":0,"how":"missing_date"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer the next `count` matching requests with `status` and a JSON `detail`, before any
    /// processing: the request changes nothing (and costs no rate budget).
    Status {
        /// The HTTP status to answer (an invalid code answers 500).
        status: u16,
        /// How many requests.
        count: u32,
        /// Only requests whose path starts with this (e.g. `/api/2/attributes/update/`);
        /// `None` matches every request.
        path_prefix: Option<String>,
    },
    /// Close the next `count` matching connections without answering, before any processing:
    /// a network error.
    Drop {
        /// How many requests.
        count: u32,
        /// As for [`Fault::Status`].
        #[serde(default)]
        path_prefix: Option<String>,
    },
    /// Answer the next `count` API requests (`/api/`) with 429 and a `Retry-After` header,
    /// before any processing. Exist documents no such header (its own 429 here sends none),
    /// but a client should honour one if present.
    #[serde(rename = "retry_after_429")]
    RetryAfter429 {
        /// How many requests.
        count: u32,
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Apply the next `count` matching write calls (`POST /api/2/attributes/*/`) normally,
    /// except the item at index `item` (when the batch has one): it is not applied, and the
    /// reply misreports it as `how` says. This is the reply a client must never count as an
    /// acknowledgement of that item.
    Misreport {
        /// How many write calls.
        count: u32,
        /// As for [`Fault::Status`]; `None` matches every write endpoint.
        #[serde(default)]
        path_prefix: Option<String>,
        /// The index of the item in the batch.
        #[serde(default)]
        item: usize,
        /// What the reply gets wrong.
        how: Misreport,
    },
}

/// When a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultStage {
    /// Before the request reaches the fake's logic (status, drop, 429).
    Transport,
    /// While a write call builds its reply ([`Fault::Misreport`]).
    Reply,
}

/// The write endpoints a [`Fault::Misreport`] can alter.
const WRITE_PATHS: &[&str] = &[
    "/api/2/attributes/acquire/",
    "/api/2/attributes/release/",
    "/api/2/attributes/create/",
    "/api/2/attributes/update/",
    "/api/2/attributes/increment/",
];

impl Fault {
    fn count(&self) -> u32 {
        match self {
            Self::Status { count, .. }
            | Self::Drop { count, .. }
            | Self::RetryAfter429 { count, .. }
            | Self::Misreport { count, .. } => *count,
        }
    }

    fn stage(&self) -> FaultStage {
        match self {
            Self::Misreport { .. } => FaultStage::Reply,
            _ => FaultStage::Transport,
        }
    }

    fn matches(&self, path: &str) -> bool {
        let prefixed =
            |prefix: &Option<String>| prefix.as_deref().is_none_or(|p| path.starts_with(p));
        match self {
            Self::Status { path_prefix, .. } | Self::Drop { path_prefix, .. } => {
                prefixed(path_prefix)
            }
            Self::RetryAfter429 { .. } => path.starts_with("/api/"),
            Self::Misreport { path_prefix, .. } => {
                WRITE_PATHS.contains(&path) && prefixed(path_prefix)
            }
        }
    }
}

/// A token pair, as the token endpoint returns it. Its `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// For `Authorization: Bearer`.
    pub access_token: String,
    /// For `grant_type=refresh_token`; works once.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Requests per token in the current clock hour (D: "300 requests/hr per user token"; the guide:
/// "rate-limited until the next hour").
#[derive(Default)]
struct RateWindow {
    /// The clock hour (hours since the Unix epoch, UTC) the counts belong to.
    hour: i64,
    used: HashMap<String, u32>,
}

impl RateWindow {
    /// Counts one request of `token`; false when the hour's budget is already spent.
    fn admit(&mut self, token: &str, limit: u32) -> bool {
        let hour = Utc::now().timestamp().div_euclid(3600);
        if hour != self.hour {
            self.hour = hour;
            self.used.clear();
        }
        let used = self.used.entry(token.to_owned()).or_default();
        if *used >= limit {
            return false;
        }
        *used += 1;
        true
    }
}

/// Everything that changes, behind [`Shared`]'s mutex.
pub(crate) struct World {
    pub(crate) timezone: Tz,
    pub(crate) tokens: Tokens,
    pub(crate) attributes: BTreeMap<String, AttributeInfo>,
    pub(crate) values: BTreeMap<(String, NaiveDate), serde_json::Value>,
    /// The redirect URI registered for the client, compared exactly.
    pub(crate) redirect_uri: String,
    /// Whether the next authorization the user is asked for is denied.
    pub(crate) deny_next_authorization: bool,
    faults: VecDeque<(Fault, u32)>,
    log: Vec<RequestRecord>,
    rate: RateWindow,
}

impl World {
    /// The user's today, in their profile's timezone.
    pub(crate) fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.timezone).date_naive()
    }
}

/// The state every handler shares.
pub(crate) struct Shared {
    pub(crate) options: SandboxOptions,
    pub(crate) base_url: Url,
    world: Mutex<World>,
}

impl Shared {
    pub(crate) fn new(options: SandboxOptions, base_url: Url) -> std::io::Result<Self> {
        let timezone = parse_timezone(&options.timezone)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let redirect_uri = options.redirect_uri.clone();
        Ok(Self {
            options,
            base_url,
            world: Mutex::new(World {
                timezone,
                tokens: Tokens::default(),
                attributes: BTreeMap::new(),
                values: BTreeMap::new(),
                redirect_uri,
                deny_next_authorization: false,
                faults: VecDeque::new(),
                log: Vec::new(),
                rate: RateWindow::default(),
            }),
        })
    }

    /// Locks the world. A handler that panicked while holding the lock left it consistent
    /// enough for a test server, so poisoning is ignored rather than spread to every request.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request against `token`'s hourly budget; false when it is spent.
    pub(crate) fn admit(&self, token: &str) -> bool {
        let limit = self.options.rate_limit;
        self.world().rate.admit(token, limit)
    }

    pub(crate) fn log(&self, record: RequestRecord) {
        self.world().log.push(record);
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.world().log.clone()
    }

    pub(crate) fn values(&self) -> BTreeMap<(String, String), serde_json::Value> {
        self.world()
            .values
            .iter()
            .map(|((name, day), value)| ((name.clone(), day.to_string()), value.clone()))
            .collect()
    }

    pub(crate) fn attribute(&self, name: &str) -> Option<AttributeInfo> {
        self.world().attributes.get(name).cloned()
    }

    pub(crate) fn attributes(&self) -> Vec<AttributeInfo> {
        self.world().attributes.values().cloned().collect()
    }

    pub(crate) fn inject(&self, fault: Fault) {
        let count = fault.count();
        if count > 0 {
            self.world().faults.push_back((fault, count));
        }
    }

    /// The first queued fault of `stage` that matches `path`, used up by one.
    pub(crate) fn take_fault(&self, path: &str, stage: FaultStage) -> Option<Fault> {
        let mut world = self.world();
        let index = world
            .faults
            .iter()
            .position(|(f, _)| f.stage() == stage && f.matches(path))?;
        let (fault, left) = &mut world.faults[index];
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            world.faults.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn give_to_other_service(&self, name: &str) {
        let mut world = self.world();
        let today = world.today();
        if let Some(attribute) = world.attributes.get_mut(name) {
            attribute.owner = Owner::OtherService;
        } else if let Some(template) = rules::template(name) {
            let mut attribute = AttributeInfo::from_template(template, false, today);
            attribute.owner = Owner::OtherService;
            world.attributes.insert(attribute.name.clone(), attribute);
        } else {
            tracing::warn!(
                attribute = name,
                "exist fake: no such attribute to give away"
            );
        }
    }

    pub(crate) fn edit_value(&self, name: &str, day: NaiveDate, value: Option<serde_json::Value>) {
        let mut world = self.world();
        let key = (name.to_owned(), day);
        match value {
            Some(value) => world.values.insert(key, value),
            None => world.values.remove(&key),
        };
    }

    pub(crate) fn revoke_tokens(&self) {
        self.world().tokens.revoke_all();
    }

    pub(crate) fn expire_access_tokens(&self) {
        self.world().tokens.expire_all();
    }

    pub(crate) fn next_hour(&self) {
        self.world().rate.used.clear();
    }

    pub(crate) fn issue_tokens(&self, scopes: &[&str]) -> TokenGrant {
        let scopes: Scopes = scopes.iter().collect();
        let lifetime = self.options.token_lifetime;
        self.world()
            .tokens
            .issue(&self.options.client_id, scopes, lifetime)
    }

    pub(crate) fn set_timezone(&self, tz: &str) -> Result<(), String> {
        self.world().timezone = parse_timezone(tz)?;
        Ok(())
    }

    pub(crate) fn register_redirect_uri(&self, uri: &str) {
        uri.clone_into(&mut self.world().redirect_uri);
    }

    pub(crate) fn deny_next_authorization(&self) {
        self.world().deny_next_authorization = true;
    }
}

fn parse_timezone(tz: &str) -> Result<Tz, String> {
    tz.parse()
        .map_err(|_| format!("`{tz}` is not an IANA timezone name (e.g. Europe/Berlin)"))
}

/// A date written exactly `YYYY-MM-DD`, as D's parameter tables write it (no `2026-1-5`, no
/// time part). Whether Exist also takes other spellings is not recorded.
pub(crate) fn strict_day(text: &str) -> Option<NaiveDate> {
    let well_formed = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_must_be_exactly_yyyy_mm_dd() {
        assert_eq!(strict_day("2026-01-05").unwrap().to_string(), "2026-01-05");
        assert!(strict_day("2026-1-5").is_none());
        assert!(strict_day("2026-02-30").is_none());
        assert!(strict_day("2026-01-05T00:00").is_none());
        assert!(strict_day("20260105").is_none());
    }

    #[test]
    fn faults_match_by_stage_and_prefix_and_run_out() {
        let shared = Shared::new(
            SandboxOptions::default(),
            Url::parse("http://127.0.0.1:1/").unwrap(),
        )
        .unwrap();
        shared.inject(Fault::Status {
            status: 503,
            count: 2,
            path_prefix: Some("/api/2/attributes/update/".into()),
        });
        shared.inject(Fault::RetryAfter429 {
            count: 1,
            retry_after_secs: 5,
        });
        shared.inject(Fault::Misreport {
            count: 1,
            path_prefix: None,
            item: 0,
            how: Misreport::MissingDate,
        });
        let transport = |path| shared.take_fault(path, FaultStage::Transport);
        assert!(transport("/oauth2/access_token").is_none());
        assert!(matches!(
            transport("/api/2/attributes/update/"),
            Some(Fault::Status { status: 503, .. })
        ));
        assert!(matches!(
            transport("/api/2/accounts/profile/"),
            Some(Fault::RetryAfter429 { .. })
        ));
        assert!(transport("/api/2/attributes/update/").is_some());
        assert!(transport("/api/2/attributes/update/").is_none());
        // The misreport waits for a write call's reply, never for a read.
        assert!(shared
            .take_fault("/api/2/attributes/values/", FaultStage::Reply)
            .is_none());
        assert!(shared
            .take_fault("/api/2/attributes/update/", FaultStage::Reply)
            .is_some());
    }

    #[test]
    fn faults_read_from_json_as_documented() {
        let read = |text: &str| serde_json::from_str::<Fault>(text).unwrap();
        assert_eq!(
            read(r#"{"kind":"status","status":503,"count":2,"path_prefix":"/api/2/"}"#),
            Fault::Status {
                status: 503,
                count: 2,
                path_prefix: Some("/api/2/".into())
            }
        );
        assert_eq!(
            read(r#"{"kind":"drop","count":1}"#),
            Fault::Drop {
                count: 1,
                path_prefix: None
            }
        );
        assert_eq!(
            read(r#"{"kind":"retry_after_429","count":1,"retry_after_secs":60}"#),
            Fault::RetryAfter429 {
                count: 1,
                retry_after_secs: 60
            }
        );
        assert_eq!(
            read(r#"{"kind":"misreport","count":1,"how":"altered_date"}"#),
            Fault::Misreport {
                count: 1,
                path_prefix: None,
                item: 0,
                how: Misreport::AlteredDate
            }
        );
    }

    #[test]
    fn the_rate_window_refuses_past_the_limit() {
        let mut window = RateWindow::default();
        assert!((0..3).all(|_| window.admit("t", 3)));
        assert!(!window.admit("t", 3));
        assert!(window.admit("other", 3));
    }

    #[test]
    fn token_grants_hide_tokens_in_debug() {
        let grant = TokenGrant {
            access_token: "a1b2c3".into(),
            refresh_token: "d4e5f6".into(),
            expires_in: 1,
            scope: "mood_write".into(),
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("a1b2c3") && !shown.contains("d4e5f6"));
    }
}
