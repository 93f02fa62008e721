//! Sources: where records come from, and how they are pulled.
//!
//! Four kinds share one [`Source`] trait:
//! - [`HttpSource`]: an HTTP API's JSON pages, by default in the health-data conventions
//!   (`updated_since` cursors, `Link` pagination, windows of at most 31 days), or in the
//!   dialect its configuration names (windows of days, offsets, cursors, next URLs, ...);
//! - [`FileSource`]: a CSV or JSON Lines file, read whole each run;
//! - [`CommandSource`]: a program whose standard output is JSON Lines or CSV;
//! - [`SqliteSource`]: the rows of a read-only query on a database another app keeps.
//!
//! A pull hands [`PullEvent`]s to a sink as it goes: records, malformed-record reports, and
//! [`PullEvent::WindowDone`] cursors. The engine stores the records it received and only then
//! the cursor, in one transaction, so a crash never advances a cursor past unstored data.
//!
//! Records are parsed at the edge ([`Record`], [`RecordTime`]); a record that cannot be placed on
//! a day is reported as [`Malformed`] and skipped, and the rest of the pull goes on.

mod buffer;
mod command;
mod content;
mod field;
mod fields;
mod file;
mod http;
pub mod inbox;
pub mod link;
pub mod oauth2;
mod record;
mod sqlite;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{SourceConfig, SourceKind};
use crate::error::{Classify, ErrorKind};

pub use command::CommandSource;
pub use content::ContentFingerprint;
pub use field::FieldPath;
pub use fields::{Fields, Key, Projection};
pub use file::FileSource;
pub use http::{format_query_time, HttpSource, Probe, PullRetry, OVERLAP};
pub use record::{Malformed, Origin, Record, RecordTime, TIME_ZONE_FIELD};
pub use sqlite::SqliteSource;

/// What the engine asks of a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPlan {
    /// What changed since the cursor (`None`: nothing pulled yet, so the last `window_days`).
    Incremental {
        /// The cursor stored after the last complete pull.
        since: Option<DateTime<Utc>>,
    },
    /// Everything changed in `from..to` (backfill, full sync), as consecutive windows of at most
    /// `window_days` each.
    Windows {
        /// Start of the first window.
        from: DateTime<Utc>,
        /// End of the last window.
        to: DateTime<Utc>,
    },
}

/// What a pull hands to its sink, as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum PullEvent {
    /// The total number of records of the current query (`X-Total-Count`), shown beside the
    /// progress bar.
    Total(u64),
    /// Records, in the order the source gave them (a page, or a chunk of a file).
    Records(Vec<Record>),
    /// A record that was skipped; the pull goes on.
    Malformed(Malformed),
    /// Everything changed up to `cursor` has been handed over: the engine stores the records
    /// received so far and THEN this cursor, in one transaction.
    WindowDone {
        /// The next pull's `since`.
        cursor: DateTime<Utc>,
    },
    /// A source read whole (a file, a command's output) read all of its input: the
    /// fingerprint of its content. `unchanged`: it is the content the engine said it had
    /// reduced last ([`AnySource::knowing_content`]), so no record was parsed or handed over.
    Content {
        /// The fingerprint of every byte of the input.
        fingerprint: ContentFingerprint,
        /// Whether it is the known one (nothing parsed).
        unchanged: bool,
    },
}

/// What a pull did, for logs and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullSummary {
    /// Records handed over.
    pub records: usize,
    /// Records skipped as malformed.
    pub malformed: usize,
    /// Pages read (HTTP responses with a list of records); 1 for a file or a command.
    pub pages: usize,
    /// HTTP requests made, retries included; 0 for a file or a command.
    pub requests: usize,
}

/// Why the sink refused an event (e.g. the state database failed); it aborts the pull. It is the
/// agent's own error, so a full disk stays a temporary failure however deep it happened.
pub type SinkError = crate::error::Error;

/// Where a pull sends its events. Returning an error aborts the pull: no later event is sent.
pub type Sink<'a> = dyn FnMut(PullEvent) -> Result<(), SinkError> + Send + 'a;

/// Why a pull failed. Every message names the source; [`Classify::fix`] says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached (after retries).
    #[error("source \"{source_name}\": cannot reach {url}: {detail}")]
    Network {
        /// The source.
        source_name: String,
        /// The request's URL.
        url: String,
        /// What the HTTP client reported, with its causes.
        detail: String,
    },
    /// The source answered with an error status (after retries, for 5xx).
    #[error("source \"{source_name}\": {url} answered {status} ({body})")]
    Status {
        /// The source.
        source_name: String,
        /// The request's URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The source asks to wait longer than a pull may sleep.
    #[error("source \"{source_name}\": rate limited for {}; the data stays pending", humantime::format_duration(*retry_after))]
    RateLimited {
        /// The source.
        source_name: String,
        /// How long the source asked to wait.
        retry_after: Duration,
    },
    /// The source answered something this agent cannot read.
    #[error("source \"{source_name}\": {url}: {problem}")]
    BadResponse {
        /// The source.
        source_name: String,
        /// The request's URL.
        url: String,
        /// What is wrong with the answer.
        problem: String,
    },
    /// A query's pages go in a circle (a next link, cursor or offset that repeats): the pull is
    /// stopped, and its cursor stays where it was.
    #[error("source \"{source_name}\": the paging loops: {problem} (at {url}); the pull was stopped and nothing after the last complete window is kept")]
    PagingLoops {
        /// The source.
        source_name: String,
        /// The page where it showed.
        url: String,
        /// What came back again.
        problem: String,
    },
    /// A pull went past one of the source's bounds (pages, requests, time): it is stopped, and
    /// its cursor stays where it was, so nothing is lost.
    #[error("source \"{source_name}\": {what}; the pull was stopped and nothing after the last complete window is kept")]
    Unbounded {
        /// The source.
        source_name: String,
        /// Which bound, and how it was passed.
        what: String,
        /// What to do.
        fix: String,
    },
    /// A file could not be read.
    #[error("source \"{source_name}\": cannot read {}: {source}", path.display())]
    Io {
        /// The source.
        source_name: String,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A command could not be started.
    #[error("source \"{source_name}\": cannot run `{program}`: {source}")]
    Spawn {
        /// The source.
        source_name: String,
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("source \"{source_name}\": the command failed ({status}); its standard error says \"{stderr}\"")]
    Command {
        /// The source.
        source_name: String,
        /// How it ended (exit code or signal).
        status: String,
        /// The start of its standard error.
        stderr: String,
    },
    /// A command ran longer than its timeout and was killed.
    #[error("source \"{source_name}\": the command was killed after {}", humantime::format_duration(*after))]
    Timeout {
        /// The source.
        source_name: String,
        /// The timeout.
        after: Duration,
    },
    /// The command that prints the source's secret did not give one.
    #[error("source \"{source_name}\": the auth command `{program}` {problem}")]
    AuthCommand {
        /// The source.
        source_name: String,
        /// The program.
        program: String,
        /// What went wrong.
        problem: String,
    },
    /// A SQLite database could not be read.
    #[error("source \"{source_name}\": {}: {problem}", path.display())]
    Database {
        /// The source.
        source_name: String,
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        problem: String,
        /// Whether trying again later may succeed (the owner holds a lock too long).
        busy: bool,
    },
    /// The environment variable with the source's credentials is not set.
    #[error("source \"{source_name}\": the environment variable {var} is not set (or empty)")]
    MissingEnv {
        /// The source.
        source_name: String,
        /// The variable.
        var: String,
    },
    /// The HTTP client could not be set up.
    #[error("source \"{source_name}\": cannot set up an HTTP client: {detail}")]
    Client {
        /// The source.
        source_name: String,
        /// What the HTTP client reported.
        detail: String,
    },
    /// The source's OAuth2 token could not be had (never authorized, revoked, ...).
    #[error(transparent)]
    Auth(#[from] oauth2::SourceAuthError),
    /// The sink refused an event; nothing after it was handed over.
    #[error("source \"{source_name}\": storing pulled records failed: {source}")]
    Sink {
        /// The source.
        source_name: String,
        /// The sink's error.
        source: SinkError,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "check the source's credentials (its auth settings and the environment) and that the token is still valid",
        404 => "check the source's url",
        429 => "the source is rate limiting; the data stays pending and a later run tries again",
        400..=499 => "the source refused the query; check the source's url and params",
        _ => "the source is failing; the data stays pending and the next run tries again",
    }
}

impl Classify for SourceError {
    /// Network trouble, 5xx, 429 and timeouts pass; a sink failure keeps its own kind; the rest
    /// needs the user.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Network { .. } | Self::RateLimited { .. } | Self::Timeout { .. } => {
                ErrorKind::Temporary
            }
            Self::Status { status, .. } if *status >= 500 || *status == 429 => ErrorKind::Temporary,
            Self::Database { busy: true, .. } => ErrorKind::Temporary,
            Self::Sink { source, .. } => source.kind(),
            Self::Auth(e) => e.kind(),
            _ => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Network { .. } => "check the network and the source's url (the next run tries again)".into(),
            Self::Status { status, .. } => status_hint(*status).into(),
            Self::RateLimited { .. } => "nothing to do: the agent waits as the source asked, then pulls again".into(),
            Self::BadResponse { .. } => "check that the url is the collection endpoint and that `records` points at its list".into(),
            Self::PagingLoops { .. } => "the source's pages go in a circle: check the source's paging (its style, pointer and parameter names) against the API's documentation".into(),
            Self::Unbounded { fix, .. } => fix.clone(),
            Self::AuthCommand { .. } => "run the command by hand: it must print the secret on its standard output and exit 0".into(),
            Self::Database { busy: true, .. } => "the app that owns the database held a lock too long; the next run reads it again".into(),
            Self::Database { .. } => "check the source's path and query (`sqlite3 -readonly PATH` runs it by hand)".into(),
            Self::Io { .. } => "check the source's path and the file's permissions".into(),
            Self::Spawn { .. } => "check the source's command (is the program installed and on PATH?)".into(),
            Self::Command { .. } => "run the command by hand to see what is wrong".into(),
            Self::Timeout { .. } => "make the command faster or raise the source's timeout".into(),
            Self::MissingEnv { var, .. } => format!("export {var} with the source's token or key (for the service, in its environment file)"),
            Self::Client { .. } => return None,
            Self::Auth(e) => return e.fix(),
            Self::Sink { source, .. } => source.fix().map_or_else(
                || "nothing was lost: the next run pulls again from the last stored cursor".into(),
                str::to_owned,
            ),
        })
    }
}

impl SourceError {
    /// Whether trying again later may succeed (network, 5xx, rate limit, timeout, a busy or full
    /// disk): the caller keeps its data and exits with the temporary-failure code.
    pub fn is_temporary(&self) -> bool {
        self.kind() == ErrorKind::Temporary
    }
}

/// A origin records are pulled from.
pub trait Source {
    /// The source's configured name.
    fn name(&self) -> &str;

    /// Pulls what `plan` asks for, handing events to `sink` as it goes. A sink error aborts the
    /// pull at once and comes back as [`SourceError::Sink`].
    fn pull(
        &self,
        plan: &PullPlan,
        sink: &mut Sink<'_>,
    ) -> impl Future<Output = Result<PullSummary, SourceError>> + Send;
}

/// Any kind of source, as configured.
#[derive(Debug)]
pub enum AnySource {
    /// An HTTP API.
    Http(Box<HttpSource>),
    /// A file.
    File(FileSource),
    /// A command.
    Command(CommandSource),
    /// An inbox, by name: its records come to the listener, so a pull of it has nothing to
    /// fetch (the engine does not even ask; see `PullMode::Pushed`).
    Inbox(String),
    /// A SQLite database.
    Sqlite(SqliteSource),
}

/// Builds the source a `[[source]]` describes, for a user in `tz` (whose days an HTTP source's
/// windows of days are).
pub fn from_config(config: &SourceConfig, tz: Tz) -> Result<AnySource, SourceError> {
    Ok(match &config.kind {
        SourceKind::Http(http) => {
            AnySource::Http(Box::new(HttpSource::new(config, http)?.in_timezone(tz)))
        }
        SourceKind::File(file) => AnySource::File(FileSource::new(config, file)),
        SourceKind::Command(command) => AnySource::Command(CommandSource::new(config, command)),
        SourceKind::Inbox(_) => AnySource::Inbox(config.name.clone()),
        SourceKind::Sqlite(sqlite) => AnySource::Sqlite(SqliteSource::new(config, sqlite)),
    })
}

impl AnySource {
    /// The source told the fingerprint of the content it gave last time, when the engine's
    /// day values still stand for it: a file or command whose input has that fingerprint again
    /// skips parsing (see [`PullEvent::Content`]). Other kinds have no whole content.
    pub fn knowing_content(self, known: Option<ContentFingerprint>) -> Self {
        match self {
            Self::File(s) => Self::File(s.knowing_content(known)),
            Self::Command(s) => Self::Command(s.knowing_content(known)),
            other => other,
        }
    }
}

impl AnySource {
    /// The source told which fields the configuration reads (beyond the source's own date, id
    /// and offset fields): its records keep only those. By default they keep every field.
    pub fn reading(self, reads: &Projection) -> Self {
        match self {
            Self::Http(s) => Self::Http(Box::new((*s).reading(reads))),
            Self::File(s) => Self::File(s.reading(reads)),
            Self::Command(s) => Self::Command(s.reading(reads)),
            Self::Sqlite(s) => Self::Sqlite(s.reading(reads)),
            Self::Inbox(name) => Self::Inbox(name),
        }
    }
}

impl Source for AnySource {
    fn name(&self) -> &str {
        match self {
            Self::Http(s) => s.name(),
            Self::File(s) => s.name(),
            Self::Command(s) => s.name(),
            Self::Inbox(name) => name,
            Self::Sqlite(s) => s.name(),
        }
    }

    async fn pull(&self, plan: &PullPlan, sink: &mut Sink<'_>) -> Result<PullSummary, SourceError> {
        match self {
            Self::Http(s) => s.pull(plan, sink).await,
            Self::File(s) => s.pull(plan, sink).await,
            Self::Command(s) => s.pull(plan, sink).await,
            Self::Inbox(_) => Ok(PullSummary::default()),
            Self::Sqlite(s) => s.pull(plan, sink).await,
        }
    }
}

/// Hands `event` to the sink, turning a refusal into the source's error.
fn emit(source_name: &str, sink: &mut Sink<'_>, event: PullEvent) -> Result<(), SourceError> {
    sink(event).map_err(|source| SourceError::Sink {
        source_name: source_name.to_owned(),
        source,
    })
}

/// The first `max` characters of `text` on one line, for error messages.
fn excerpt(text: &str, max: usize) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max + 1)
        .collect();
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}
