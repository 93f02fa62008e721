//! `[[tags]]`: one custom boolean attribute per distinct value of a record field, created on
//! first sight.
//!
//! After the pull, [`discover`] gathers the values each tags table's records hold this run: a
//! source read whole from its day totals, a stored source from the records of the days a run
//! recomputes (its whole history the first time, and on a full sync). [`attributes`] turns the
//! values this agent owns a tag for already and the new ones into attributes, which then go
//! through the same resolution (one batched create for the new ones) and the same computing,
//! reconciling and outbox as every configured attribute.

use std::collections::{BTreeSet, HashMap};

use super::pull::DayTotals;
use super::transform::tag_values;
use super::{DayBasis, Mode};
use crate::config::{AttributeConfig, Config, PullMode};
use crate::store::{OwnedAttribute, Reader, StoreError};
use exist_api::types::{AttributeName, Day};

/// What [`discover`] found.
#[derive(Debug, Default)]
pub(super) struct Discovered {
    /// The values each tags table (by index into the configuration's tags) saw this run.
    pub values: Vec<BTreeSet<String>>,
    /// State keys of stored sources' tags tables whose whole history was read, to note so that
    /// later runs read only the days that changed.
    pub read_history: Vec<String>,
}

/// The values the tags tables' records hold this run. A source read whole that was not pulled
/// this run gives none (its tags keep what Exist holds).
pub(super) fn discover(
    config: &Config,
    reader: &Reader<'_>,
    totals: &HashMap<String, DayTotals>,
    basis: DayBasis,
    mode: Mode,
) -> Result<Discovered, StoreError> {
    let mut found = Discovered::default();
    for (i, tags) in config.tags.iter().enumerate() {
        let Some(source) = config.source(&tags.source) else {
            found.values.push(BTreeSet::new());
            continue;
        };
        let values = match source.kind.pull_mode() {
            PullMode::Whole => totals
                .get(&source.name)
                .map(|t| t.tag_values(i))
                .unwrap_or_default(),
            PullMode::Incremental | PullMode::Pushed => {
                let marker = history_key(i, config);
                let whole_history = mode == Mode::Full || !reader.computed_before(&marker)?;
                let mut days: BTreeSet<Day> =
                    reader.dirty_days(&source.name)?.into_iter().collect();
                let today = basis.today();
                days.extend(
                    std::iter::successors(Some(today), |d| Some(d.pred()))
                        .take(config.agent.resync_days as usize),
                );
                match mode {
                    Mode::Backfill { from, to } => {
                        let to = to.unwrap_or(today);
                        days.extend(
                            reader
                                .record_days(&source.name)?
                                .into_iter()
                                .filter(|d| (from..=to).contains(d)),
                        );
                    }
                    _ if whole_history => days.extend(reader.record_days(&source.name)?),
                    _ => {}
                }
                if whole_history {
                    found.read_history.push(marker);
                }
                let mut values = BTreeSet::new();
                let projection = crate::sources::Projection::of([&tags.field]);
                for day in days {
                    for row in reader.stored_records_on(&source.name, day)? {
                        // Written by this program; a record that no longer reads is skipped,
                        // as computing skips it.
                        let Ok(fields) =
                            crate::sources::Fields::parse(row.data.as_bytes(), &projection)
                        else {
                            continue;
                        };
                        values.extend(tag_values(
                            tags.field.get(&fields),
                            tags.separator.as_deref(),
                        ));
                    }
                }
                values
            }
        };
        found.values.push(values);
    }
    Ok(found)
}

/// The state key noting that tags table `i`'s stored history was read once.
fn history_key(i: usize, config: &Config) -> String {
    let t = &config.tags[i];
    format!(
        "tags-read:{}",
        serde_json::json!([t.source, t.field.as_str(), t.prefix])
    )
}

/// The tag attributes of a run, in order: per tags table, each value this agent owns a tag for
/// already or `seen` holds, with where it came from.
#[derive(Debug, Default)]
pub(super) struct TagAttributes {
    /// The attributes, to resolve.
    pub attributes: Vec<AttributeConfig>,
    /// For each attribute: its tags table (an index into the configuration's tags) and value.
    pub origins: Vec<(usize, String)>,
    /// Values left out, with why.
    pub left_out: Vec<String>,
}

/// Every tag attribute of this run (see [`TagAttributes`]). A value whose label Exist could
/// not name (no letter or digit), or that another attribute or an earlier tag already has (Exist
/// compares labels without case), is left out, so no two writers share an attribute.
pub(super) fn attributes(
    config: &Config,
    owned: &[OwnedAttribute],
    seen: &[BTreeSet<String>],
) -> TagAttributes {
    let mut out = TagAttributes::default();
    let mut taken: BTreeSet<String> = config
        .attributes
        .iter()
        .map(|a| a.display_name().to_lowercase())
        .collect();
    for (i, tags) in config.tags.iter().enumerate() {
        let mut values: BTreeSet<String> =
            owned.iter().filter_map(|o| tags.value_of(&o.key)).collect();
        values.extend(seen.get(i).into_iter().flatten().cloned());
        for value in values {
            let attribute = tags.attribute(&value);
            let label = attribute.display_name();
            if AttributeName::slug_of(&label).is_err() {
                out.left_out.push(format!(
                    "tag \"{label}\" of source \"{}\" has no letter or digit for Exist to name it by; add a prefix to the [[tags]]",
                    tags.source
                ));
                continue;
            }
            if !taken.insert(label.to_lowercase()) {
                out.left_out.push(format!(
                    "tag \"{label}\" of source \"{}\" has the label of another attribute; give the [[tags]] a prefix",
                    tags.source
                ));
                continue;
            }
            out.attributes.push(attribute);
            out.origins.push((i, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use exist_api::types::{Group, ValueType};
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            Path::new("/t.toml"),
            r#"
[exist]
client_id = "x"

[[source]]
name = "daylio"
kind = "file"
path = "d.csv"
date_field = "full_date"

[[attribute]]
label = "Gym"
group = "custom"
value_type = "boolean"
source = "daylio"
aggregate = "any"
where = { field = "activities", matches = "gym" }

[[tags]]
source = "daylio"
field = "activities"
separator = " | "
"#,
        )
        .unwrap()
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn owned_and_new_values_become_attributes_and_clashes_are_left_out() {
        let config = config();
        let owned = OwnedAttribute {
            key: config.tags[0].attribute("reading").key(),
            name: AttributeName::new("reading").unwrap(),
            group: Group::Custom,
            value_type: ValueType::Boolean,
        };
        let found = attributes(&config, &[owned], &[set(&["work", "gym", "/"])]);
        let labels: Vec<String> = found.attributes.iter().map(|a| a.display_name()).collect();
        assert_eq!(
            labels,
            ["reading", "work"],
            "sorted, the owned one kept though unseen"
        );
        assert_eq!(found.origins[1], (0, "work".to_owned()));
        assert_eq!(found.left_out.len(), 2, "{:?}", found.left_out);
        assert!(found.left_out.iter().any(|m| m.contains("\"gym\"")));
        assert!(found.left_out.iter().any(|m| m.contains("\"/\"")));
        assert!(found
            .attributes
            .iter()
            .all(|a| a.group() == Group::Custom && a.value_type() == ValueType::Boolean));
    }
}
