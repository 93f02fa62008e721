//! The state database's schema, as an ordered list of migrations. The database's
//! `PRAGMA user_version` is the number of migrations applied; each runs in its own transaction,
//! so a crash mid-upgrade leaves the previous version intact.

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only: never edit a
/// migration that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: attributes owned, source cursors and records, what Exist acknowledged, what is pending.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Attributes this agent owns, by configuration key; `name` is what Exist calls it.
    CREATE TABLE attributes (
        key         TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        group_name  TEXT NOT NULL,
        value_type  INTEGER NOT NULL,
        acquired_at TEXT NOT NULL
    );
    -- Per source: the `updated_since` cursor, the oldest time ever pulled, the last pull.
    CREATE TABLE cursors (
        source        TEXT PRIMARY KEY,
        updated_since TEXT,
        history_start TEXT,
        last_pull_at  TEXT,
        last_error    TEXT
    );
    -- Records of incremental sources, unique by (source, id); `day` is the user's day under the
    -- current day basis (see meta). Clustered by day: a day's records are one range scan.
    CREATE TABLE records (
        source     TEXT NOT NULL,
        day        TEXT NOT NULL,
        id         TEXT NOT NULL,
        time       TEXT NOT NULL,
        updated_at TEXT,
        data       TEXT NOT NULL,
        PRIMARY KEY (source, day, id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX records_by_id ON records (source, id);
    -- The last value Exist acknowledged for each (attribute, day).
    CREATE TABLE ledger (
        attribute TEXT NOT NULL,
        day       TEXT NOT NULL,
        value     TEXT NOT NULL,
        acked_at  TEXT NOT NULL,
        PRIMARY KEY (attribute, day)
    ) WITHOUT ROWID;
    -- Values to send: written before sending, removed only when Exist acknowledged them.
    CREATE TABLE outbox (
        attribute TEXT NOT NULL,
        day       TEXT NOT NULL,
        value     TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        attempts  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (attribute, day)
    ) WITHOUT ROWID;
    "#,
    // 2: rejected values, days to recompute, the hour's request budget.
    r#"
    -- Values Exist refused (or that failed local checks), kept with the error for `status`.
    CREATE TABLE rejected (
        attribute   TEXT NOT NULL,
        day         TEXT NOT NULL,
        value       TEXT NOT NULL,
        error_code  TEXT NOT NULL,
        error       TEXT NOT NULL,
        rejected_at TEXT NOT NULL,
        PRIMARY KEY (attribute, day)
    ) WITHOUT ROWID;
    -- Days whose records changed since values were last computed. Triggers fill it in the same
    -- transaction as the records, so a crash between pull and compute loses no change.
    CREATE TABLE dirty_days (
        source TEXT NOT NULL,
        day    TEXT NOT NULL,
        PRIMARY KEY (source, day)
    ) WITHOUT ROWID;
    -- A trigger's own OR IGNORE would be overridden by the outer statement's conflict handling
    -- (an UPSERT of records), so the triggers avoid the conflict instead.
    CREATE TRIGGER records_inserted AFTER INSERT ON records BEGIN
        INSERT INTO dirty_days SELECT NEW.source, NEW.day
        WHERE NOT EXISTS (SELECT 1 FROM dirty_days WHERE source = NEW.source AND day = NEW.day);
    END;
    CREATE TRIGGER records_updated AFTER UPDATE ON records BEGIN
        INSERT INTO dirty_days SELECT OLD.source, OLD.day
        WHERE NOT EXISTS (SELECT 1 FROM dirty_days WHERE source = OLD.source AND day = OLD.day);
        INSERT INTO dirty_days SELECT NEW.source, NEW.day
        WHERE NOT EXISTS (SELECT 1 FROM dirty_days WHERE source = NEW.source AND day = NEW.day);
    END;
    CREATE TRIGGER records_deleted AFTER DELETE ON records BEGIN
        INSERT INTO dirty_days SELECT OLD.source, OLD.day
        WHERE NOT EXISTS (SELECT 1 FROM dirty_days WHERE source = OLD.source AND day = OLD.day);
    END;
    -- Requests made to Exist per UTC hour, and whether Exist said 429 in that hour.
    CREATE TABLE rate_budget (
        hour     TEXT PRIMARY KEY,
        requests INTEGER NOT NULL DEFAULT 0,
        limited  INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 3: a source's requested wait, the records its last pull skipped, and meta keys typed.
    r#"
    -- `Retry-After` outlives the run that was told it.
    ALTER TABLE cursors ADD COLUMN retry_at TEXT;
    -- Records the last pull of each source skipped, with the reason: what `status` lists.
    CREATE TABLE skipped (
        source   TEXT NOT NULL,
        position INTEGER NOT NULL,
        location TEXT NOT NULL,
        reason   TEXT NOT NULL,
        seen_at  TEXT NOT NULL,
        PRIMARY KEY (source, position)
    ) WITHOUT ROWID;
    -- Written by this program only; a key it no longer uses is dropped here.
    DELETE FROM meta WHERE key LIKE 'computed:%' AND value = '';
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;
