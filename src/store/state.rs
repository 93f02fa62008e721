//! The small facts the agent remembers between runs, in the `meta` table: every key is here,
//! with a typed accessor, so that what the state holds can be read in one place (and a value this
//! program did not write is reported as damage, not silently ignored).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{now_text, Reader, StoreError, Writer};
use crate::sources::ContentFingerprint;
use exist_api::types::Day;

/// The user's timezone as Exist's profile said it, and when it was last asked.
const PROFILE_TIMEZONE: &str = "profile_timezone";
const PROFILE_TIMEZONE_CHECKED: &str = "profile_timezone_checked";
/// The timezone and day start stored records were placed on their days with.
const DAY_BASIS: &str = "day_basis";
/// The start of the daemon's last scheduled run, so a restart catches up at most once.
const DAEMON_LAST_RUN: &str = "daemon_last_run";

/// The failure episode runs are in, if the last run failed (JSON of [`FailureEpisode`]).
const FAILURE_EPISODE: &str = "failure_episode";

/// The newest day a source read whole had a record on, at its last pull (it keeps no records).
fn newest_day_key(source: &str) -> String {
    format!("newest_day:{source}")
}

/// That the staleness of a source was alerted (the value: its newest day then).
fn stale_alerted_key(source: &str) -> String {
    format!("stale_alerted:{source}")
}

/// How far a backfill of `source` from `from` got: the end of the last window it completed.
fn backfill_key(source: &str, from: Day) -> String {
    format!("backfill:{source}:{from}")
}

/// How many records a source read whole had at its last pull (it keeps no records).
fn whole_records_key(source: &str) -> String {
    format!("records:{source}")
}

/// The last delivery to an inbox source.
fn delivery_key(source: &str) -> String {
    format!("delivery:{source}")
}

/// The content of a source read whole whose day values were last settled, with its context.
fn settled_content_key(source: &str) -> String {
    format!("content:{source}")
}

/// That an attribute's values were computed once already (its first run looks at all history).
fn computed_key(attribute_key: &str) -> String {
    format!("computed:{attribute_key}")
}

/// The profile's timezone, as cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTimezone {
    /// The timezone.
    pub tz: Tz,
    /// When Exist was last asked.
    pub checked_at: Option<DateTime<Utc>>,
}

/// The last delivery an inbox source received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivered {
    /// When it was stored.
    pub at: DateTime<Utc>,
    /// How many records it held that were stored.
    pub records: u64,
    /// How many were skipped.
    pub skipped: u64,
}

/// Runs failing since `since`: what `crate::alerts` remembers between runs, so that one failure
/// episode alerts once, however many runs it lasts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureEpisode {
    /// When the first failed run of the episode ended.
    pub since: DateTime<Utc>,
    /// Failed runs in the episode.
    pub failures: u32,
    /// Whether the episode was alerted (so the success that ends it says so).
    pub alerted: bool,
}

/// A source read whole whose day values were settled: the fingerprint of its content, and of
/// everything else that decided them (see `sync::fingerprint`), so that the same content in
/// the same context need not be parsed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettledContent {
    /// Everything besides the content: configuration, day basis, today, the values held.
    pub context: u64,
    /// The content's fingerprint.
    pub content: ContentFingerprint,
}

/// Where a resumable backfill stands.
pub type BackfillProgress = Option<DateTime<Utc>>;

impl Reader<'_> {
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.one("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
    }

    fn meta_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta(key)?
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.to_utc())
                    .map_err(|_| self.corrupt(format!("bad time `{t}` in meta {key}")))
            })
            .transpose()
    }

    /// The profile's timezone, if Exist was ever asked.
    pub fn profile_timezone(&self) -> Result<Option<ProfileTimezone>, StoreError> {
        let Some(name) = self.meta(PROFILE_TIMEZONE)? else {
            return Ok(None);
        };
        let tz = name
            .parse()
            .map_err(|_| self.corrupt(format!("bad timezone `{name}`")))?;
        Ok(Some(ProfileTimezone {
            tz,
            checked_at: self.meta_time(PROFILE_TIMEZONE_CHECKED)?,
        }))
    }

    /// The day basis stored records are placed with (`Zone/Name|HH:MM`).
    pub fn day_basis(&self) -> Result<Option<String>, StoreError> {
        self.meta(DAY_BASIS)
    }

    /// The start of the daemon's last scheduled run.
    pub fn daemon_last_run(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time(DAEMON_LAST_RUN)
    }

    /// How far the backfill of `source` from `from` got.
    pub fn backfill_progress(
        &self,
        source: &str,
        from: Day,
    ) -> Result<BackfillProgress, StoreError> {
        self.meta_time(&backfill_key(source, from))
    }

    /// How many records the source read whole had at its last pull.
    pub fn whole_source_records(&self, source: &str) -> Result<u64, StoreError> {
        let key = whole_records_key(source);
        self.meta(&key)?
            .map(|n| {
                n.parse()
                    .map_err(|_| self.corrupt(format!("bad count `{n}` in meta {key}")))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The last delivery `source` (an inbox) received.
    pub fn last_delivery(&self, source: &str) -> Result<Option<Delivered>, StoreError> {
        let key = delivery_key(source);
        let Some(text) = self.meta(&key)? else {
            return Ok(None);
        };
        let mut parts = text.splitn(3, '|');
        let parsed = (|| {
            let at = DateTime::parse_from_rfc3339(parts.next()?).ok()?.to_utc();
            let records = parts.next()?.parse().ok()?;
            let skipped = parts.next()?.parse().ok()?;
            Some(Delivered {
                at,
                records,
                skipped,
            })
        })();
        parsed
            .map(Some)
            .ok_or_else(|| self.corrupt(format!("bad delivery `{text}` in meta {key}")))
    }

    /// The failure episode runs are in, if the last run failed.
    pub fn failure_episode(&self) -> Result<Option<FailureEpisode>, StoreError> {
        self.meta(FAILURE_EPISODE)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|_| self.corrupt(format!("bad failure episode `{text}`")))
            })
            .transpose()
    }

    /// The newest day the source read whole had a record on, at its last pull.
    pub fn newest_whole_day(&self, source: &str) -> Result<Option<Day>, StoreError> {
        self.meta(&newest_day_key(source))?
            .map(|d| self.parse_day(&d))
            .transpose()
    }

    /// The source's newest day when its staleness was alerted, if it was.
    pub fn stale_alerted(&self, source: &str) -> Result<Option<Day>, StoreError> {
        self.meta(&stale_alerted_key(source))?
            .map(|d| self.parse_day(&d))
            .transpose()
    }

    /// The content of the source read whole whose day values were last settled.
    pub fn settled_content(&self, source: &str) -> Result<Option<SettledContent>, StoreError> {
        let key = settled_content_key(source);
        let Some(text) = self.meta(&key)? else {
            return Ok(None);
        };
        let parsed = text.split_once(':').and_then(|(context, content)| {
            Some(SettledContent {
                context: u64::from_str_radix(context, 16).ok()?,
                content: ContentFingerprint::from_hex(content)?,
            })
        });
        parsed
            .map(Some)
            .ok_or_else(|| self.corrupt(format!("bad fingerprint `{text}` in meta {key}")))
    }

    /// Whether the attribute with this configuration key was computed before.
    pub fn computed_before(&self, attribute_key: &str) -> Result<bool, StoreError> {
        Ok(self.meta(&computed_key(attribute_key))?.is_some())
    }
}

impl Writer<'_> {
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
    }

    fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM meta WHERE key = ?1", [key])
    }

    /// Notes the failure episode runs are in; `None` ends it.
    pub fn set_failure_episode(&self, episode: Option<&FailureEpisode>) -> Result<(), StoreError> {
        match episode {
            None => self.delete_meta(FAILURE_EPISODE),
            Some(e) => self.set_meta(
                FAILURE_EPISODE,
                &serde_json::to_string(e).expect("an episode serializes"),
            ),
        }
    }

    /// Notes the newest day a source read whole had a record on.
    pub fn set_newest_whole_day(&self, source: &str, day: Day) -> Result<(), StoreError> {
        self.set_meta(&newest_day_key(source), &day.to_string())
    }

    /// Notes that the source's staleness was alerted at its newest day `day`; `None`: it is
    /// fresh again.
    pub fn set_stale_alerted(&self, source: &str, day: Option<Day>) -> Result<(), StoreError> {
        match day {
            None => self.delete_meta(&stale_alerted_key(source)),
            Some(d) => self.set_meta(&stale_alerted_key(source), &d.to_string()),
        }
    }

    /// Caches the profile's timezone, asked now.
    pub fn set_profile_timezone(&self, tz: Tz) -> Result<(), StoreError> {
        self.set_meta(PROFILE_TIMEZONE, tz.name())?;
        self.set_meta(PROFILE_TIMEZONE_CHECKED, &now_text())
    }

    /// Notes the day basis stored records are now placed with.
    pub fn set_day_basis(&self, basis: &str) -> Result<(), StoreError> {
        self.set_meta(DAY_BASIS, basis)
    }

    /// Notes a delivery `source` (an inbox) received.
    pub fn set_last_delivery(&self, source: &str, d: &Delivered) -> Result<(), StoreError> {
        self.set_meta(
            &delivery_key(source),
            &format!("{}|{}|{}", d.at.to_rfc3339(), d.records, d.skipped),
        )
    }

    /// Notes the start of a scheduled daemon run.
    pub fn set_daemon_last_run(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_meta(DAEMON_LAST_RUN, &at.to_rfc3339())
    }

    /// Notes how far the backfill of `source` from `from` got.
    pub fn set_backfill_progress(
        &self,
        source: &str,
        from: Day,
        done: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_meta(&backfill_key(source, from), &done.to_rfc3339())
    }

    /// Notes how many records the source read whole had.
    pub fn set_whole_source_records(&self, source: &str, records: u64) -> Result<(), StoreError> {
        self.set_meta(&whole_records_key(source), &records.to_string())
    }

    /// Notes the content of the source read whole whose day values are now settled.
    pub fn set_settled_content(
        &self,
        source: &str,
        settled: &SettledContent,
    ) -> Result<(), StoreError> {
        self.set_meta(
            &settled_content_key(source),
            &format!("{:016x}:{}", settled.context, settled.content.to_hex()),
        )
    }

    /// Notes that the attribute with this configuration key has been computed.
    pub fn set_computed(&self, attribute_key: &str) -> Result<(), StoreError> {
        self.set_meta(&computed_key(attribute_key), &now_text())
    }
}
