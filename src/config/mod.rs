//! The configuration: one TOML file, checked whole before anything runs.
//!
//! [`Config::load`] reads the file, refuses unknown keys and wrong types, and checks everything
//! that can be checked without the network: source names, attribute sources, templates, limits,
//! the schedule. Each error names the file, the line and the key, and says what to write instead.

mod agent;
mod attribute;
mod error;
mod exist;
mod oauth2;
mod source;
mod tags;
mod transform;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use exist_api::types::Group;

pub use agent::{AgentConfig, AlertConfig, DEFAULT_ALERT_AFTER};
pub use attribute::{Aggregate, AttributeConfig, AttributeTarget, Fill};
pub use error::ConfigError;
use error::{Locator, Seg};
pub use exist::ExistConfig;
pub use oauth2::OAuth2Config;
pub use source::{
    CommandSourceConfig, FileSourceConfig, HttpAuth, HttpSourceConfig, InboxFormat,
    InboxSourceConfig, JsonPointer, Paging, PullMode, RecordFormat, SecretFrom, SourceConfig,
    SourceKind, SqliteSourceConfig, TimeFormat, Window, END_IN_PATH, START_IN_PATH,
};
pub use tags::TagsConfig;

pub use crate::schedule::Schedule;
pub use exist_api::auth::SecretSource;
pub use exist_api::tokens::TokenStoreKind;

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "EXIST_AGENT_CONFIG";

/// Exist's public host; the API lives at `{base_url}/api/2/`.
pub const DEFAULT_BASE_URL: &str = "https://exist.io";

/// The configuration file exactly as written, before checking: each table's own struct is in its
/// module; `[[source]]` tables are read again by kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    exist: exist::RawExist,
    #[serde(default)]
    agent: agent::RawAgent,
    /// Read again, table by table, as [`RawSource`] once each table's kind is known.
    #[serde(default)]
    source: Vec<IgnoredAny>,
    #[serde(default)]
    attribute: Vec<attribute::RawAttribute>,
    #[serde(default)]
    tags: Vec<tags::RawTags>,
}

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
    /// Fields whose values become daily tags, in file order.
    pub tags: Vec<TagsConfig>,
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
            .map(|i| source::read(&loc, i))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_raw(path, &loc, raw, sources)
    }

    fn from_raw(
        path: &Path,
        loc: &Locator<'_>,
        raw: RawConfig,
        raw_sources: Vec<source::RawSource>,
    ) -> Result<Self, ConfigError> {
        let exist = exist::check(loc, raw.exist)?;
        let agent = agent::check(loc, raw.agent)?;
        let mut sources = Vec::with_capacity(raw_sources.len());
        for (i, s) in raw_sources.into_iter().enumerate() {
            let source = source::check(loc, i, s, &agent)?;
            if sources.iter().any(|o: &SourceConfig| o.name == source.name) {
                return Err(loc.error(
                    &[Seg::Key("source"), Seg::Index(i), Seg::Key("name")],
                    format!("a second source is named \"{}\"", source.name),
                    "give every [[source]] a unique name",
                ));
            }
            if matches!(source.kind, SourceKind::Inbox(_)) && agent.listen.is_none() {
                return Err(loc.error(
                    &[Seg::Key("source"), Seg::Index(i), Seg::Key("kind")],
                    format!("the inbox \"{}\" needs the agent's listener", source.name),
                    "add listen = \"127.0.0.1:8765\" to [agent] (the daemon receives deliveries there)",
                ));
            }
            sources.push(source);
        }
        let has_inbox = sources
            .iter()
            .any(|s| matches!(s.kind, SourceKind::Inbox(_)));
        if agent.listen.is_some() && agent.notify_secret.is_none() && !has_inbox {
            return Err(loc.error(
                &[Seg::Key("agent"), Seg::Key("listen")],
                "the listener would serve nothing: notifications need a shared secret and no source is an inbox",
                "add notify_secret_env = \"VAR\" (or notify_secret) to [agent], or a source with kind = \"inbox\"",
            ));
        }
        let mut attributes = Vec::with_capacity(raw.attribute.len());
        let mut keys = BTreeSet::new();
        for (i, a) in raw.attribute.into_iter().enumerate() {
            let attribute = attribute::check(loc, i, a, &sources)?;
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
        let mut tags = Vec::with_capacity(raw.tags.len());
        for (i, t) in raw.tags.into_iter().enumerate() {
            let checked = tags::check(loc, i, t, &sources, &tags)?;
            tags.push(checked);
        }
        Ok(Self {
            path: path.to_owned(),
            exist,
            agent,
            sources,
            attributes,
            tags,
        })
    }

    /// The OAuth scopes this configuration needs: one write scope per group it writes, and with
    /// `[exist] verify` their read scopes too, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let mut groups: BTreeSet<Group> = self.attributes.iter().map(|a| a.group()).collect();
        if !self.tags.is_empty() {
            groups.insert(Group::Custom);
        }
        let mut scopes: BTreeSet<String> = groups.iter().map(|g| g.write_scope()).collect();
        if self.exist.verify {
            scopes.extend(groups.iter().map(|g| g.read_scope()));
        }
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
pub(super) fn toml_error(
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

pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(super) fn parse_url(
    loc: &Locator<'_>,
    path: &[Seg<'_>],
    text: &str,
) -> Result<Url, ConfigError> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        _ => Err(loc.error(
            path,
            format!("\"{text}\" is not an http(s) URL"),
            "write a full URL such as \"https://exist.io\"",
        )),
    }
}

#[cfg(test)]
mod tests;
