//! The JSON document `run --once --json` and `backfill --json` print: what one sync did and every
//! way it failed. The field names are part of the interface (the README lists them): add
//! fields, never rename or remove one.

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::sync::SyncRun;
use exist_api::types::{Day, Value};

/// One sync, as a document.
#[derive(Debug, Serialize)]
pub struct RunDocument {
    /// `"run"` or `"backfill"`.
    pub command: &'static str,
    /// Whether the run did everything (exit code 0).
    pub ok: bool,
    /// The process's exit code.
    pub exit_code: u8,
    /// Whether nothing was sent or stored (`--dry-run`).
    pub dry_run: bool,
    /// The backfill's days, for `backfill`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<DayRange>,
    /// The timezone days were computed in (empty when the run stopped before knowing it).
    pub timezone: String,
    /// Per source pulled or considered.
    pub sources: Vec<SourceDocument>,
    /// Values queued because they changed (in a dry run: what would be sent).
    pub changes: Vec<ChangeDocument>,
    /// What sending did.
    pub sent: SentDocument,
    /// Values refused by local checks before sending.
    pub rejected_locally: usize,
    /// Whether sending stopped at Exist's hourly limit with values pending.
    pub paused_by_rate_limit: bool,
    /// Every way the run failed.
    pub failures: Vec<FailureDocument>,
}

/// A backfill's days.
#[derive(Debug, Serialize)]
pub struct DayRange {
    /// First day.
    pub from: Day,
    /// Last day, when given.
    pub to: Option<Day>,
}

/// One source in a run.
#[derive(Debug, Serialize)]
pub struct SourceDocument {
    /// Its name.
    pub name: String,
    /// Whether it was pulled (not skipped as not due or waiting).
    pub pulled: bool,
    /// Records handed over.
    pub records: usize,
    /// Pages read.
    pub pages: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// Records skipped, with why.
    pub skipped: Vec<SkippedDocument>,
    /// Why the pull failed.
    pub error: Option<String>,
    /// The source asked to be left alone until then (RFC 3339).
    pub waiting_until: Option<String>,
}

/// A skipped record.
#[derive(Debug, Serialize)]
pub struct SkippedDocument {
    /// Where it is (`line 17`, `id abc`).
    pub location: String,
    /// Why it was skipped.
    pub reason: String,
}

/// A changed value.
#[derive(Debug, Serialize)]
pub struct ChangeDocument {
    /// The attribute (its configured name before it is owned).
    pub attribute: String,
    /// The day.
    pub day: Day,
    /// What Exist holds as far as the agent knows.
    pub old: Option<Value>,
    /// The new value.
    pub new: Value,
    /// `"will be acquired"` or `"will be created"` in a dry run of an attribute not owned yet.
    pub standing: Option<&'static str>,
}

/// What sending did.
#[derive(Debug, Default, Serialize)]
pub struct SentDocument {
    /// Values Exist acknowledged.
    pub acknowledged: usize,
    /// Values Exist refused (kept aside with the error; see `status`).
    pub rejected: usize,
    /// Update calls made.
    pub update_calls: u32,
    /// Values still pending.
    pub pending: usize,
}

/// One way a run failed.
#[derive(Debug, Serialize)]
pub struct FailureDocument {
    /// The source that failed, when it was one.
    pub source: Option<String>,
    /// `usage`, `config`, `auth`, `temporary` or `failed`.
    pub kind: ErrorKind,
    /// Its exit code.
    pub exit_code: u8,
    /// What happened.
    pub message: String,
    /// What to do.
    pub fix: Option<String>,
}

impl FailureDocument {
    fn of(source: Option<String>, e: &Error) -> Self {
        Self {
            source,
            kind: e.kind(),
            exit_code: e.exit_code(),
            message: e.message(),
            fix: e.fix().map(str::to_owned),
        }
    }
}

impl RunDocument {
    /// The document of a run that stopped before syncing (no configuration, a busy state, ...).
    pub fn failed(command: &'static str, dry_run: bool, error: &Error) -> Self {
        Self {
            command,
            ok: false,
            exit_code: error.exit_code(),
            dry_run,
            range: None,
            timezone: String::new(),
            sources: Vec::new(),
            changes: Vec::new(),
            sent: SentDocument::default(),
            rejected_locally: 0,
            paused_by_rate_limit: false,
            failures: vec![FailureDocument::of(None, error)],
        }
    }

    /// The document of `run`, before its result is known (see [`RunDocument::ended`]).
    pub fn of(command: &'static str, dry_run: bool, run: &SyncRun) -> Self {
        let report = &run.report;
        Self {
            command,
            ok: run.failures.is_empty(),
            exit_code: 0,
            dry_run,
            range: None,
            timezone: report.timezone.clone(),
            sources: report
                .sources
                .iter()
                .map(|s| SourceDocument {
                    name: s.name.clone(),
                    pulled: s.pulled,
                    records: s.summary.records,
                    pages: s.summary.pages,
                    requests: s.summary.requests,
                    skipped: s
                        .malformed
                        .iter()
                        .map(|m| SkippedDocument {
                            location: m.location.clone(),
                            reason: m.reason.clone(),
                        })
                        .collect(),
                    error: s.error.clone(),
                    waiting_until: s.waiting_until.map(|t| t.to_rfc3339()),
                })
                .collect(),
            changes: report
                .changes
                .iter()
                .map(|c| ChangeDocument {
                    attribute: c.attribute.clone(),
                    day: c.day,
                    old: c.old.clone(),
                    new: c.new.clone(),
                    standing: c.standing,
                })
                .collect(),
            sent: SentDocument {
                acknowledged: report.send.acknowledged,
                rejected: report.send.rejected,
                update_calls: report.send.update_calls,
                pending: report.send.remaining,
            },
            rejected_locally: report.rejected_locally,
            paused_by_rate_limit: run.paused_by_rate_limit(),
            failures: run
                .failures
                .iter()
                .map(|f| FailureDocument::of(f.source.clone(), &f.error))
                .collect(),
        }
    }

    /// The same document, with the run's result: its failures summed up in one exit code.
    pub fn ended(mut self, result: &Result<(), Error>) -> Self {
        self.ok = result.is_ok();
        self.exit_code = result.as_ref().err().map_or(0, Error::exit_code);
        self
    }

    /// The same document for a backfill of these days.
    pub fn backfill(mut self, from: Day, to: Option<Day>) -> Self {
        self.range = Some(DayRange { from, to });
        self
    }

    /// Prints the document on standard output.
    pub fn print(&self) -> crate::error::Result<()> {
        print_json(self)
    }
}

/// Prints `value` as one pretty JSON document on standard output.
pub fn print_json(value: &impl Serialize) -> crate::error::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::caused(ErrorKind::Failed, "cannot write the JSON document", e))?;
    println!("{text}");
    Ok(())
}
