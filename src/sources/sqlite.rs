//! The `sqlite` source: the rows of a read-only query on a database another app keeps
//! (Gadgetbridge, Anki, Home Assistant's recorder...), each row a record whose fields are the
//! column names.
//!
//! The owner's writes must never wait for the agent. The database is opened read-only
//! (`SQLITE_OPEN_READ_ONLY`, no URI, so no `immutable`: the owner's changes are seen, never a
//! stale or torn copy), with `query_only` on, and a statement that could write is refused. In
//! WAL mode, which these apps use, a reader never blocks a writer: the query reads the last
//! committed state while the owner goes on writing. In rollback-journal mode a read holds a
//! shared lock only while the query runs; the busy timeout lets the agent wait out an owner's
//! commit instead of failing. Rows are streamed from a blocking thread in chunks, so a table of
//! a million samples neither stalls the runtime nor sits in memory, and the query is
//! interrupted once it runs longer than the source's `timeout`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Number, Value};
use tokio::sync::mpsc;

use super::record::{Malformed, Origin, Record, RecordParser, Unparsed};
use super::{emit, PullEvent, PullPlan, PullSummary, Sink, Source, SourceError};
use super::{Fields, Key};
use crate::config::{SourceConfig, SqliteSourceConfig};

/// Records per chunk handed to the sink.
const CHUNK: usize = 4096;

/// How long the agent waits for a lock the owner holds (a commit in rollback-journal mode).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The rows of a query on a SQLite database, read whole each run.
#[derive(Debug)]
pub struct SqliteSource {
    name: String,
    path: PathBuf,
    query: String,
    timeout: Duration,
    parser: RecordParser,
}

/// What the reading thread hands over.
enum Chunk {
    Records(Vec<Record>),
    Malformed(Malformed),
}

/// Why reading failed, before it becomes the source's error.
struct ReadFailure {
    problem: String,
    busy: bool,
}

impl From<rusqlite::Error> for ReadFailure {
    fn from(e: rusqlite::Error) -> Self {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        Self {
            problem: e.to_string(),
            busy,
        }
    }
}

impl SqliteSource {
    /// The same source, its records keeping only the fields `reads` names (beyond its own).
    pub fn reading(self, reads: &super::Projection) -> Self {
        Self {
            parser: self.parser.reading(reads),
            ..self
        }
    }

    /// The source a `kind = "sqlite"` `[[source]]` describes.
    pub fn new(source: &SourceConfig, sqlite: &SqliteSourceConfig) -> Self {
        Self {
            name: source.name.clone(),
            path: sqlite.path.clone(),
            query: sqlite.query.clone(),
            timeout: sqlite.timeout,
            parser: RecordParser::new(
                &source.date_field,
                source.tz_offset_field.as_deref(),
                sqlite.id_field.as_deref(),
                None,
            ),
        }
    }

    /// Opens the database and prepares the query without running it: the columns it gives
    /// (`exist-agent doctor`).
    pub fn columns(&self) -> Result<Vec<String>, SourceError> {
        self.exists()?;
        let conn = open(&self.path).map_err(|e| self.failed(e.into()))?;
        let statement = prepare(&conn, &self.query).map_err(|e| self.failed(e))?;
        Ok(statement.column_names().map(str::to_owned).collect())
    }

    fn exists(&self) -> Result<(), SourceError> {
        std::fs::metadata(&self.path)
            .map(drop)
            .map_err(|source| SourceError::Io {
                source_name: self.name.clone(),
                path: self.path.clone(),
                source,
            })
    }

    fn failed(&self, failure: ReadFailure) -> SourceError {
        SourceError::Database {
            source_name: self.name.clone(),
            path: self.path.clone(),
            problem: failure.problem,
            busy: failure.busy,
        }
    }
}

impl Source for SqliteSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Runs the query (the plan does not matter: the rows are the whole truth each run), hands
    /// over its rows as records, then a [`PullEvent::WindowDone`] with the time the read began.
    async fn pull(
        &self,
        _plan: &PullPlan,
        sink: &mut Sink<'_>,
    ) -> Result<PullSummary, SourceError> {
        let started = Utc::now();
        self.exists()?;
        let (tx, mut rx) = mpsc::channel(4);
        let (path, query, timeout) = (self.path.clone(), self.query.clone(), self.timeout);
        let (parser, name) = (self.parser.clone(), self.name.clone());
        // When the sink fails, `rx` is dropped: the next send fails and the reading stops.
        let reading = tokio::task::spawn_blocking(move || {
            read_rows(&path, &query, timeout, &parser, &name, &mut |chunk| {
                tx.blocking_send(chunk).is_ok()
            })
        });
        let mut summary = PullSummary {
            pages: 1,
            ..PullSummary::default()
        };
        while let Some(chunk) = rx.recv().await {
            let event = match chunk {
                Chunk::Records(records) => {
                    summary.records += records.len();
                    PullEvent::Records(records)
                }
                Chunk::Malformed(m) => {
                    summary.malformed += 1;
                    PullEvent::Malformed(m)
                }
            };
            emit(&self.name, sink, event)?;
        }
        match reading.await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(self.failed(failure)),
            Err(e) => {
                return Err(self.failed(ReadFailure {
                    problem: format!("reading stopped: {e}"),
                    busy: false,
                }))
            }
        }
        emit(&self.name, sink, PullEvent::WindowDone { cursor: started })?;
        Ok(summary)
    }
}

/// Opens `path` for reading only, never locking the owner out for long.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Prepares `query`, refusing a statement that would write.
fn prepare<'c>(conn: &'c Connection, query: &str) -> Result<rusqlite::Statement<'c>, ReadFailure> {
    let statement = conn.prepare(query)?;
    if !statement.readonly() {
        return Err(ReadFailure {
            problem: "the query would change the database; a source only reads (write a SELECT)"
                .into(),
            busy: false,
        });
    }
    Ok(statement)
}

/// Runs the query on a blocking thread, handing chunks to `out` until it refuses one.
fn read_rows(
    path: &Path,
    query: &str,
    timeout: Duration,
    parser: &RecordParser,
    source: &str,
    out: &mut dyn FnMut(Chunk) -> bool,
) -> Result<(), ReadFailure> {
    let conn = open(path)?;
    // A watchdog interrupts the query once it has run for `timeout`; it ends as soon as the
    // reading does (its channel closes).
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
        }
    });
    let result = stream_rows(&conn, query, timeout, parser, source, out);
    drop(done);
    // The watchdog only waits and interrupts; it cannot fail in a way that matters here.
    let _ = watchdog.join();
    result
}

fn stream_rows(
    conn: &Connection,
    query: &str,
    timeout: Duration,
    parser: &RecordParser,
    source: &str,
    out: &mut dyn FnMut(Chunk) -> bool,
) -> Result<(), ReadFailure> {
    let mut statement = prepare(conn, query)?;
    // The key each column is kept under, if the configuration reads it.
    let keys: Vec<Option<Key>> = statement
        .column_names()
        .map(|name| parser.key_of(name))
        .collect();
    let mut rows = statement.query([])?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut row_number = 0u64;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                return Err(ReadFailure {
                    problem: format!(
                        "the query ran longer than {} and was stopped; make it faster (an index, a WHERE on recent days) or raise the source's timeout",
                        humantime::format_duration(timeout)
                    ),
                    busy: false,
                })
            }
            Err(e) => return Err(e.into()),
        };
        row_number += 1;
        let mut fields = Fields::default();
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = *key else { continue };
            if let Some(value) = json_of(row.get_ref(i)?) {
                fields.insert(key, value);
            }
        }
        match parser.parse(fields, None, Origin::Row(row_number)) {
            Ok(record) => chunk.push(record),
            Err(Unparsed { location, reason }) => {
                let report = Malformed {
                    source: source.to_owned(),
                    location,
                    reason,
                };
                if !out(Chunk::Malformed(report)) {
                    return Ok(());
                }
            }
        }
        if chunk.len() == CHUNK && !out(Chunk::Records(std::mem::take(&mut chunk))) {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        out(Chunk::Records(chunk));
    }
    Ok(())
}

/// A column's value as a record field: numbers, text, a blob as hex text; NULL is absent (as an
/// empty CSV cell is).
fn json_of(value: ValueRef<'_>) -> Option<Value> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(Value::Number(n.into())),
        ValueRef::Real(x) => Number::from_f64(x).map(Value::Number),
        ValueRef::Text(text) => Some(Value::String(String::from_utf8_lossy(text).into_owned())),
        ValueRef::Blob(bytes) => Some(Value::String(hex::encode(bytes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_become_fields_and_null_is_absent() {
        assert_eq!(json_of(ValueRef::Integer(7)), Some(Value::from(7)));
        assert_eq!(json_of(ValueRef::Real(1.5)), Some(Value::from(1.5)));
        assert_eq!(json_of(ValueRef::Real(f64::NAN)), None);
        assert_eq!(
            json_of(ValueRef::Text(b"on")),
            Some(Value::String("on".into()))
        );
        assert_eq!(
            json_of(ValueRef::Blob(&[0xab, 0x01])),
            Some(Value::String("ab01".into()))
        );
        assert_eq!(json_of(ValueRef::Null), None);
    }

    #[test]
    fn a_query_that_writes_is_refused_and_the_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let owner = Connection::open(&path).unwrap();
        owner
            .execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let conn = open(&path).unwrap();
        for query in ["DELETE FROM t", "INSERT INTO t VALUES (2)"] {
            let err = prepare(&conn, query).expect_err("refused");
            assert!(err.problem.contains("only reads"), "{}", err.problem);
        }
        let n: i64 = owner
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
