//! Per-source pull state: the `updated_since` cursor, how far back history was pulled, and the
//! outcome of the last pull.

use super::{Reader, StoreError, Writer};
use chrono::{DateTime, Utc};

/// One source's pull state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Records changed at or after this time have not been pulled yet.
    pub updated_since: Option<DateTime<Utc>>,
    /// The oldest change time ever pulled: `--full` re-pulls from here.
    pub history_start: Option<DateTime<Utc>>,
    /// When the last pull finished.
    pub last_pull_at: Option<DateTime<Utc>>,
    /// Why the last pull failed, if it did.
    pub last_error: Option<String>,
    /// The source asked to be left alone until then (`Retry-After`): no pull before it.
    pub retry_at: Option<DateTime<Utc>>,
}

fn parse(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn cursor_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        updated_since: parse(r.get(first)?),
        history_start: parse(r.get(first + 1)?),
        last_pull_at: parse(r.get(first + 2)?),
        last_error: r.get(first + 3)?,
        retry_at: parse(r.get(first + 4)?),
    })
}

impl Reader<'_> {
    /// The pull state of `source` (all empty before its first pull).
    pub fn cursor(&self, source: &str) -> Result<Cursor, StoreError> {
        self.one(
            "SELECT updated_since, history_start, last_pull_at, last_error, retry_at FROM cursors WHERE source = ?1",
            [source],
            |r| cursor_of(r, 0),
        )
        .map(Option::unwrap_or_default)
    }

    /// Every source's pull state, by name.
    pub fn cursors(&self) -> Result<Vec<(String, Cursor)>, StoreError> {
        self.all(
            "SELECT source, updated_since, history_start, last_pull_at, last_error, retry_at FROM cursors ORDER BY source",
            [],
            |r| Ok((r.get(0)?, cursor_of(r, 1)?)),
        )
    }
}

impl Writer<'_> {
    /// Stores the pull state of `source`.
    pub fn set_cursor(&self, source: &str, cursor: &Cursor) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO cursors (source, updated_since, history_start, last_pull_at, last_error, retry_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source) DO UPDATE SET updated_since = excluded.updated_since,
               history_start = excluded.history_start, last_pull_at = excluded.last_pull_at,
               last_error = excluded.last_error, retry_at = excluded.retry_at",
            rusqlite::params![
                source,
                text(cursor.updated_since),
                text(cursor.history_start),
                text(cursor.last_pull_at),
                cursor.last_error,
                text(cursor.retry_at)
            ],
        )
    }
}
