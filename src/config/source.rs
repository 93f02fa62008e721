//! The `[[source]]` tables: where records come from. Each kind is a struct of exactly its keys
//! (read after the table's `kind`), checked into a [`SourceKind`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, Seg};
use super::{expand_home, toml_error, ConfigError};

/// The kind of a `[[source]]`, read before the rest of its table.
#[derive(Debug, Deserialize)]
pub(super) struct RawKind {
    pub kind: String,
}

/// Declares the table of one source kind: the keys every kind takes, then its own.
macro_rules! source_table {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            pub name: String,
            #[allow(dead_code, reason = "read before the table, as RawKind")]
            pub kind: String,
            pub date_field: String,
            pub tz_offset_field: Option<String>,
            pub id_field: Option<String>,
            pub every: Option<String>,
            pub stale_after: Option<String>,
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $name {
            pub(crate) fn common(&self) -> Common<'_> {
                Common {
                    name: &self.name,
                    date_field: &self.date_field,
                    tz_offset_field: self.tz_offset_field.as_deref(),
                    id_field: self.id_field.as_deref(),
                    every: self.every.as_deref(),
                    stale_after: self.stale_after.as_deref(),
                }
            }
        }
    };
}

mod http;

pub use http::{
    HttpAuth, HttpSourceConfig, JsonPointer, Paging, SecretFrom, TimeFormat, Window, END_IN_PATH,
    START_IN_PATH,
};

/// The keys every kind of source takes.
pub(crate) struct Common<'a> {
    pub name: &'a str,
    pub date_field: &'a str,
    pub tz_offset_field: Option<&'a str>,
    pub id_field: Option<&'a str>,
    pub every: Option<&'a str>,
    pub stale_after: Option<&'a str>,
}

source_table!(
    /// `kind = "file"`.
    RawFile {
        path: String,
        format: Option<String>,
    }
);

source_table!(
    /// `kind = "command"`.
    RawCommand {
        command: Vec<String>,
        format: Option<String>,
        timeout: Option<String>,
    }
);

source_table!(
    /// `kind = "sqlite"`.
    RawSqlite {
        path: String,
        query: String,
        timeout: Option<String>,
    }
);

source_table!(
    /// `kind = "inbox"`.
    RawInbox {
        token_env: String,
        format: Option<String>,
        updated_field: Option<String>,
    }
);

/// A `[[source]]`, as its kind reads it.
#[derive(Debug)]
pub(super) enum RawSource {
    Http(http::RawHttp),
    File(RawFile),
    Command(RawCommand),
    Sqlite(RawSqlite),
    Inbox(RawInbox),
}

impl RawSource {
    /// The kinds, as written, for messages.
    pub const KINDS: &'static [&'static str] = &["http", "file", "command", "sqlite", "inbox"];

    /// The keys every kind takes.
    pub fn common(&self) -> Common<'_> {
        match self {
            Self::Http(s) => s.common(),
            Self::File(s) => s.common(),
            Self::Command(s) => s.common(),
            Self::Sqlite(s) => s.common(),
            Self::Inbox(s) => s.common(),
        }
    }

    /// The keys a source of `kind` takes, as its struct declares them.
    pub fn keys(kind: &str) -> &'static [&'static str] {
        let mut grab = FieldNames(&[]);
        // The grabber fails on purpose once it has the names; nothing else is read.
        let _ = Self::read(kind, &mut grab);
        grab.0
    }

    /// Reads a source table of `kind` through `de`; `None` for an unknown kind.
    pub fn read<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        Some(match kind {
            "http" => http::RawHttp::deserialize(de).map(Self::Http),
            "file" => RawFile::deserialize(de).map(Self::File),
            "command" => RawCommand::deserialize(de).map(Self::Command),
            "sqlite" => RawSqlite::deserialize(de).map(Self::Sqlite),
            "inbox" => RawInbox::deserialize(de).map(Self::Inbox),
            _ => return None,
        })
    }
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
    /// How long the source may go without a new record before it is reported stale.
    pub stale_after: Option<Duration>,
    /// What kind of source, with its own settings.
    pub kind: SourceKind,
}

/// The kinds of source.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a handful of sources, each read once from the configuration"
)]
pub enum SourceKind {
    /// An HTTP API, in one of the dialects of [`HttpSourceConfig`].
    Http(HttpSourceConfig),
    /// A CSV or JSON Lines file, read whole.
    File(FileSourceConfig),
    /// A program whose standard output is JSON Lines or CSV.
    Command(CommandSourceConfig),
    /// The rows of a read-only query on a SQLite database another app keeps.
    Sqlite(SqliteSourceConfig),
    /// Records delivered to the daemon's listener (a phone app, a scale, a script).
    Inbox(InboxSourceConfig),
}

/// How a kind of source is pulled: the one place that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// Read whole every run (a file, a command's output, a query's rows): its records are not
    /// stored, and what it holds now is the truth for its days.
    Whole,
    /// Pulled incrementally (`updated_since`): records are stored by id, and the days whose
    /// records changed are recomputed from the store.
    Incremental,
    /// Never pulled: records arrive at the listener and are stored by id as they come; the
    /// days whose records changed are recomputed from the store, as for an incremental source.
    Pushed,
}

impl PullMode {
    /// Whether records of this mode live in the store (and so follow a change of day basis).
    pub fn stores_records(self) -> bool {
        matches!(self, Self::Incremental | Self::Pushed)
    }
}

impl SourceKind {
    /// How this kind is pulled.
    pub fn pull_mode(&self) -> PullMode {
        match self {
            Self::Http(_) => PullMode::Incremental,
            Self::File(_) | Self::Command(_) | Self::Sqlite(_) => PullMode::Whole,
            Self::Inbox(_) => PullMode::Pushed,
        }
    }

    /// Whether records of this kind name an id field, so that a version replaces an older one.
    pub fn id_field(&self) -> Option<&str> {
        match self {
            Self::Http(h) => Some(&h.id_field),
            Self::File(f) => f.id_field.as_deref(),
            Self::Command(c) => c.id_field.as_deref(),
            Self::Sqlite(q) => q.id_field.as_deref(),
            Self::Inbox(i) => i.id_field.as_deref(),
        }
    }

    /// The kind's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::File(_) => "file",
            Self::Command(_) => "command",
            Self::Sqlite(_) => "sqlite",
            Self::Inbox(_) => "inbox",
        }
    }
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

/// Settings of a `sqlite` source.
#[derive(Debug, Clone)]
pub struct SqliteSourceConfig {
    /// The database file, with `~` expanded.
    pub path: PathBuf,
    /// The query; each row is a record, its column names the fields.
    pub query: String,
    /// How long the query may run.
    pub timeout: Duration,
    /// The field with a record's id, if rows carry one.
    pub id_field: Option<String>,
}

/// Settings of an `inbox` source.
#[derive(Debug, Clone)]
pub struct InboxSourceConfig {
    /// The environment variable holding the bearer token deliveries must carry.
    pub token_env: String,
    /// What a delivery's body holds.
    pub format: InboxFormat,
    /// The field with a record's id; without one, a record's `id` if it has one, else an id
    /// derived as [`InboxFormat`] says.
    pub id_field: Option<String>,
    /// The field with a record's last change time, if records carry one.
    pub updated_field: Option<String>,
}

/// What an inbox delivery's body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxFormat {
    /// Records: a JSON array, an object holding the array at `records`, or JSON Lines. Without
    /// an `id_field`, a record's id is a digest of its content, so a re-sent record replaces
    /// itself.
    Records,
    /// Health Auto Export's JSON (`{"data": {"metrics": [{name, units, data: [...]}]}}`): each
    /// data point is a record with `metric`, `units` and its own fields; without an `id_field`,
    /// its id is (metric, date, source), since the app re-sends overlapping periods.
    HealthAutoExport,
}

/// Reads `[[source]]` number `i` as its kind's table.
pub(super) fn read(loc: &Locator<'_>, i: usize) -> Result<RawSource, ConfigError> {
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

pub(super) fn check(
    loc: &Locator<'_>,
    i: usize,
    raw: RawSource,
    agent: &super::AgentConfig,
) -> Result<SourceConfig, ConfigError> {
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
        RawSource::Http(h) => SourceKind::Http(http::check_http(
            loc,
            i,
            h,
            duration("timeout", h.timeout.as_deref())?,
            agent,
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
        RawSource::Sqlite(q) => {
            if q.query.trim().is_empty() {
                return Err(loc.error(
                    &at("query"),
                    "a sqlite source needs a non-empty `query`",
                    "write the SELECT whose rows are the records, e.g. query = \"SELECT day, steps FROM daily\"",
                ));
            }
            SourceKind::Sqlite(SqliteSourceConfig {
                path: expand_home(&q.path),
                query: q.query.clone(),
                timeout: duration("timeout", q.timeout.as_deref())?
                    .unwrap_or(Duration::from_secs(60)),
                id_field,
            })
        }
        RawSource::Inbox(b) => {
            let format = match b.format.as_deref() {
                None | Some("records") => InboxFormat::Records,
                Some("health-auto-export") => InboxFormat::HealthAutoExport,
                Some(other) => {
                    return Err(loc.error(
                        &at("format"),
                        format!("\"{other}\" is not an inbox format"),
                        "write format = \"records\" (JSON array, {\"records\": [...]} or JSON Lines) or format = \"health-auto-export\"",
                    ))
                }
            };
            if b.token_env.is_empty() {
                return Err(loc.error(
                    &at("token_env"),
                    "an inbox needs the name of the variable holding its token",
                    "write token_env = \"INBOX_TOKEN\" and export a long random string in it",
                ));
            }
            SourceKind::Inbox(InboxSourceConfig {
                token_env: b.token_env.clone(),
                format,
                id_field,
                updated_field: b.updated_field.clone(),
            })
        }
    };
    Ok(SourceConfig {
        name: name.to_owned(),
        date_field: common.date_field.to_owned(),
        tz_offset_field: common.tz_offset_field.map(str::to_owned),
        every: duration("every", common.every)?,
        stale_after: duration("stale_after", common.stale_after)?,
        kind,
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

/// A deserializer that only learns the field names a derived struct asks for, so that messages
/// can list the keys of each kind without a hand-kept list.
struct FieldNames(&'static [&'static str]);

#[derive(Debug)]
struct Grabbed;

impl std::fmt::Display for Grabbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names taken")
    }
}

impl std::error::Error for Grabbed {}

impl serde::de::Error for Grabbed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Grabbed
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = Grabbed;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Grabbed> {
        Err(Grabbed)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Grabbed> {
        self.0 = fields;
        Err(Grabbed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
