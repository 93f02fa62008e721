//! The keys of a `kind = "http"` source: where the records are in a reply, which window of time
//! a query asks for, how pages follow each other, and how the agent authenticates.
//!
//! Each dialect is a tagged type parsed once when the configuration is read: a window or paging
//! style is one variant of [`Window`] or [`Paging`] (a table whose `style` names it, holding
//! exactly that style's keys), an authentication is one variant of [`HttpAuth`]. A new dialect
//! is one more variant here and its arm where the `http` source speaks it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use url::Url;

use super::super::error::{Locator, Seg};
use super::super::{parse_url, ConfigError};
use super::Common;

source_table!(
    /// `kind = "http"`.
    RawHttp {
        url: String,
        #[allow(dead_code, reason = "read on its own, with its path, by `nested`")]
        auth: Option<IgnoredAny>,
        token_env: Option<String>,
        basic_user_env: Option<String>,
        records: Option<String>,
        body_status: Option<String>,
        #[allow(dead_code, reason = "read on its own, with its path, by `nested`")]
        window: Option<IgnoredAny>,
        #[allow(dead_code, reason = "read on its own, with its path, by `nested`")]
        paging: Option<IgnoredAny>,
        updated_field: Option<String>,
        page_limit: Option<i64>,
        window_days: Option<i64>,
        max_pages: Option<i64>,
        max_requests: Option<i64>,
        timeout: Option<String>,
        params: Option<BTreeMap<String, String>>,
    }
);

/// Settings of an `http` source.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// The collection's URL (page 1). Its path may hold `{start}` and `{end}`, the window's
    /// bounds (stored percent-encoded, as `%7Bstart%7D`, which is how [`Url`] keeps braces).
    pub url: Url,
    /// How the agent authenticates.
    pub auth: HttpAuth,
    /// Where a reply holds its records; `None`: the reply is the array, or an object with a
    /// `data`, `results` or `items` array (the health-data conventions).
    pub records: Option<JsonPointer>,
    /// Where a reply that is HTTP 200 carries the service's own status (Withings: `/status`, 0
    /// when all is well); a non-zero one is taken as that status (601 as 429).
    pub body_status: Option<JsonPointer>,
    /// Which span of time each query asks for.
    pub window: Window,
    /// How one query's pages follow each other.
    pub paging: Paging,
    /// The field with each record's unique id.
    pub id_field: String,
    /// The field with each record's last change time.
    pub updated_field: String,
    /// Records per page with `link` paging (its `limit` parameter), 1..=500.
    pub page_limit: u32,
    /// Longest span of one query, in days.
    pub window_days: u32,
    /// The most pages one query may have: a source that keeps linking to more is stopped.
    pub max_pages: u32,
    /// The most requests one pull may make, every page and retry of every query counted.
    pub max_requests: u32,
    /// The longest one pull may take, all its pages and retries included.
    pub timeout: Duration,
    /// Extra query parameters.
    pub params: BTreeMap<String, String>,
}

/// The placeholder of a window's start in a URL path, as [`Url`] stores it.
pub const START_IN_PATH: &str = "%7Bstart%7D";
/// The placeholder of a window's end in a URL path, as [`Url`] stores it.
pub const END_IN_PATH: &str = "%7Bend%7D";

/// A JSON Pointer (RFC 6901), checked when the configuration is read: empty (the whole
/// document), or `/`-separated tokens where `~0` is `~` and `~1` is `/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct JsonPointer(String);

impl JsonPointer {
    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `text` as a JSON Pointer.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(format!(
                "\"{text}\" is not a JSON Pointer: it must be empty (the whole reply) or start with `/`, e.g. \"/{text}\""
            ));
        }
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "\"{text}\" is not a JSON Pointer: `~` must be followed by 0 (for `~`) or 1 (for `/`)"
                ));
            }
        }
        Ok(Self(text.to_owned()))
    }
}

impl TryFrom<String> for JsonPointer {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which span of time a query asks for, and how it says so.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Window {
    /// Records changed since the cursor (`updated_since`, and `updated_before` for a closed
    /// window), times as `YYYYMMDDTHHmmssZ`: the health-data conventions.
    Updated {
        /// The parameter of the window's start.
        #[serde(default = "default_since")]
        since: String,
        /// The parameter of a closed window's end.
        #[serde(default = "default_before")]
        before: String,
    },
    /// Records of a span of days, `YYYY-MM-DD`; the last `lookback_days` days are pulled again
    /// every run, so late data and corrections land.
    Dates {
        /// The parameter of the first day; `None`: `{start}` in the URL's path.
        start: Option<String>,
        /// The parameter of the last day; `None`: `{end}` in the URL's path.
        end: Option<String>,
        /// Days before today pulled again every run.
        #[serde(default)]
        lookback_days: u32,
        /// Whether the API's end date is the day after the last (exclusive), not the last.
        #[serde(default)]
        end_exclusive: bool,
    },
    /// Records between two instants (the starts of the user's days), written in `format`; the
    /// last `lookback_days` days are pulled again every run.
    Timestamps {
        /// The parameter of the start; `None`: `{start}` in the URL's path.
        start: Option<String>,
        /// The parameter of the (exclusive) end; `None`: `{end}` in the URL's path.
        end: Option<String>,
        /// How the instants are written.
        format: TimeFormat,
        /// Days before today pulled again every run.
        #[serde(default)]
        lookback_days: u32,
    },
}

fn default_since() -> String {
    "updated_since".into()
}

fn default_before() -> String {
    "updated_before".into()
}

impl Default for Window {
    fn default() -> Self {
        Self::Updated {
            since: default_since(),
            before: default_before(),
        }
    }
}

impl Window {
    /// The style's name, as written.
    pub fn style(&self) -> &'static str {
        match self {
            Self::Updated { .. } => "updated",
            Self::Dates { .. } => "dates",
            Self::Timestamps { .. } => "timestamps",
        }
    }

    /// Whether queries ask for the change times of records (a cursor of change times), rather
    /// than for the days the records are about.
    pub fn is_updated(&self) -> bool {
        matches!(self, Self::Updated { .. })
    }

    /// The longest span one query may have: 31 days by the health-data conventions, a year
    /// for the windows of days.
    fn longest(&self) -> u32 {
        if self.is_updated() {
            31
        } else {
            366
        }
    }
}

/// How a `timestamps` window writes its instants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TimeFormat {
    /// RFC 3339 in UTC: `2026-11-19T23:00:00Z`.
    Rfc3339,
    /// Unix seconds: `1795129200`.
    Epoch,
    /// A strftime pattern (chrono's), written in the user's timezone.
    Pattern(String),
}

impl TryFrom<String> for TimeFormat {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        use chrono::format::{Item, StrftimeItems};
        match text.as_str() {
            "rfc3339" => Ok(Self::Rfc3339),
            "epoch" => Ok(Self::Epoch),
            pattern => {
                let items: Vec<Item<'_>> = StrftimeItems::new(pattern).collect();
                let has_field = items
                    .iter()
                    .any(|i| matches!(i, Item::Numeric(..) | Item::Fixed(_)));
                if items.iter().any(|i| matches!(i, Item::Error)) || !has_field {
                    return Err(format!(
                        "\"{pattern}\" is not a time format: write \"rfc3339\", \"epoch\", or a strftime pattern such as \"%Y-%m-%dT%H:%M:%S%z\""
                    ));
                }
                Ok(Self::Pattern(text))
            }
        }
    }
}

/// How the pages of one query follow each other.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paging {
    /// The `Link` header's `rel="next"`; without one, `offset` steps by `page_limit`, bounded by
    /// `X-Total-Count`.
    Link {},
    /// An offset parameter, stepped by the records each page held.
    Offset {
        /// The offset's parameter.
        param: String,
        /// The page size's parameter, sent with `limit`.
        limit_param: Option<String>,
        /// Records per page.
        limit: Option<u32>,
    },
    /// A page number, starting at 1.
    Page {
        /// The page number's parameter.
        param: String,
        /// The page size's parameter, sent with `limit`.
        limit_param: Option<String>,
        /// Records per page.
        limit: Option<u32>,
    },
    /// The next page's URL, in the reply's body.
    NextUrl {
        /// Where the URL is.
        next: JsonPointer,
    },
    /// An opaque token in the reply's body, sent back as a parameter.
    Cursor {
        /// Where the token is.
        token: JsonPointer,
        /// The parameter it goes back in.
        param: String,
    },
    /// One page per query.
    None {},
}

impl Default for Paging {
    fn default() -> Self {
        Self::Link {}
    }
}

impl Paging {
    /// The style's name, as written.
    pub fn style(&self) -> &'static str {
        match self {
            Self::Link {} => "link",
            Self::Offset { .. } => "offset",
            Self::Page { .. } => "page",
            Self::NextUrl { .. } => "next_url",
            Self::Cursor { .. } => "cursor",
            Self::None {} => "none",
        }
    }
}

/// Where a secret comes from; it is read when a pull starts, never kept in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    /// This environment variable.
    Env(String),
    /// The standard output of this program (its arguments included), trimmed.
    Command(Vec<String>),
}

/// How an HTTP source is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(SecretFrom),
    /// HTTP Basic; without a password, an empty one (an App Key as the user name).
    Basic {
        /// The user name (or key).
        user: SecretFrom,
        /// The password.
        password: Option<SecretFrom>,
    },
    /// A header of its own (`X-Api-Key: <secret>`).
    Header {
        /// The header's name.
        name: String,
        /// Its value.
        value: SecretFrom,
    },
    /// A query parameter (`?api_key=<secret>`).
    Query {
        /// The parameter's name.
        param: String,
        /// Its value.
        value: SecretFrom,
    },
    /// A provider's OAuth2 access token, authorized with `login --source`.
    OAuth2(Box<super::super::OAuth2Config>),
}

impl HttpAuth {
    /// The environment variables this authentication reads, with the key naming each.
    pub fn env_vars(&self) -> Vec<(&str, &'static str)> {
        fn env<'a>(from: &'a SecretFrom, key: &'static str) -> Option<(&'a str, &'static str)> {
            match from {
                SecretFrom::Env(var) => Some((var.as_str(), key)),
                SecretFrom::Command(_) => None,
            }
        }
        match self {
            Self::None => Vec::new(),
            Self::Bearer(from) => env(from, "auth.bearer_env").into_iter().collect(),
            Self::Basic { user, password } => env(user, "auth.basic_user_env")
                .into_iter()
                .chain(
                    password
                        .as_ref()
                        .and_then(|p| env(p, "auth.basic_password_env")),
                )
                .collect(),
            Self::Header { value, .. } | Self::Query { value, .. } => {
                env(value, "auth.value_env").into_iter().collect()
            }
            Self::OAuth2(o) => match &o.client_secret {
                exist_api::auth::SecretSource::Env(var) => {
                    vec![(var.as_str(), "auth.oauth2.client_secret_env")]
                }
                _ => Vec::new(),
            },
        }
    }
}

/// `auth = { ... }` as written: which keys are present decides the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    bearer_env: Option<String>,
    basic_user_env: Option<String>,
    basic_password_env: Option<String>,
    header: Option<String>,
    query: Option<String>,
    value_env: Option<String>,
    command: Option<Vec<String>>,
    oauth2: Option<super::super::oauth2::RawOAuth2>,
}

/// The forms `auth` takes, for messages.
const AUTH_FORMS: &str = "{ bearer_env = \"VAR\" }, { basic_user_env = \"VAR\", basic_password_env = \"VAR\" }, { header = \"X-Api-Key\", value_env = \"VAR\" }, { query = \"api_key\", value_env = \"VAR\" }, { command = [\"pass\", \"show\", \"token\"] } or { oauth2 = { authorize_url = \"..\", token_url = \"..\", client_id = \"..\" } }";

impl RawAuth {
    fn check(self, fail: impl Fn(&str, String) -> ConfigError) -> Result<HttpAuth, ConfigError> {
        let env = |var: String, key: &str| {
            if var.is_empty() {
                Err(fail(
                    key,
                    format!("`{key}` is empty; write the name of an environment variable"),
                ))
            } else {
                Ok(SecretFrom::Env(var))
            }
        };
        let kinds = [
            self.bearer_env.is_some(),
            self.basic_user_env.is_some(),
            self.header.is_some(),
            self.query.is_some(),
            self.command.is_some(),
            self.oauth2.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(fail(
                "",
                "auth needs exactly one of bearer_env, basic_user_env, header, query, command or oauth2"
                    .into(),
            ));
        }
        let stray = |key: &str, present: bool| {
            if present {
                Err(fail(
                    key,
                    format!("`{key}` does not go with this kind of auth"),
                ))
            } else {
                Ok(())
            }
        };
        stray(
            "basic_password_env",
            self.basic_password_env.is_some() && self.basic_user_env.is_none(),
        )?;
        stray(
            "value_env",
            self.value_env.is_some() && self.header.is_none() && self.query.is_none(),
        )?;
        let value_env = |owner: &str| match self.value_env.clone() {
            Some(var) => env(var, "value_env"),
            None => Err(fail(
                "value_env",
                format!("auth with `{owner}` needs value_env, the variable holding the secret"),
            )),
        };
        Ok(if let Some(var) = self.bearer_env.clone() {
            HttpAuth::Bearer(env(var, "bearer_env")?)
        } else if let Some(var) = self.basic_user_env.clone() {
            HttpAuth::Basic {
                user: env(var, "basic_user_env")?,
                password: self
                    .basic_password_env
                    .clone()
                    .map(|v| env(v, "basic_password_env"))
                    .transpose()?,
            }
        } else if let Some(name) = self.header.clone() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(fail(
                    "header",
                    format!("\"{name}\" is not an HTTP header name"),
                ));
            }
            HttpAuth::Header {
                value: value_env("header")?,
                name,
            }
        } else if let Some(param) = self.query.clone() {
            if param.is_empty() {
                return Err(fail(
                    "query",
                    "`query` is empty; write the parameter's name".into(),
                ));
            }
            HttpAuth::Query {
                value: value_env("query")?,
                param,
            }
        } else {
            let argv = self.command.clone().unwrap_or_default();
            if argv.first().is_none_or(String::is_empty) {
                return Err(fail(
                    "command",
                    "`command` is empty; write the program and its arguments".into(),
                ));
            }
            HttpAuth::Bearer(SecretFrom::Command(argv))
        })
    }
}

/// Whether `auth` holds `oauth2` and nothing else (anything beside it is refused by
/// [`RawAuth::check`], which counts the kinds).
fn auth_is_only_oauth2(auth: &RawAuth) -> bool {
    auth.oauth2.is_some()
        && auth.bearer_env.is_none()
        && auth.basic_user_env.is_none()
        && auth.basic_password_env.is_none()
        && auth.header.is_none()
        && auth.query.is_none()
        && auth.value_env.is_none()
        && auth.command.is_none()
}

/// The longest an HTTP pull may take unless `timeout` says otherwise: generous for a backfill of
/// many pages, and still a bound, so that a source that never ends cannot hold the run forever.
const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The most pages one query may have unless `max_pages` says otherwise: 500 000 records at the
/// largest page size.
const DEFAULT_MAX_PAGES: u32 = 1000;

/// The most requests one pull may make unless `max_requests` says otherwise: a backfill of years
/// in windows of days, a few pages each.
const DEFAULT_MAX_REQUESTS: u32 = 5000;

/// Reads the nested table at `source[i].key`, as `T`; `None` when the key is absent. Serde's
/// words are kept, with the key's path and line, and the style in question when there is one.
fn nested<T: DeserializeOwned>(
    loc: &Locator<'_>,
    i: usize,
    key: &'static str,
    fix: &str,
) -> Result<Option<T>, ConfigError> {
    use serde::de::IntoDeserializer;
    let path = [Seg::Key("source"), Seg::Index(i), Seg::Key(key)];
    let Some(value) = loc.value_at(&path) else {
        return Ok(None);
    };
    let style = value
        .as_inline_table()
        .and_then(|t| t.get("style"))
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    T::deserialize(value.into_deserializer())
        .map(Some)
        .map_err(|e| {
            let message = e.message().trim().to_owned();
            let what = match &style {
                Some(style) => format!("a {style} {key}"),
                None => format!("`{key}`"),
            };
            let (problem, fix) = if let Some(rest) = message.strip_prefix("unknown variant") {
                let expected = rest.split_once("expected").map_or("", |(_, e)| e.trim());
                (
                    format!("\"{}\" is not a {key} style", style.unwrap_or_default()),
                    format!("write style = {expected}"),
                )
            } else if let Some(rest) = message.strip_prefix("unknown field") {
                let (field, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
                let takes = match expected.trim() {
                    "" => "no other keys",
                    listed => listed.trim_start_matches("one of "),
                };
                (
                    format!("{} does not apply to {what}", field.trim()),
                    format!("remove it; {what} takes {takes}"),
                )
            } else if let Some(rest) = message.strip_prefix("missing field") {
                (format!("{what} needs {}", rest.trim()), fix.to_owned())
            } else {
                (format!("{what}: {message}"), fix.to_owned())
            };
            loc.error(&path, problem, fix)
        })
}

pub(super) fn check_http(
    loc: &Locator<'_>,
    i: usize,
    raw: &RawHttp,
    timeout: Option<Duration>,
    agent: &super::super::AgentConfig,
) -> Result<HttpSourceConfig, ConfigError> {
    let at = |k| [Seg::Key("source"), Seg::Index(i), Seg::Key(k)];
    let url = parse_url(loc, &at("url"), &raw.url)?;
    let auth_forms = format!("write auth as one of {AUTH_FORMS}");
    let auth = match nested::<RawAuth>(loc, i, "auth", &auth_forms)? {
        Some(auth) => {
            if let Some(key) = [
                ("token_env", &raw.token_env),
                ("basic_user_env", &raw.basic_user_env),
            ]
            .into_iter()
            .find_map(|(k, v)| v.as_ref().map(|_| k))
            {
                return Err(loc.error(
                    &at(key),
                    format!("both `auth` and `{key}` are set"),
                    format!("keep `auth` and remove `{key}`"),
                ));
            }
            let fail = |key: &str, problem: String| {
                let mut path = at("auth").to_vec();
                if !key.is_empty() {
                    path.push(Seg::Key(key));
                }
                loc.error(&path, problem, auth_forms.clone())
            };
            match &auth.oauth2 {
                Some(oauth2) if auth_is_only_oauth2(&auth) => {
                    let under = |k: &'static str| {
                        vec![
                            Seg::Key("source"),
                            Seg::Index(i),
                            Seg::Key("auth"),
                            Seg::Key("oauth2"),
                            Seg::Key(k),
                        ]
                    };
                    HttpAuth::OAuth2(Box::new(super::super::oauth2::check(
                        loc, &under, oauth2, agent,
                    )?))
                }
                _ => auth.check(fail)?,
            }
        }
        None => match (&raw.token_env, &raw.basic_user_env) {
            (Some(_), Some(_)) => {
                return Err(loc.error(
                    &at("basic_user_env"),
                    "both token_env and basic_user_env are set",
                    "keep one: token_env for a Bearer token, basic_user_env for an App Key",
                ))
            }
            (Some(v), None) => HttpAuth::Bearer(SecretFrom::Env(v.clone())),
            (None, Some(v)) => HttpAuth::Basic {
                user: SecretFrom::Env(v.clone()),
                password: None,
            },
            (None, None) => HttpAuth::None,
        },
    };
    let records = raw
        .records
        .as_deref()
        .map(JsonPointer::parse)
        .transpose()
        .map_err(|problem| {
            loc.error(
                &at("records"),
                problem,
                "write where the reply holds its list of records, e.g. records = \"/data\" (\"\" for the reply itself)",
            )
        })?;
    let body_status = raw
        .body_status
        .as_deref()
        .map(JsonPointer::parse)
        .transpose()
        .map_err(|problem| {
            loc.error(
                &at("body_status"),
                problem,
                "write where the reply holds the service's status, e.g. body_status = \"/status\"",
            )
        })?;
    let window: Window = nested(
        loc,
        i,
        "window",
        "see config.example.toml for the window styles and their keys",
    )?
    .unwrap_or_default();
    let paging: Paging = nested(
        loc,
        i,
        "paging",
        "see config.example.toml for the paging styles and their keys",
    )?
    .unwrap_or_default();
    check_window(loc, i, &url, &window)?;
    check_paging(loc, i, &paging)?;
    let bounded = |key: &'static str,
                   value: Option<i64>,
                   default: u32,
                   range: std::ops::RangeInclusive<u32>,
                   why: &str| {
        match value {
            None => Ok(default),
            Some(n) if u32::try_from(n).is_ok_and(|n| range.contains(&n)) => Ok(n as u32),
            Some(n) => Err(loc.error(
                &at(key),
                format!("{n} is outside {}..={}", range.start(), range.end()),
                format!(
                    "write a number from {} to {} ({why})",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    if raw.page_limit.is_some() && !matches!(paging, Paging::Link {}) {
        return Err(loc.error(
            &at("page_limit"),
            format!(
                "page_limit is the page size of link paging, and this source pages by {}",
                paging.style()
            ),
            "remove it, or give the page size as the paging's limit (limit_param and limit)",
        ));
    }
    let page_limit = bounded(
        "page_limit",
        raw.page_limit,
        500,
        1..=500,
        "the API's largest page is 500",
    )?;
    let longest = window.longest();
    let window_days = bounded(
        "window_days",
        raw.window_days,
        31,
        1..=longest,
        if window.is_updated() {
            "one query may span at most 31 days"
        } else {
            "one query may span at most a year"
        },
    )?;
    let max_pages = bounded(
        "max_pages",
        raw.max_pages,
        DEFAULT_MAX_PAGES,
        1..=1_000_000,
        "pages one query may have",
    )?;
    let max_requests = bounded(
        "max_requests",
        raw.max_requests,
        DEFAULT_MAX_REQUESTS,
        1..=1_000_000,
        "requests one pull may make, retries included",
    )?;
    Ok(HttpSourceConfig {
        url,
        auth,
        records,
        body_status,
        window,
        paging,
        id_field: raw.id_field.clone().unwrap_or_else(|| "id".into()),
        updated_field: raw
            .updated_field
            .clone()
            .unwrap_or_else(|| "updatedAt".into()),
        page_limit,
        window_days,
        max_pages,
        max_requests,
        timeout: timeout.unwrap_or(DEFAULT_PULL_TIMEOUT),
        params: raw.params.clone().unwrap_or_default(),
    })
}

/// A window's bounds go somewhere: a parameter, or `{start}`/`{end}` in the URL's path, not both.
fn check_window(
    loc: &Locator<'_>,
    i: usize,
    url: &Url,
    window: &Window,
) -> Result<(), ConfigError> {
    let key = |k: &'static str| {
        [
            Seg::Key("source"),
            Seg::Index(i),
            Seg::Key("window"),
            Seg::Key(k),
        ]
    };
    let in_path = |placeholder: &str| url.path().contains(placeholder);
    let lookback = match window {
        Window::Updated { since, before } => {
            if let Some(placeholder) = [START_IN_PATH, END_IN_PATH]
                .into_iter()
                .find(|p| in_path(p))
            {
                return Err(loc.error(
                    &[Seg::Key("source"), Seg::Index(i), Seg::Key("url")],
                    format!(
                        "the url holds {}, which only a dates or timestamps window fills",
                        percent_decoded(placeholder)
                    ),
                    "remove it from the url, or set window = { style = \"dates\", ... }",
                ));
            }
            for (k, name) in [("since", since), ("before", before)] {
                if name.is_empty() {
                    return Err(loc.error(
                        &key(k),
                        format!("`{k}` is empty"),
                        "write the parameter's name, e.g. since = \"updated_since\"",
                    ));
                }
            }
            return Ok(());
        }
        Window::Dates {
            start,
            end,
            lookback_days,
            ..
        }
        | Window::Timestamps {
            start,
            end,
            lookback_days,
            ..
        } => {
            for (k, name, placeholder) in
                [("start", start, START_IN_PATH), ("end", end, END_IN_PATH)]
            {
                let braces = percent_decoded(placeholder);
                match (name, in_path(placeholder)) {
                    (Some(_), true) => {
                        return Err(loc.error(
                            &key(k),
                            format!("the window's {k} is both the parameter `{k}` and {braces} in the url"),
                            format!("keep one: remove `{k}`, or {braces} from the url"),
                        ))
                    }
                    (None, false) => {
                        return Err(loc.error(
                            &[Seg::Key("source"), Seg::Index(i), Seg::Key("window")],
                            format!("a {} window needs `{k}`, the parameter of its {k}", window.style()),
                            format!("write {k} = \"{k}_date\" (the API's name for it), or put {braces} in the url's path"),
                        ))
                    }
                    (Some(name), false) if name.is_empty() => {
                        return Err(loc.error(&key(k), format!("`{k}` is empty"), "write the parameter's name"))
                    }
                    _ => {}
                }
            }
            *lookback_days
        }
    };
    if lookback > 366 {
        return Err(loc.error(
            &key("lookback_days"),
            format!("{lookback} is outside 0..=366"),
            "write how many days before today every run pulls again, e.g. lookback_days = 3",
        ));
    }
    Ok(())
}

fn percent_decoded(placeholder: &str) -> String {
    placeholder.replace("%7B", "{").replace("%7D", "}")
}

/// Parameter names are not empty; a page size comes with its parameter.
fn check_paging(loc: &Locator<'_>, i: usize, paging: &Paging) -> Result<(), ConfigError> {
    let key = |k: &'static str| {
        [
            Seg::Key("source"),
            Seg::Index(i),
            Seg::Key("paging"),
            Seg::Key(k),
        ]
    };
    let (param, limit_param, limit) = match paging {
        Paging::Offset {
            param,
            limit_param,
            limit,
        }
        | Paging::Page {
            param,
            limit_param,
            limit,
        } => (Some(param), limit_param, *limit),
        Paging::Cursor { param, .. } => (Some(param), &None, None),
        Paging::Link {} | Paging::NextUrl { .. } | Paging::None {} => (None, &None, None),
    };
    if param.is_some_and(String::is_empty) || limit_param.as_ref().is_some_and(String::is_empty) {
        let k = if param.is_some_and(String::is_empty) {
            "param"
        } else {
            "limit_param"
        };
        return Err(loc.error(
            &key(k),
            format!("`{k}` is empty"),
            "write the parameter's name",
        ));
    }
    match (limit_param, limit) {
        (Some(_), None) => Err(loc.error(
            &key("limit_param"),
            "limit_param is set without limit",
            "write limit = the number of records per page, or remove limit_param",
        )),
        (None, Some(_)) => Err(loc.error(
            &key("limit"),
            "limit is set without limit_param",
            "write limit_param = the parameter's name (e.g. \"limit\"), or remove limit",
        )),
        (Some(_), Some(0)) => Err(loc.error(
            &key("limit"),
            "limit is 0",
            "write the number of records per page, at least 1",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{
        Config, ConfigError, HttpAuth, HttpSourceConfig, JsonPointer, Paging, SecretFrom,
        SourceKind, TimeFormat, Window,
    };

    const HEAD: &str = "[exist]\nclient_id = \"abc\"\n\n[[source]]\nname = \"s\"\nkind = \"http\"\ndate_field = \"day\"\n";

    fn http(keys: &str) -> Result<HttpSourceConfig, ConfigError> {
        let text = format!("{HEAD}{keys}\n");
        let config = Config::parse(Path::new("/etc/test.toml"), &text)?;
        match config.sources.into_iter().next().map(|s| s.kind) {
            Some(SourceKind::Http(h)) => Ok(h),
            other => panic!("an http source, not {other:?}"),
        }
    }

    fn refused(keys: &str) -> ConfigError {
        http(keys).expect_err("the configuration should be refused")
    }

    const URL: &str = "url = \"https://api.example.com/v2/daily\"\n";

    #[test]
    fn every_dialect_is_read_into_its_type() {
        let h = http(&format!(
            "{URL}auth = {{ bearer_env = \"OURA_TOKEN\" }}\nrecords = \"/data\"\nwindow = {{ style = \"dates\", start = \"start_date\", end = \"end_date\", lookback_days = 3 }}\npaging = {{ style = \"cursor\", token = \"/next_token\", param = \"next_token\" }}\nmax_requests = 40"
        ))
        .unwrap();
        assert_eq!(
            h.auth,
            HttpAuth::Bearer(SecretFrom::Env("OURA_TOKEN".into()))
        );
        assert_eq!(h.records, Some(JsonPointer::parse("/data").unwrap()));
        assert_eq!(
            h.window,
            Window::Dates {
                start: Some("start_date".into()),
                end: Some("end_date".into()),
                lookback_days: 3,
                end_exclusive: false
            }
        );
        assert_eq!(
            h.paging,
            Paging::Cursor {
                token: JsonPointer::parse("/next_token").unwrap(),
                param: "next_token".into()
            }
        );
        assert_eq!(h.max_requests, 40);
        // The defaults are the health-data conventions.
        let plain = http(URL).unwrap();
        assert_eq!(
            (plain.window, plain.paging, plain.records, plain.auth),
            (Window::default(), Paging::Link {}, None, HttpAuth::None)
        );
    }

    #[test]
    fn every_auth_form_is_read() {
        let cases = [
            (
                "{ basic_user_env = \"U\", basic_password_env = \"P\" }",
                HttpAuth::Basic {
                    user: SecretFrom::Env("U".into()),
                    password: Some(SecretFrom::Env("P".into())),
                },
            ),
            (
                "{ header = \"X-Api-Key\", value_env = \"K\" }",
                HttpAuth::Header {
                    name: "X-Api-Key".into(),
                    value: SecretFrom::Env("K".into()),
                },
            ),
            (
                "{ query = \"api_key\", value_env = \"K\" }",
                HttpAuth::Query {
                    param: "api_key".into(),
                    value: SecretFrom::Env("K".into()),
                },
            ),
            (
                "{ command = [\"pass\", \"show\", \"oura\"] }",
                HttpAuth::Bearer(SecretFrom::Command(vec![
                    "pass".into(),
                    "show".into(),
                    "oura".into(),
                ])),
            ),
        ];
        for (auth, expected) in cases {
            assert_eq!(
                http(&format!("{URL}auth = {auth}")).unwrap().auth,
                expected,
                "{auth}"
            );
        }
        // The keys of the first release still work.
        assert_eq!(
            http(&format!("{URL}basic_user_env = \"KEY\""))
                .unwrap()
                .auth,
            HttpAuth::Basic {
                user: SecretFrom::Env("KEY".into()),
                password: None
            }
        );
    }

    #[test]
    fn auth_that_cannot_be_used_is_refused_at_its_key() {
        for (auth, key, says) in [
            (
                "{ bearer_env = \"A\", query = \"k\", value_env = \"B\" }",
                "source[1].auth",
                "exactly one of",
            ),
            (
                "{ header = \"X-Key\" }",
                "source[1].auth.value_env",
                "needs value_env",
            ),
            (
                "{ header = \"Bad Header\", value_env = \"K\" }",
                "source[1].auth.header",
                "not an HTTP header name",
            ),
            (
                "{ bearer_env = \"A\", value_env = \"B\" }",
                "source[1].auth.value_env",
                "does not go with",
            ),
            ("{ command = [] }", "source[1].auth.command", "is empty"),
            (
                "{ bearer_env = \"\" }",
                "source[1].auth.bearer_env",
                "is empty",
            ),
            (
                "{ token = \"A\" }",
                "source[1].auth",
                "`token` does not apply to `auth`",
            ),
        ] {
            let e = refused(&format!("{URL}auth = {auth}"));
            assert_eq!(e.key, key, "{auth}: {e}");
            assert!(e.problem.contains(says), "{auth}: {e}");
            assert_eq!(e.line, Some(9), "{auth}: {e}");
        }
        let e = refused(&format!(
            "{URL}token_env = \"T\"\nauth = {{ bearer_env = \"A\" }}"
        ));
        assert_eq!(e.key, "source[1].token_env");
    }

    #[test]
    fn styles_are_checked_when_the_configuration_is_read() {
        for (keys, key, says, fix) in [
            (
                "paging = { style = \"scroll\" }",
                "source[1].paging",
                "\"scroll\" is not a paging style",
                "`link`, `offset`, `page`, `next_url`, `cursor`, `none`",
            ),
            (
                "window = { style = \"dates\", end = \"to\" }",
                "source[1].window",
                "a dates window needs `start`",
                "{start} in the url",
            ),
            (
                "window = { style = \"dates\", start = \"from\", end = \"to\", format = \"epoch\" }",
                "source[1].window",
                "`format` does not apply to a dates window",
                "`lookback_days`",
            ),
            (
                "window = { style = \"timestamps\", start = \"from\", end = \"to\" }",
                "source[1].window",
                "a timestamps window needs `format`",
                "config.example.toml",
            ),
            (
                "window = { style = \"timestamps\", start = \"from\", end = \"to\", format = \"%Q\" }",
                "source[1].window",
                "\"%Q\" is not a time format",
                "config.example.toml",
            ),
            (
                "paging = { style = \"cursor\", token = \"next_token\", param = \"next\" }",
                "source[1].paging",
                "is not a JSON Pointer",
                "config.example.toml",
            ),
            (
                "paging = { style = \"cursor\", token = \"/next_token\" }",
                "source[1].paging",
                "a cursor paging needs `param`",
                "config.example.toml",
            ),
            (
                "paging = { style = \"offset\", param = \"offset\", limit = 100 }",
                "source[1].paging.limit",
                "without limit_param",
                "limit_param =",
            ),
            (
                "paging = { style = \"page\", param = \"\" }",
                "source[1].paging.param",
                "is empty",
                "parameter's name",
            ),
            (
                "window = { lookback_days = 2 }",
                "source[1].window",
                "needs `style`",
                "config.example.toml",
            ),
            (
                "records = \"/data~2\"",
                "source[1].records",
                "`~` must be followed by 0",
                "records = \"/data\"",
            ),
            (
                "paging = { style = \"none\" }\npage_limit = 100",
                "source[1].page_limit",
                "pages by none",
                "remove it",
            ),
            (
                "window = { style = \"dates\", start = \"a\", end = \"b\", lookback_days = 400 }",
                "source[1].window.lookback_days",
                "outside 0..=366",
                "lookback_days = 3",
            ),
        ] {
            let e = refused(&format!("{URL}{keys}"));
            assert_eq!(e.key, key, "{keys}: {e}");
            assert!(e.problem.contains(says), "{keys}: {e}");
            assert!(e.fix.contains(fix), "{keys}: {e}");
            assert!(e.line.is_some(), "{keys}: {e}");
        }
    }

    #[test]
    fn window_bounds_may_go_in_the_urls_path_but_not_twice() {
        let h = http("url = \"http://ha.local:8123/api/history/period/{start}\"\nwindow = { style = \"timestamps\", format = \"rfc3339\", end = \"end_time\" }").unwrap();
        assert_eq!(h.url.path(), "/api/history/period/%7Bstart%7D");
        assert!(matches!(
            h.window,
            Window::Timestamps {
                start: None,
                format: TimeFormat::Rfc3339,
                ..
            }
        ));
        let e = refused("url = \"http://h/p/{start}\"\nwindow = { style = \"dates\", start = \"from\", end = \"to\" }");
        assert_eq!(e.key, "source[1].window.start");
        assert!(e.problem.contains("both the parameter"), "{e}");
        let e = refused("url = \"http://h/p/{end}\"");
        assert_eq!(e.key, "source[1].url");
        assert!(
            e.problem
                .contains("only a dates or timestamps window fills"),
            "{e}"
        );
    }

    #[test]
    fn windows_of_days_may_span_a_year_and_change_times_a_month() {
        let dates = "window = { style = \"dates\", start = \"a\", end = \"b\" }";
        assert_eq!(
            http(&format!("{URL}{dates}\nwindow_days = 92"))
                .unwrap()
                .window_days,
            92
        );
        let e = refused(&format!("{URL}window_days = 92"));
        assert!(e.fix.contains("at most 31 days"), "{e}");
    }

    #[test]
    fn a_sqlite_source_needs_a_query() {
        let text = "[exist]\nclient_id = \"abc\"\n\n[[source]]\nname = \"band\"\nkind = \"sqlite\"\npath = \"~/Gadgetbridge\"\nquery = \"SELECT ts, steps FROM samples\"\ndate_field = \"ts\"\n";
        let config = Config::parse(Path::new("/etc/test.toml"), text).unwrap();
        let Some(SourceKind::Sqlite(q)) = config.sources.first().map(|s| &s.kind) else {
            panic!("a sqlite source")
        };
        assert_eq!(q.query, "SELECT ts, steps FROM samples");
        assert!(q.path.ends_with("Gadgetbridge") && !q.path.starts_with("~"));
        let e = Config::parse(
            Path::new("/etc/test.toml"),
            &text.replace("SELECT ts, steps FROM samples", " "),
        )
        .unwrap_err();
        assert_eq!(e.key, "source[1].query");
        let e = Config::parse(
            Path::new("/etc/test.toml"),
            &text.replace("date_field", "url = \"http://x\"\ndate_field"),
        )
        .unwrap_err();
        assert!(e.problem.contains("it is a key of http sources"), "{e}");
    }
}
