//! A Gadgetbridge database file, as the Android app Gadgetbridge exports it ("Data management" →
//! export: an SQLite file named `Gadgetbridge`), with the activity samples of a Mi Band-style
//! device. Not a server: it is for the agent's `kind = "sqlite"` source.
//!
//! Written from:
//! - Gadgetbridge's data management page, <https://gadgetbridge.org/internals/development/data-management/>
//!   (the export is a plain SQLite database meant for analysis);
//! - its schema generator, `GBDaoGenerator.java` in
//!   <https://github.com/Freeyourgadget/Gadgetbridge> (greenDAO entities `User`, `Device` and
//!   `MiBandActivitySample`: the common sample properties `timestamp` (seconds), `deviceId`,
//!   `userId`, then `rawIntensity`, `steps`, `rawKind`, `heartRate`, all not null, one row per
//!   device and timestamp); greenDAO names tables and columns in upper snake case;
//! - an analysis of a real export, <https://bacaliu.de/analyzing_gadgetbridge_data_in_python.html>
//!   (`SELECT TIMESTAMP, RAW_INTENSITY, STEPS, RAW_KIND, HEART_RATE FROM MI_BAND_ACTIVITY_SAMPLE`,
//!   one row a minute, `HEART_RATE` from -1 to 255, where -1/255 mean "no reading" and
//!   `RAW_INTENSITY` -1 likewise).
//!
//! The tables created: `MI_BAND_ACTIVITY_SAMPLE (TIMESTAMP, DEVICE_ID, USER_ID, RAW_INTENSITY,
//! STEPS, RAW_KIND, HEART_RATE)` keyed by `(TIMESTAMP, DEVICE_ID)` `WITHOUT ROWID`, `DEVICE (_id,
//! NAME, MANUFACTURER, IDENTIFIER, TYPE, TYPE_NAME, MODEL, ALIAS, PARENT_FOLDER)`, `USER (_id,
//! NAME, BIRTHDAY, GENDER)`, and Android's `android_metadata (locale)`. The key clause (`ON
//! CONFLICT REPLACE`, `WITHOUT ROWID`) is how greenDAO declares such composite keys, not something
//! Gadgetbridge documents; a query should not depend on it. The real file has many
//! more tables (one per device family); a query against these three reads the same there.
//!
//! `RAW_KIND` codes are device-specific (Gadgetbridge maps them per device family); a source
//! should count `STEPS` and treat `RAW_KIND` as opaque.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [[source]]
//! name = "band"
//! kind = "sqlite"
//! path = "~/Sync/Gadgetbridge"
//! query = """
//!   SELECT s.TIMESTAMP AS ts, s.STEPS AS steps
//!   FROM MI_BAND_ACTIVITY_SAMPLE s JOIN DEVICE d ON d._id = s.DEVICE_ID
//!   WHERE d.IDENTIFIER = 'C8:0F:10:AA:BB:CC' AND s.STEPS > 0
//! """
//! date_field = "ts"                 # epoch seconds (the sqlite kind needs date_format = "epoch"
//!                                   # or to read integers as epoch seconds)
//!
//! [[attribute]]
//! template = "steps"
//! source = "band"
//! field = "steps"
//! aggregate = "sum"
//! ```
//!
//! With [`sample_two_days`] the steps are, for a user in `UTC`: 2026-11-19 = 6600, 2026-11-20 =
//! 4800; in `Europe/Berlin`: 2026-11-19 = 6000, 2026-11-20 = 5400 (the half hour from 23:30 UTC
//! on the 19th is after midnight in Berlin).

use std::path::Path;

use rusqlite::{params, Connection};

/// One row of `MI_BAND_ACTIVITY_SAMPLE`: a minute of activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiBandSample {
    /// Unix seconds (the sample's minute).
    pub timestamp: i64,
    pub device_id: i64,
    pub user_id: i64,
    /// Movement intensity, device units; -1 when not measured.
    pub raw_intensity: i32,
    pub steps: i32,
    /// Device-specific activity kind code.
    pub raw_kind: i32,
    /// Beats a minute; 255 or -1 when there was no reading.
    pub heart_rate: i32,
}

/// A Gadgetbridge database being written.
pub struct GadgetbridgeDb {
    conn: Connection,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS android_metadata (locale TEXT);
CREATE TABLE "USER" (
  "_id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "NAME" TEXT NOT NULL,
  "BIRTHDAY" INTEGER NOT NULL,
  "GENDER" INTEGER NOT NULL
);
CREATE TABLE "DEVICE" (
  "_id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "NAME" TEXT NOT NULL,
  "MANUFACTURER" TEXT NOT NULL,
  "IDENTIFIER" TEXT NOT NULL UNIQUE,
  "TYPE" INTEGER NOT NULL,
  "TYPE_NAME" TEXT NOT NULL,
  "MODEL" TEXT,
  "ALIAS" TEXT,
  "PARENT_FOLDER" TEXT
);
CREATE TABLE "MI_BAND_ACTIVITY_SAMPLE" (
  "TIMESTAMP" INTEGER NOT NULL,
  "DEVICE_ID" INTEGER NOT NULL,
  "USER_ID" INTEGER NOT NULL,
  "RAW_INTENSITY" INTEGER NOT NULL,
  "STEPS" INTEGER NOT NULL,
  "RAW_KIND" INTEGER NOT NULL,
  "HEART_RATE" INTEGER NOT NULL,
  PRIMARY KEY ("TIMESTAMP", "DEVICE_ID") ON CONFLICT REPLACE
) WITHOUT ROWID;
"#;

impl GadgetbridgeDb {
    /// Creates the database file at `path` with the schema (fails if the tables exist).
    pub fn create(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute("INSERT INTO android_metadata (locale) VALUES ('en_US')", [])?;
        Ok(Self { conn })
    }

    /// Adds a user and returns its `_id`.
    pub fn add_user(&self, name: &str) -> rusqlite::Result<i64> {
        // Birthday in milliseconds, as greenDAO stores dates; gender 0.
        self.conn.execute(
            r#"INSERT INTO "USER" ("NAME", "BIRTHDAY", "GENDER") VALUES (?1, ?2, 0)"#,
            params![name, 631_152_000_000_i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Adds a device (`identifier`: its MAC address) and returns its `_id`.
    pub fn add_device(
        &self,
        name: &str,
        identifier: &str,
        type_name: &str,
    ) -> rusqlite::Result<i64> {
        self.conn.execute(
            r#"INSERT INTO "DEVICE" ("NAME", "MANUFACTURER", "IDENTIFIER", "TYPE", "TYPE_NAME", "MODEL", "ALIAS", "PARENT_FOLDER")
               VALUES (?1, 'Xiaomi', ?2, 0, ?3, NULL, NULL, NULL)"#,
            params![name, identifier, type_name],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Writes samples (a sample for an existing device and minute replaces it, as in the app).
    pub fn add_samples(&mut self, samples: &[MiBandSample]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare(
                r#"INSERT INTO "MI_BAND_ACTIVITY_SAMPLE"
                   ("TIMESTAMP", "DEVICE_ID", "USER_ID", "RAW_INTENSITY", "STEPS", "RAW_KIND", "HEART_RATE")
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"#,
            )?;
            for s in samples {
                insert.execute(params![
                    s.timestamp,
                    s.device_id,
                    s.user_id,
                    s.raw_intensity,
                    s.steps,
                    s.raw_kind,
                    s.heart_rate
                ])?;
            }
        }
        tx.commit()
    }

    /// Closes the file.
    pub fn close(self) -> rusqlite::Result<()> {
        self.conn.close().map_err(|(_, e)| e)
    }
}

/// A sample a minute from `start` (Unix seconds) for `minutes` minutes, `steps_per_minute`
/// each, heart rate drifting between 70 and 89 with every tenth minute unread (255).
pub fn minutes(
    device_id: i64,
    user_id: i64,
    start: i64,
    minutes: i64,
    steps_per_minute: i32,
) -> Vec<MiBandSample> {
    (0..minutes)
        .map(|i| MiBandSample {
            timestamp: start + i * 60,
            device_id,
            user_id,
            raw_intensity: if steps_per_minute > 0 {
                20 + steps_per_minute / 4
            } else {
                0
            },
            steps: steps_per_minute,
            raw_kind: if steps_per_minute > 0 { 1 } else { 112 },
            heart_rate: if i % 10 == 9 {
                255
            } else {
                70 + (i % 20) as i32
            },
        })
        .collect()
}

/// Creates `path` with a user, a band and two days of samples (the values in the module
/// documentation), including quiet minutes with zero steps. Returns the device id.
pub fn sample_two_days(path: &Path) -> rusqlite::Result<i64> {
    let mut db = GadgetbridgeDb::create(path)?;
    let user = db.add_user("Test User")?;
    let device = db.add_device("Mi Band 3", "C8:0F:10:AA:BB:CC", "MIBAND3")?;
    // 2026-11-19T07:00:00Z and so on, as Unix seconds.
    let nov19_0700 = 1_795_071_600;
    let hour = 3600;
    let mut samples = Vec::new();
    samples.extend(minutes(device, user, nov19_0700 - 3 * hour, 60, 0)); // asleep
    samples.extend(minutes(device, user, nov19_0700, 60, 50)); // 3000
    samples.extend(minutes(device, user, nov19_0700 + 10 * hour, 30, 100)); // 17:00Z, 3000
    samples.extend(minutes(device, user, nov19_0700 + 16 * hour + 1800, 30, 20)); // 23:30Z, 600
    samples.extend(minutes(device, user, nov19_0700 + 27 * hour, 60, 80)); // 20th 10:00Z, 4800
    db.add_samples(&samples)?;
    db.close()?;
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_timestamps_are_the_documented_instants() {
        let t = chrono::DateTime::from_timestamp(1_795_071_600, 0).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-19T07:00:00+00:00");
    }

    #[test]
    fn a_sample_for_the_same_minute_and_device_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = GadgetbridgeDb::create(&dir.path().join("Gadgetbridge")).unwrap();
        let device = db.add_device("band", "AA", "MIBAND").unwrap();
        db.add_samples(&minutes(device, 1, 0, 2, 10)).unwrap();
        db.add_samples(&minutes(device, 1, 0, 1, 99)).unwrap();
        let steps: i64 = db
            .conn
            .query_row(
                r#"SELECT SUM(STEPS) FROM MI_BAND_ACTIVITY_SAMPLE"#,
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(steps, 109);
    }
}
