//! The agent's durable state: one SQLite database in the state directory.
//!
//! It holds the attributes this agent owns, each source's cursor and records, the ledger of
//! values Exist acknowledged, the outbox of values to send, rejected values and the hour's
//! request budget. Writes are transactional; the database runs in WAL mode with a busy timeout
//! so that `status` can read while a sync writes. Whole runs are serialized by a [`lock::FileLock`] on `run.lock`.

mod budget;
mod cursors;
pub mod lock;
mod migrations;
mod records;
mod state;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Classify, ErrorKind};
use exist_api::types::Day;

pub use budget::{Budget, HourBudget, HOURLY_LIMIT};
pub use cursors::Cursor;
pub use migrations::SCHEMA_VERSION;
pub use records::{StoredRecord, StoredRow};
pub use state::{BackfillProgress, Delivered, FailureEpisode, ProfileTimezone, SettledContent};
pub use values::{OwnedAttribute, Pending, Rejected, Skipped};

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "state.db";

/// What can go wrong with the state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory cannot be created or used.
    #[error("cannot use the state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error("the state database {path} is damaged or not a database ({detail})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// A newer exist-agent wrote this database.
    #[error("the state database {path} has schema version {found}, newer than this exist-agent knows ({known})")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        known: u32,
    },
    /// Another process holds the state for longer than we wait.
    #[error("another exist-agent process (pid {pid}) is using {path}; this one gave up after {}", humantime::format_duration(*waited))]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when known.
        pid: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The disk refused a write (full, read-only, permissions).
    #[error("cannot write the state database {path}: {detail}")]
    Write {
        /// The file.
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// Any other SQLite error.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Busy { .. } | Self::Write { .. } => ErrorKind::Temporary,
            _ => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Dir { .. } => "check its permissions, or set [agent] state_dir to a writable directory".into(),
            Self::Corrupt { path, .. } => format!("move it aside (e.g. `mv {p} {p}.broken`); exist-agent then starts a fresh one, and values it had not sent yet are re-computed from your sources on the next run", p = path.display()),
            Self::TooNew { .. } => "upgrade exist-agent, or set [agent] state_dir to another directory".into(),
            Self::Busy { .. } => "nothing to do, the data is kept and the next run catches up; or stop the other process".into(),
            Self::Write { .. } => "free disk space or make the state directory writable; nothing was lost, the next run retries".into(),
            Self::Sqlite { .. } => return None,
        })
    }
}

/// The open state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir` and brings its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(state_dir)?;
        Self::open_file(&state_dir.join(DB_FILE))
    }

    /// Opens the database file at `path`, migrating it to [`SCHEMA_VERSION`].
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        Self::open_at_version(path, SCHEMA_VERSION)
    }

    /// Opens and migrates up to `target` (tests use it to build older databases).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, target: u32) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
        let mut store = Self {
            conn,
            path: path.to_owned(),
        };
        store.configure()?;
        store.migrate(target)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        // WAL lets readers (status) work while a sync writes; NORMAL sync is durable in WAL
        // across process crashes, which is what `kill -9` tests.
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        // 16 MiB of page cache (the default is 2 MiB): a backfill touches many pages at once.
        self.conn
            .pragma_update(None, "cache_size", -16384)
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))
    }

    /// The schema version stored in the file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self, target: u32) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .take(target as usize)
            .skip(found as usize)
        {
            let path = self.path.clone();
            let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
            tx.execute_batch(sql).map_err(|e| classify(&path, e))?;
            tx.pragma_update(None, "user_version", i as u32 + 1)
                .map_err(|e| classify(&path, e))?;
            tx.commit().map_err(|e| classify(&path, e))?;
            tracing::debug!(version = i + 1, "state database migrated");
        }
        Ok(())
    }

    /// Runs `f` in one transaction: everything it writes lands, or nothing does. Writes are only
    /// possible here, through the [`Writer`].
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Writer<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        let out = f(&Writer {
            read: Reader {
                conn: &tx,
                path: &path,
            },
        })?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(out)
    }

    /// A copy of the database at `path`, opened: `--dry-run` works on it, so that nothing it
    /// does can change the real state.
    pub fn copy_to(&self, path: &Path) -> Result<Store, StoreError> {
        self.conn
            .execute("VACUUM INTO ?1", [path.to_string_lossy()])
            .map_err(|e| self.err(e))?;
        Store::open_file(path)
    }

    /// Queries outside a transaction; a [`Reader`] cannot write.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            path: &self.path,
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }
}

/// The state's queries, on a plain connection or inside a transaction.
pub struct Reader<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

/// The state's writes, only inside [`Store::transaction`]; it reads too.
pub struct Writer<'a> {
    read: Reader<'a>,
}

impl<'a> std::ops::Deref for Writer<'a> {
    type Target = Reader<'a>;

    fn deref(&self) -> &Reader<'a> {
        &self.read
    }
}

impl Reader<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(self.path, e)
    }

    /// Every row of a query, each read by `row`.
    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The row of a query, if there is one.
    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.conn
            .query_row(sql, params, row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The file holds something this module never writes: it was damaged.
    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.to_owned(),
            detail: what,
        }
    }

    fn parse_day(&self, text: &str) -> Result<Day, StoreError> {
        text.parse()
            .map_err(|_| self.corrupt(format!("bad day `{text}`")))
    }
}

impl Writer<'_> {
    /// Runs a statement.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(params).map(drop).map_err(|e| self.err(e))
    }
}

/// Maps SQLite's errors to what the user should do about them.
pub(crate) fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let code = e.sqlite_error_code();
    let detail = e.to_string();
    match code {
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            detail,
        },
        Some(
            C::ReadOnly | C::DiskFull | C::CannotOpen | C::PermissionDenied | C::SystemIoFailure,
        ) => StoreError::Write {
            path: path.to_owned(),
            detail,
        },
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy {
            path: path.to_owned(),
            pid: "unknown".into(),
            waited: Duration::from_secs(30),
        },
        _ => StoreError::Sqlite {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Creates `dir` (and parents) readable by the user only, since it holds tokens.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Dir {
        path: dir.to_owned(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(err)
}

/// Now, as stored: RFC 3339 UTC with seconds.
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
