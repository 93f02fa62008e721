//! The configuration: one TOML file, checked whole before anything runs.
//!
//! [`Config::load`] reads the file, refuses unknown keys and wrong types, and checks everything
//! that can be checked without the network: source names, attribute sources, templates, limits,
//! the schedule. Each error names the file, the line and the key, and says what to write instead.

mod error;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use url::Url;

pub use error::ConfigError;
use error::{Locator, Seg};
use raw::{RawAttribute, RawConfig, RawHttp, RawKind, RawSource};

use crate::schedule::Plan;
pub use crate::schedule::Schedule;
pub use exist_api::auth::SecretSource;
use exist_api::templates::{self, Template};
pub use exist_api::tokens::TokenStoreKind;
use exist_api::types::{Group, ValueType};
use exist_api::Secret;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "EXIST_AGENT_CONFIG";

/// Exist's public host; the API lives at `{base_url}/api/2/`.
pub const DEFAULT_BASE_URL: &str = "https://exist.io";

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// How to reach Exist.
    pub exist: ExistConfig,
    /// How the agent runs.
    pub agent: AgentConfig,
    /// Where data comes from, in file order; names are unique.
    pub sources: Vec<SourceConfig>,
    /// What is pushed to Exist, in file order.
    pub attributes: Vec<AttributeConfig>,
}

/// The `[exist]` table.
#[derive(Debug, Clone)]
pub struct ExistConfig {
    /// Exist's host, without the `/api/2/` part.
    pub base_url: Url,
    /// The OAuth client id of the user's registered app.
    pub client_id: String,
    /// Where the client secret comes from.
    pub client_secret: SecretSource,
    /// The loopback address `login` listens on and Exist redirects to.
    pub redirect_uri: exist_api::auth::RedirectUri,
    /// The user's timezone, when configured; otherwise the Exist profile's.
    pub timezone: Option<Tz>,
}

/// The `[agent]` table.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// When the daemon syncs: the configured schedule at this install's minute, checked to fire.
    pub schedule: Plan,
    /// How many days, today included, are re-computed every run (at least 2).
    pub resync_days: u32,
    /// Local time at which a day begins.
    pub day_starts: NaiveTime,
    /// Where OAuth tokens are kept.
    pub token_store: TokenStoreKind,
    /// The state directory: configured, or the platform's.
    pub state_dir: PathBuf,
    /// The loopback address the daemon accepts signed notifications on.
    pub listen: Option<SocketAddr>,
    /// The shared secret notifications are signed with.
    pub notify_secret: Option<SecretSource>,
}

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name, used by attributes and in messages.
    pub name: String,
    /// The field holding each record's date or timestamp.
    pub date_field: String,
    /// The field holding a record's UTC offset (`-08:00`), if any.
    pub tz_offset_field: Option<String>,
    /// How often to pull this source; `None`: every run.
    pub every: Option<Duration>,
    /// What kind of source, with its own settings.
    pub kind: SourceKind,
}

/// The three kinds of source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A health-data style HTTP API.
    Http(HttpSourceConfig),
    /// A CSV or JSON Lines file, read whole.
    File(FileSourceConfig),
    /// A program whose standard output is JSON Lines or CSV.
    Command(CommandSourceConfig),
}

/// How a kind of source is pulled: the one place that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// Read whole every run (a file, a command's output): its records are not stored, and what
    /// it holds now is the truth for its days.
    Whole,
    /// Pulled incrementally (`updated_since`): records are stored by id, and the days whose
    /// records changed are recomputed from the store.
    Incremental,
}

impl SourceKind {
    /// How this kind is pulled.
    pub fn pull_mode(&self) -> PullMode {
        match self {
            Self::Http(_) => PullMode::Incremental,
            Self::File(_) | Self::Command(_) => PullMode::Whole,
        }
    }

    /// Whether records of this kind name an id field, so that a version replaces an older one.
    pub fn id_field(&self) -> Option<&str> {
        match self {
            Self::Http(h) => Some(&h.id_field),
            Self::File(f) => f.id_field.as_deref(),
            Self::Command(c) => c.id_field.as_deref(),
        }
    }

    /// The kind's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::File(_) => "file",
            Self::Command(_) => "command",
        }
    }
}

/// Settings of an `http` source.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// The collection's URL (page 1).
    pub url: Url,
    /// How the agent authenticates.
    pub auth: HttpAuth,
    /// The field with each record's unique id.
    pub id_field: String,
    /// The field with each record's last change time.
    pub updated_field: String,
    /// Records per page, 1..=500.
    pub page_limit: u32,
    /// Longest span of one pull, in days (at most 31).
    pub window_days: u32,
    /// The most pages one query may have: a source that keeps linking to more is stopped.
    pub max_pages: u32,
    /// The longest one pull may take, all its pages and retries included.
    pub timeout: Duration,
    /// Extra query parameters.
    pub params: BTreeMap<String, String>,
}

/// How an HTTP source is authenticated; secrets stay in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// No credentials.
    None,
    /// `Authorization: Bearer $VAR`.
    BearerEnv(String),
    /// An App Key from `$VAR` as the Basic user with an empty password.
    BasicUserEnv(String),
}

/// The format of a file or a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// Settings of a `file` source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// The file, with `~` expanded.
    pub path: PathBuf,
    /// Its format (from `format`, else from the extension).
    pub format: RecordFormat,
    /// The field with a record's id, if records carry one.
    pub id_field: Option<String>,
}

/// Settings of a `command` source.
#[derive(Debug, Clone)]
pub struct CommandSourceConfig {
    /// The program and its arguments (no shell unless the user writes one).
    pub argv: Vec<String>,
    /// The format of its standard output.
    pub format: RecordFormat,
    /// How long it may run.
    pub timeout: Duration,
    /// The field with a record's id, if records carry one.
    pub id_field: Option<String>,
}

/// One `[[attribute]]`: an Exist attribute and how its daily value is computed.
#[derive(Debug, Clone)]
pub struct AttributeConfig {
    /// Which Exist attribute.
    pub target: AttributeTarget,
    /// The source its records come from.
    pub source: String,
    /// The record field aggregated (not needed for `count`).
    pub field: Option<String>,
    /// How a day's records become one value.
    pub aggregate: Aggregate,
}

impl AttributeConfig {
    /// The attribute's group.
    pub fn group(&self) -> Group {
        match &self.target {
            AttributeTarget::Template(t) => t.group,
            AttributeTarget::Existing { group, .. } | AttributeTarget::Custom { group, .. } => {
                *group
            }
        }
    }

    /// The attribute's value type.
    pub fn value_type(&self) -> ValueType {
        match &self.target {
            AttributeTarget::Template(t) => t.value_type,
            AttributeTarget::Existing { value_type, .. }
            | AttributeTarget::Custom { value_type, .. } => *value_type,
        }
    }

    /// A stable key for this attribute in the state store, independent of Exist's naming.
    pub fn key(&self) -> String {
        match &self.target {
            AttributeTarget::Template(t) => format!("template:{}", t.name),
            AttributeTarget::Existing { name, .. } => format!("name:{name}"),
            AttributeTarget::Custom { label, .. } => format!("custom:{label}"),
        }
    }

    /// How the attribute is shown to people before Exist has named it.
    pub fn display_name(&self) -> String {
        match &self.target {
            AttributeTarget::Template(t) => t.name.to_owned(),
            AttributeTarget::Existing { name, .. } => name.clone(),
            AttributeTarget::Custom { label, .. } => label.clone(),
        }
    }
}

/// Which Exist attribute an `[[attribute]]` writes.
#[derive(Debug, Clone)]
pub enum AttributeTarget {
    /// A template: acquired, its name is the template's.
    Template(&'static Template),
    /// An attribute the user already has, acquired by name.
    Existing {
        /// Its Exist name.
        name: String,
        /// Its group.
        group: Group,
        /// Its value type.
        value_type: ValueType,
    },
    /// A custom attribute: created once; Exist chooses its name.
    Custom {
        /// The label shown in Exist.
        label: String,
        /// Its group.
        group: Group,
        /// Its value type.
        value_type: ValueType,
    },
}

/// How a day's records become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum of the field.
    Sum,
    /// Number of records.
    Count,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Arithmetic mean.
    Mean,
    /// The value of the latest record.
    Last,
}

impl Aggregate {
    const NAMES: [(&'static str, Aggregate); 6] = [
        ("sum", Self::Sum),
        ("count", Self::Count),
        ("max", Self::Max),
        ("min", Self::Min),
        ("mean", Self::Mean),
        ("last", Self::Last),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }
}

impl ExistConfig {
    /// The registered Exist app, as the API client needs it.
    pub fn app(&self) -> exist_api::auth::App {
        exist_api::auth::App {
            base_url: self.base_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            problem: format!("cannot read the configuration file: {e}"),
            fix: format!(
                "create it (see config.example.toml), or point --config or {CONFIG_ENV} at your file"
            ),
        })?;
        Self::parse(path, &text)
    }

    /// Checks configuration `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let loc = Locator::new(path, text);
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| toml_error(&loc, e.span(), e.message()))?;
        let sources = (0..raw.source.len())
            .map(|i| read_source(&loc, i))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_raw(path, &loc, raw, sources)
    }

    fn from_raw(
        path: &Path,
        loc: &Locator<'_>,
        raw: RawConfig,
        raw_sources: Vec<RawSource>,
    ) -> Result<Self, ConfigError> {
        let exist = check_exist(loc, raw.exist)?;
        let agent = check_agent(loc, raw.agent)?;
        let mut sources = Vec::with_capacity(raw_sources.len());
        for (i, s) in raw_sources.into_iter().enumerate() {
            let source = check_source(loc, i, s)?;
            if sources.iter().any(|o: &SourceConfig| o.name == source.name) {
                return Err(loc.error(
                    &[Seg::Key("source"), Seg::Index(i), Seg::Key("name")],
                    format!("a second source is named \"{}\"", source.name),
                    "give every [[source]] a unique name",
                ));
            }
            sources.push(source);
        }
        let mut attributes = Vec::with_capacity(raw.attribute.len());
        let mut keys = BTreeSet::new();
        for (i, a) in raw.attribute.into_iter().enumerate() {
            let attribute = check_attribute(loc, i, a, &sources)?;
            if !keys.insert(attribute.key()) {
                return Err(loc.error(
                    &[Seg::Key("attribute"), Seg::Index(i)],
                    format!(
                        "attribute \"{}\" is configured twice",
                        attribute.display_name()
                    ),
                    "keep one [[attribute]] per Exist attribute (one value per day each)",
                ));
            }
            attributes.push(attribute);
        }
        Ok(Self {
            path: path.to_owned(),
            exist,
            agent,
            sources,
            attributes,
        })
    }

    /// The OAuth scopes this configuration needs: one write scope per group it writes, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let scopes: BTreeSet<String> = self
            .attributes
            .iter()
            .map(|a| a.group().write_scope())
            .collect();
        scopes.into_iter().collect()
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The state directory: configured, or the platform's.
    pub fn state_dir(&self) -> PathBuf {
        self.agent.state_dir.clone()
    }
}

/// The platform's configuration file path, e.g. `~/.config/exist-agent/config.toml`.
pub fn default_config_path() -> PathBuf {
    project_dirs()
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("exist-agent.toml"))
}

/// The platform's state directory, e.g. `~/.local/state/exist-agent`.
pub fn default_state_dir() -> PathBuf {
    project_dirs()
        .map(|d| {
            d.state_dir()
                .unwrap_or_else(|| d.data_local_dir())
                .to_owned()
        })
        .unwrap_or_else(|| PathBuf::from(".exist-agent"))
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("io", "exist", "exist-agent")
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), directories::BaseDirs::new()) {
        (Some(rest), Some(dirs)) => dirs.home_dir().join(rest),
        _ => PathBuf::from(path),
    }
}

/// A TOML or serde error at `span`, with the key found there and a fix for its kind.
fn toml_error(
    loc: &Locator<'_>,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> ConfigError {
    let key = span
        .clone()
        .map(|s| loc.key_at(s.start))
        .unwrap_or_default();
    let (problem, fix) = explain_toml_error(message);
    loc.error_at(span, key, problem, fix)
}

/// Reads `[[source]]` number `i` as its kind's table.
fn read_source(loc: &Locator<'_>, i: usize) -> Result<RawSource, ConfigError> {
    use serde::de::IntoDeserializer;
    use serde::Deserialize;
    let here = [Seg::Key("source"), Seg::Index(i)];
    let Some(value) = loc.value_at(&here) else {
        return Err(loc.error(
            &here,
            "is not a table",
            "write it as [[source]] with its keys",
        ));
    };
    let de_error = |e: toml_edit::de::Error| toml_error(loc, e.span(), e.message());
    let kind = RawKind::deserialize(value.clone().into_deserializer()).map_err(de_error)?;
    match RawSource::read(&kind.kind, value.into_deserializer()) {
        Some(read) => read.map_err(|e| source_key_error(loc, i, &kind.kind, e)),
        None => {
            let kinds: Vec<String> = RawSource::KINDS
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect();
            Err(loc.error(
                &[Seg::Key("source"), Seg::Index(i), Seg::Key("kind")],
                format!("\"{}\" is not a source kind", kind.kind),
                format!("write one of {}", kinds.join(", ")),
            ))
        }
    }
}

/// An error inside `[[source]]` number `i` of `kind`: a key of another kind, or a missing one, is
/// said in the source's words; anything else as TOML says it.
fn source_key_error(
    loc: &Locator<'_>,
    i: usize,
    kind: &str,
    e: toml_edit::de::Error,
) -> ConfigError {
    let quoted = |text: &str| text.split('`').nth(1).map(str::to_owned);
    let takes = || RawSource::keys(kind).join(", ");
    if let Some(key) = e.message().strip_prefix("unknown field").and_then(quoted) {
        let other = RawSource::KINDS
            .iter()
            .find(|k| **k != kind && RawSource::keys(k).contains(&key.as_str()));
        if let Some(other) = other {
            return loc.error(
                &[Seg::Key("source"), Seg::Index(i), Seg::Key(&key)],
                format!(
                    "`{key}` does not apply to a {kind} source (it is a key of {other} sources)"
                ),
                format!("remove it; a {kind} source takes {}", takes()),
            );
        }
    }
    if let Some(key) = e.message().strip_prefix("missing field").and_then(quoted) {
        return loc.error(
            &[Seg::Key("source"), Seg::Index(i)],
            format!("a {kind} source needs `{key}`"),
            format!(
                "add {key} = ... (config.example.toml shows one); a {kind} source takes {}",
                takes()
            ),
        );
    }
    toml_error(loc, e.span(), e.message())
}

fn explain_toml_error(message: &str) -> (String, String) {
    let message = message.trim().to_owned();
    let fix = if let Some(rest) = message.strip_prefix("unknown field") {
        let expected = rest
            .split_once("expected")
            .map(|(_, e)| e.trim())
            .unwrap_or("");
        format!("remove or rename the key; the keys allowed here are {expected}")
    } else if message.starts_with("missing field") {
        "add the key (see config.example.toml)".to_owned()
    } else if message.starts_with("invalid type") {
        "write the value with the type shown (strings in quotes, numbers bare)".to_owned()
    } else {
        "fix the TOML syntax at that line".to_owned()
    };
    (message, fix)
}

fn check_exist(loc: &Locator<'_>, raw: raw::RawExist) -> Result<ExistConfig, ConfigError> {
    let at = |k| [Seg::Key("exist"), Seg::Key(k)];
    let base_url = parse_url(
        loc,
        &at("base_url"),
        raw.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
    )?;
    // Kept exactly as written: Exist compares it with the registered one character for character.
    let written = raw
        .redirect_uri
        .as_deref()
        .unwrap_or("http://localhost:8000/");
    parse_url(loc, &at("redirect_uri"), written)?;
    let redirect_uri = exist_api::auth::RedirectUri::parse(written).map_err(|_| {
        loc.error(
            &at("redirect_uri"),
            "is not a URL",
            "write e.g. \"http://localhost:8000/\"",
        )
    })?;
    if !is_loopback(redirect_uri.url()) {
        return Err(loc.error(
            &at("redirect_uri"),
            format!("{redirect_uri} is not a loopback address; login listens on it"),
            "use http://localhost:PORT/ or http://127.0.0.1:PORT/ and register the same URI in your Exist app",
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(loc.error(
            &at("client_id"),
            "is empty",
            "copy your Exist app's client id",
        ));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_env) {
        (Some(_), Some(_)) => {
            return Err(loc.error(
                &at("client_secret"),
                "both client_secret and client_secret_env are set",
                "keep one; client_secret_env keeps the secret out of the file",
            ))
        }
        (Some(s), None) => SecretSource::Inline(Secret::new(s)),
        (None, Some(var)) => SecretSource::Env(var),
        (None, None) => SecretSource::None,
    };
    let timezone = match raw.timezone {
        None => None,
        Some(tz) => Some(tz.parse::<Tz>().map_err(|_| {
            loc.error(
                &at("timezone"),
                format!("\"{tz}\" is not an IANA timezone"),
                "write a name such as \"Europe/Berlin\" or \"America/New_York\", or remove it to use your Exist profile's",
            )
        })?),
    };
    Ok(ExistConfig {
        base_url,
        client_id: raw.client_id,
        client_secret,
        redirect_uri,
        timezone,
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_url(loc: &Locator<'_>, path: &[Seg<'_>], text: &str) -> Result<Url, ConfigError> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        _ => Err(loc.error(
            path,
            format!("\"{text}\" is not an http(s) URL"),
            "write a full URL such as \"https://exist.io\"",
        )),
    }
}

fn check_agent(loc: &Locator<'_>, raw: raw::RawAgent) -> Result<AgentConfig, ConfigError> {
    let at = |k| [Seg::Key("agent"), Seg::Key(k)];
    let state_dir = raw
        .state_dir
        .as_deref()
        .map_or_else(default_state_dir, expand_home);
    let schedule = match raw.schedule.as_deref().unwrap_or("hourly") {
        "hourly" => Schedule::Hourly,
        "daily" => Schedule::Daily,
        expr => Schedule::Cron(expr.to_owned()),
    };
    let schedule = Plan::new(&schedule, crate::schedule::install_minute(&state_dir.to_string_lossy()))
        .map_err(|e| {
            let expr = raw.schedule.as_deref().unwrap_or_default();
            loc.error(
                &at("schedule"),
                match &e {
                    crate::schedule::ScheduleError::NeverFires { .. } => format!("\"{expr}\" never fires: no date matches it"),
                    crate::schedule::ScheduleError::BadCron { reason, .. } => format!("\"{expr}\" is not a cron expression: {reason}"),
                },
                "write \"hourly\", \"daily\", or a cron expression such as \"17 * * * *\" (minute hour day month weekday, UTC) that matches some date",
            )
        })?;
    let resync_days = match raw.resync_days {
        None => 2,
        Some(n @ 2..=366) => n as u32,
        Some(n) => {
            return Err(loc.error(
                &at("resync_days"),
                format!("{n} is too {}", if n < 2 { "small" } else { "large" }),
                "write a number from 2 (today and yesterday, as Exist asks) to 366",
            ))
        }
    };
    let day_starts = match raw.day_starts.as_deref() {
        None => NaiveTime::MIN,
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| {
            loc.error(
                &at("day_starts"),
                format!("\"{t}\" is not a time of day"),
                "write HH:MM, e.g. \"05:00\" to count 00:00-04:59 toward the day before",
            )
        })?,
    };
    let token_store = match raw.token_store.as_deref().unwrap_or("auto") {
        "auto" => TokenStoreKind::Auto,
        "keyring" => TokenStoreKind::Keyring,
        "file" => TokenStoreKind::File,
        other => {
            return Err(loc.error(
                &at("token_store"),
                format!("\"{other}\" is not a token store"),
                "write \"auto\", \"keyring\" or \"file\"",
            ))
        }
    };
    let listen = match raw.listen {
        None => None,
        Some(addr) => match addr.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            _ => {
                return Err(loc.error(
                    &at("listen"),
                    format!("\"{addr}\" is not a loopback address with a port"),
                    "write \"127.0.0.1:PORT\"; notifications are only accepted on loopback",
                ))
            }
        },
    };
    let notify_secret = match (raw.notify_secret, raw.notify_secret_env) {
        (Some(s), None) => Some(SecretSource::Inline(Secret::new(s))),
        (None, Some(v)) => Some(SecretSource::Env(v)),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(loc.error(
                &at("notify_secret"),
                "both notify_secret and notify_secret_env are set",
                "keep one",
            ))
        }
    };
    if listen.is_some() && notify_secret.is_none() {
        return Err(loc.error(
            &at("listen"),
            "notifications need a shared secret",
            "add notify_secret_env = \"VAR\" (or notify_secret) to [agent]",
        ));
    }
    Ok(AgentConfig {
        schedule,
        resync_days,
        day_starts,
        token_store,
        state_dir,
        listen,
        notify_secret,
    })
}

fn check_source(loc: &Locator<'_>, i: usize, raw: RawSource) -> Result<SourceConfig, ConfigError> {
    let at = |k| [Seg::Key("source"), Seg::Index(i), Seg::Key(k)];
    let duration =
        |key: &'static str, text: Option<&str>| -> Result<Option<Duration>, ConfigError> {
            text.map(|t| {
                humantime::parse_duration(t).map_err(|_| {
                    loc.error(
                        &at(key),
                        format!("\"{t}\" is not a duration"),
                        "write e.g. \"30s\", \"30m\", \"1h\" or \"1day\"",
                    )
                })
            })
            .transpose()
        };
    let common = raw.common();
    let name = common.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(loc.error(
            &at("name"),
            format!("\"{name}\" is not a usable source name"),
            "use letters, digits, `_` or `-`",
        ));
    }
    let id_field = common.id_field.map(str::to_owned);
    let kind = match &raw {
        RawSource::Http(h) => SourceKind::Http(check_http(
            loc,
            i,
            h,
            duration("timeout", h.timeout.as_deref())?,
        )?),
        RawSource::File(f) => {
            let path = expand_home(&f.path);
            let format = check_format(loc, i, f.format.as_deref(), Some(&path))?;
            SourceKind::File(FileSourceConfig {
                path,
                format,
                id_field,
            })
        }
        RawSource::Command(c) => {
            if c.command.first().is_none_or(String::is_empty) {
                return Err(loc.error(
                    &at("command"),
                    "a command source needs a non-empty `command`",
                    "write command = [\"program\", \"arg\"] (use [\"sh\", \"-c\", \"...\"] for a shell line)",
                ));
            }
            SourceKind::Command(CommandSourceConfig {
                argv: c.command.clone(),
                format: check_format(loc, i, c.format.as_deref(), None)?,
                timeout: duration("timeout", c.timeout.as_deref())?
                    .unwrap_or(Duration::from_secs(60)),
                id_field,
            })
        }
    };
    Ok(SourceConfig {
        name: name.to_owned(),
        date_field: common.date_field.to_owned(),
        tz_offset_field: common.tz_offset_field.map(str::to_owned),
        every: duration("every", common.every)?,
        kind,
    })
}

/// The longest an HTTP pull may take unless `timeout` says otherwise: generous for a backfill of
/// many pages, and still a bound, so that a source that never ends cannot hold the run forever.
const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The most pages one query may have unless `max_pages` says otherwise: 500 000 records at the
/// largest page size.
const DEFAULT_MAX_PAGES: u32 = 1000;

fn check_http(
    loc: &Locator<'_>,
    i: usize,
    raw: &RawHttp,
    timeout: Option<Duration>,
) -> Result<HttpSourceConfig, ConfigError> {
    let at = |k| [Seg::Key("source"), Seg::Index(i), Seg::Key(k)];
    let url = parse_url(loc, &at("url"), &raw.url)?;
    let auth = match (&raw.token_env, &raw.basic_user_env) {
        (Some(_), Some(_)) => {
            return Err(loc.error(
                &at("basic_user_env"),
                "both token_env and basic_user_env are set",
                "keep one: token_env for a Bearer token, basic_user_env for an App Key",
            ))
        }
        (Some(v), None) => HttpAuth::BearerEnv(v.clone()),
        (None, Some(v)) => HttpAuth::BasicUserEnv(v.clone()),
        (None, None) => HttpAuth::None,
    };
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
    let page_limit = bounded(
        "page_limit",
        raw.page_limit,
        500,
        1..=500,
        "the API's largest page is 500",
    )?;
    let window_days = bounded(
        "window_days",
        raw.window_days,
        31,
        1..=31,
        "one query may span at most 31 days",
    )?;
    let max_pages = bounded(
        "max_pages",
        raw.max_pages,
        DEFAULT_MAX_PAGES,
        1..=1_000_000,
        "pages one query may have",
    )?;
    Ok(HttpSourceConfig {
        url,
        auth,
        id_field: raw.id_field.clone().unwrap_or_else(|| "id".into()),
        updated_field: raw
            .updated_field
            .clone()
            .unwrap_or_else(|| "updatedAt".into()),
        page_limit,
        window_days,
        max_pages,
        timeout: timeout.unwrap_or(DEFAULT_PULL_TIMEOUT),
        params: raw.params.clone().unwrap_or_default(),
    })
}

fn check_format(
    loc: &Locator<'_>,
    i: usize,
    format: Option<&str>,
    path: Option<&Path>,
) -> Result<RecordFormat, ConfigError> {
    let from_ext = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match format.or(from_ext.as_deref()) {
        Some("csv") => Ok(RecordFormat::Csv),
        Some("jsonl" | "ndjson" | "json") | None => Ok(RecordFormat::JsonLines),
        Some(other) => Err(loc.error(
            &[Seg::Key("source"), Seg::Index(i), Seg::Key("format")],
            format!("\"{other}\" is not a record format"),
            "write format = \"csv\" or format = \"jsonl\"",
        )),
    }
}

fn check_attribute(
    loc: &Locator<'_>,
    i: usize,
    raw: RawAttribute,
    sources: &[SourceConfig],
) -> Result<AttributeConfig, ConfigError> {
    let at = |k| [Seg::Key("attribute"), Seg::Index(i), Seg::Key(k)];
    let here = [Seg::Key("attribute"), Seg::Index(i)];
    let group = |loc: &Locator<'_>, g: &Option<String>| -> Result<Group, ConfigError> {
        let Some(g) = g else {
            return Err(loc.error(
                &here,
                "needs `group`",
                format!("add group = \"...\", one of {}", group_list()),
            ));
        };
        Group::from_name(g).ok_or_else(|| {
            loc.error(
                &at("group"),
                format!("\"{g}\" is not an Exist group"),
                format!("write one of {}", group_list()),
            )
        })
    };
    let value_type =
        |loc: &Locator<'_>, v: &Option<String>, custom: bool| -> Result<ValueType, ConfigError> {
            let choices =
                "integer, float, string, duration, time_of_day, percentage, boolean or scale";
            let Some(v) = v else {
                return Err(loc.error(
                    &here,
                    "needs `value_type`",
                    format!("add value_type = \"...\": {choices}"),
                ));
            };
            match ValueType::from_config_name(v) {
                Some(ValueType::TimeOfDayFromMidday) if custom => Err(loc.error(
                    &at("value_type"),
                    "time_of_day_midday is for templates only",
                    format!("write one of {choices}"),
                )),
                Some(t) => Ok(t),
                None => Err(loc.error(
                    &at("value_type"),
                    format!("\"{v}\" is not a value type"),
                    format!("write one of {choices}"),
                )),
            }
        };
    let target = match (&raw.template, &raw.name, &raw.label) {
        (Some(t), None, None) => {
            if raw.group.is_some() || raw.value_type.is_some() {
                return Err(loc.error(
                    &at(if raw.group.is_some() {
                        "group"
                    } else {
                        "value_type"
                    }),
                    "a template has its own group and value type",
                    "remove group and value_type from this attribute",
                ));
            }
            let template = templates::find(t).ok_or_else(|| {
                let hint = match templates::suggest(t).as_slice() {
                    [] => "use a template from Exist's list (see the README), or a custom attribute with label, group and value_type".to_owned(),
                    close => format!("did you mean {}? Or use a custom attribute with label, group and value_type", close.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" or ")),
                };
                loc.error(&at("template"), format!("\"{t}\" is not an Exist template"), hint)
            })?;
            AttributeTarget::Template(template)
        }
        (None, Some(name), None) => {
            if exist_api::types::AttributeName::new(name.as_str()).is_err() {
                return Err(loc.error(
                    &at("name"),
                    format!("\"{name}\" is not an Exist attribute name"),
                    "write the name as Exist shows it: lowercase letters, digits and `_`",
                ));
            }
            AttributeTarget::Existing {
                name: name.clone(),
                group: group(loc, &raw.group)?,
                value_type: value_type(loc, &raw.value_type, false)?,
            }
        }
        (None, None, Some(label)) => {
            if exist_api::types::AttributeName::slug_of(label).is_err() {
                return Err(loc.error(
                    &at("label"),
                    format!("\"{label}\" has no letters or digits"),
                    "write a label such as \"Espressos\"",
                ));
            }
            AttributeTarget::Custom {
                label: label.clone(),
                group: group(loc, &raw.group)?,
                value_type: value_type(loc, &raw.value_type, true)?,
            }
        }
        _ => {
            return Err(loc.error(&here, "needs exactly one of `template`, `name` or `label`", "write template = \"steps\" for a template, name = \"...\" for an attribute you already have, or label = \"...\" (with group and value_type) for a custom one"));
        }
    };
    if !sources.iter().any(|s| s.name == raw.source) {
        let known: Vec<_> = sources.iter().map(|s| format!("\"{}\"", s.name)).collect();
        let fix = if known.is_empty() {
            "add a [[source]] with that name".to_owned()
        } else {
            format!(
                "write one of {} or add a [[source]] named \"{}\"",
                known.join(", "),
                raw.source
            )
        };
        return Err(loc.error(
            &at("source"),
            format!("no source is named \"{}\"", raw.source),
            fix,
        ));
    }
    let aggregate = Aggregate::from_name(&raw.aggregate).ok_or_else(|| {
        loc.error(
            &at("aggregate"),
            format!("\"{}\" is not an aggregate", raw.aggregate),
            "write sum, count, max, min, mean or last",
        )
    })?;
    let attribute = AttributeConfig {
        target,
        source: raw.source,
        field: raw.field,
        aggregate,
    };
    if attribute.field.is_none() && aggregate != Aggregate::Count {
        return Err(loc.error(
            &here,
            format!("`{}` needs the record `field` to aggregate", raw.aggregate),
            "add field = \"...\", or use aggregate = \"count\"",
        ));
    }
    let vt = attribute.value_type();
    if vt == ValueType::String && !matches!(aggregate, Aggregate::Last) {
        return Err(loc.error(
            &at("aggregate"),
            format!(
                "a string attribute cannot be aggregated with `{}`",
                raw.aggregate
            ),
            "use aggregate = \"last\"",
        ));
    }
    Ok(attribute)
}

fn group_list() -> String {
    Group::ALL
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
