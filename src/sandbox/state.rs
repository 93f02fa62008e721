//! The sandbox's world: the user's attributes and values, tokens, queued faults, the request log
//! and the rate-limit hour. One mutex guards it all; handlers hold it only for synchronous work,
//! so requests see each other's effects in a simple, serial order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::exist::templates;
use crate::exist::types::{Day, Group, ValueType};

use super::tokens::{Scopes, Tokens};
use super::SandboxOptions;

/// Who owns an attribute, and so who may write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// An OAuth client of the sandbox, by client id.
    Client(String),
    /// Some other service the user connected (see [`super::Sandbox::give_to_other_service`]).
    OtherService,
    /// Nobody: released, or never acquired.
    Unowned,
}

/// One of the user's attributes, as the sandbox holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeInfo {
    /// Machine name, unique per user.
    pub name: String,
    /// User-facing title.
    pub label: String,
    /// The group, which decides the write scope.
    pub group: Group,
    /// The type its values must have.
    pub value_type: ValueType,
    /// Whether the user tracks it by hand (then `manual_write` suffices to write it).
    pub manual: bool,
    /// The template it was made from, if any.
    pub template: Option<String>,
    /// Who may write it.
    pub owner: Owner,
}

impl AttributeInfo {
    /// The attribute a template gives, not yet owned by anyone.
    pub(crate) fn from_template(template: &templates::Template, manual: bool) -> Self {
        Self {
            name: template.name.to_owned(),
            label: label_of(template.name),
            group: template.group,
            value_type: template.value_type,
            manual,
            template: Some(template.name.to_owned()),
            owner: Owner::Unowned,
        }
    }

    /// Whether `client_id` owns it.
    pub(crate) fn is_owned_by(&self, client_id: &str) -> bool {
        matches!(&self.owner, Owner::Client(id) if id == client_id)
    }
}

/// A user-facing label for a machine name: "steps_active_min" -> "Steps active min".
pub(crate) fn label_of(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One request the sandbox served, for tests to assert on. Secrets never appear in clear.
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
    /// Whether a queued [`Fault`] answered this request instead of the sandbox.
    pub faulted: bool,
}

/// A failure to inflict on upcoming requests, to exercise a client's error handling. Faults act
/// before any processing, so a faulted request changes nothing (and costs no rate budget).
///
/// Over HTTP (`POST /sandbox/faults`) they are written with a `kind` tag, e.g.
/// `{"kind":"status","status":503,"count":2,"path_prefix":"/api/2/attributes/update/"}`,
/// `{"kind":"drop","count":1}`, `{"kind":"retry_after_429","count":1,"retry_after_secs":60}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer the next `count` matching requests with `status` and a JSON `detail`.
    Status {
        /// The HTTP status to answer (an invalid code answers 500).
        status: u16,
        /// How many requests.
        count: u32,
        /// Only requests whose path starts with this (e.g. `/api/2/attributes/update/`);
        /// `None` matches every request.
        path_prefix: Option<String>,
    },
    /// Close the next `count` matching connections without answering: a network error.
    Drop {
        /// How many requests.
        count: u32,
        /// As for [`Fault::Status`].
        path_prefix: Option<String>,
    },
    /// Answer the next `count` API requests (`/api/`) with 429 and a `Retry-After` header,
    /// which Exist does not document but a client must honour if present.
    #[serde(rename = "retry_after_429")]
    RetryAfter429 {
        /// How many requests.
        count: u32,
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
}

impl Fault {
    fn count(&self) -> u32 {
        match self {
            Self::Status { count, .. }
            | Self::Drop { count, .. }
            | Self::RetryAfter429 { count, .. } => *count,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Status { path_prefix, .. } | Self::Drop { path_prefix, .. } => {
                path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            }
            Self::RetryAfter429 { .. } => path.starts_with("/api/"),
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

/// Requests per token in the current hour.
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
    pub(crate) values: BTreeMap<(String, Day), serde_json::Value>,
    faults: VecDeque<(Fault, u32)>,
    log: Vec<RequestRecord>,
    rate: RateWindow,
}

impl World {
    /// The user's today, in their profile's timezone.
    pub(crate) fn today(&self) -> Day {
        Day::new(Utc::now().with_timezone(&self.timezone).date_naive())
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
        Ok(Self {
            options,
            base_url,
            world: Mutex::new(World {
                timezone,
                tokens: Tokens::default(),
                attributes: BTreeMap::new(),
                values: BTreeMap::new(),
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

    /// The first queued fault that matches `path`, used up by one.
    pub(crate) fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut world = self.world();
        let index = world.faults.iter().position(|(f, _)| f.matches(path))?;
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
        if let Some(attribute) = world.attributes.get_mut(name) {
            attribute.owner = Owner::OtherService;
        } else if let Some(template) = templates::find(name) {
            let mut attribute = AttributeInfo::from_template(template, false);
            attribute.owner = Owner::OtherService;
            world.attributes.insert(attribute.name.clone(), attribute);
        } else {
            tracing::warn!(attribute = name, "sandbox: no such attribute to give away");
        }
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
}

fn parse_timezone(tz: &str) -> Result<Tz, String> {
    tz.parse()
        .map_err(|_| format!("`{tz}` is not an IANA timezone name (e.g. Europe/Berlin)"))
}

/// A date written exactly `YYYY-MM-DD`, as Exist requires (no `2026-1-5`, no time part).
pub(crate) fn strict_day(text: &str) -> Option<Day> {
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
        .map(Day::new)
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
    fn template_labels_read_like_titles() {
        assert_eq!(label_of("steps_active_min"), "Steps active min");
        assert_eq!(label_of("mood"), "Mood");
    }

    #[test]
    fn faults_match_by_prefix_and_run_out() {
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
        assert!(shared.take_fault("/oauth2/access_token").is_none());
        assert!(matches!(
            shared.take_fault("/api/2/attributes/update/"),
            Some(Fault::Status { status: 503, .. })
        ));
        assert!(matches!(
            shared.take_fault("/api/2/accounts/profile/"),
            Some(Fault::RetryAfter429 { .. })
        ));
        assert!(shared.take_fault("/api/2/attributes/update/").is_some());
        assert!(shared.take_fault("/api/2/attributes/update/").is_none());
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
