//! When a source read whole can be left alone: its day values are a pure function of its
//! content and of everything else this module fingerprints, so when neither changed since its
//! values were last settled, reducing it again would give the same values, and reconciling them
//! with an unchanged state would queue nothing.
//!
//! The context fingerprint covers the program's version, the source's configuration, each of
//! its attributes' configuration and standing, the day basis and today (a record is placed
//! against today; a new day re-reads every source), `resync_days`, and what the state holds
//! for those attributes (acknowledged, pending and refused values: `push`, `verify` or a lost
//! attribute change them, and then the source is reduced again). It is remembered with the
//! content's fingerprint only after the run applied the values and sent what it could, so a
//! crash or a failed run before that leaves nothing to skip on.

use std::fmt::Write as _;

use xxhash_rust::xxh3::xxh3_64;

use super::attributes::Resolved;
use super::{DayBasis, Mode};
use crate::config::{Config, PullMode, SourceConfig};
use crate::sources::ContentFingerprint;
use crate::store::{Reader, SettledContent, Store, StoreError};
use exist_api::types::{AttributeName, Day};

/// What decides a whole source's day values besides its content and the state, as text,
/// fixed when the run's pull of the source begins.
#[derive(Debug, Clone)]
pub(super) struct Inputs {
    source: String,
    text: String,
    /// The source's attributes owned in Exist, whose held values join the fingerprint.
    owned: Vec<AttributeName>,
}

impl Inputs {
    /// The inputs of `source` on the user's day `today`, when this run may skip it and
    /// remember it: an incremental run of a source read whole that computes every one of its
    /// attributes. A full sync and a backfill always reduce; a run narrowed by `--attribute`
    /// neither skips nor remembers.
    pub fn of(
        config: &Config,
        source: &SourceConfig,
        resolved: &[Resolved<'_>],
        selected: &[usize],
        basis: DayBasis,
        today: Day,
        mode: Mode,
    ) -> Option<Self> {
        if mode != Mode::Incremental || source.kind.pull_mode() != PullMode::Whole {
            return None;
        }
        // Its `[[tags]]` are found in the records of each parse (and their attributes are
        // created as they appear): a source that has them is always parsed.
        if config.tags.iter().any(|t| t.source == source.name) {
            return None;
        }
        let mut text = format!(
            "exist-agent {}\nsource {source:?}\nbasis {basis} today {}\nresync {}\n",
            env!("CARGO_PKG_VERSION"),
            today,
            config.agent.resync_days
        );
        let mut owned = Vec::new();
        for (i, r) in resolved.iter().enumerate() {
            if r.config.source != source.name {
                continue;
            }
            if !selected.contains(&i) {
                return None;
            }
            let _ = writeln!(
                text,
                "attribute {i} {:?} {:?} {:?} {:?}",
                r.key, r.standing, r.value_type, r.config
            );
            owned.extend(r.name().cloned());
        }
        Some(Self {
            source: source.name.clone(),
            text,
            owned,
        })
    }

    /// The context fingerprint: these inputs and what the state holds for the attributes now.
    fn context(&self, reader: &Reader<'_>) -> Result<u64, StoreError> {
        let mut text = self.text.clone();
        for name in &self.owned {
            let _ = writeln!(
                text,
                "{name}: acknowledged {:?} pending {:?} refused {:?}",
                reader.ledger(name)?,
                reader.outbox_of(name)?,
                reader.rejected_of(name)?
            );
        }
        Ok(xxh3_64(text.as_bytes()))
    }

    /// The content whose day values still stand: the one remembered, if nothing else changed.
    pub fn known(&self, reader: &Reader<'_>) -> Result<Option<ContentFingerprint>, StoreError> {
        let Some(settled) = reader.settled_content(&self.source)? else {
            return Ok(None);
        };
        Ok((settled.context == self.context(reader)?).then_some(settled.content))
    }

    /// Remembers that the day values of `content` are settled, with the state as it is now.
    pub fn remember(
        &self,
        store: &mut Store,
        content: ContentFingerprint,
    ) -> Result<(), StoreError> {
        let context = self.context(&store.read())?;
        store.transaction(|tx| {
            tx.set_settled_content(&self.source, &SettledContent { context, content })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_new_day_is_another_context_so_every_source_is_read_again() {
        let config = Config::parse(
            Path::new("/t.toml"),
            r#"
[exist]
client_id = "x"

[[source]]
name = "walks"
kind = "file"
path = "w.jsonl"
date_field = "start"

[[attribute]]
label = "Walks"
group = "activity"
value_type = "integer"
source = "walks"
aggregate = "count"
"#,
        )
        .unwrap();
        let resolved = super::super::attributes::resolve(&config, &[]);
        let basis = DayBasis {
            tz: chrono_tz::Europe::Berlin,
            day_starts: chrono::NaiveTime::MIN,
        };
        let on = |day: &str, mode| {
            let today = Day::new(day.parse().unwrap());
            Inputs::of(
                &config,
                &config.sources[0],
                &resolved,
                &[0],
                basis,
                today,
                mode,
            )
            .map(|inputs| inputs.text)
        };
        let monday = on("2026-11-30", Mode::Incremental).unwrap();
        assert_eq!(Some(&monday), on("2026-11-30", Mode::Incremental).as_ref());
        assert_ne!(Some(&monday), on("2026-12-01", Mode::Incremental).as_ref());
        assert_eq!(
            on("2026-11-30", Mode::Full),
            None,
            "a full sync always reduces"
        );
    }
}
