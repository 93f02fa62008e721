//! The newest version of each record of a source read whole, by id, in bounded memory.
//!
//! A file lists a record again when it was edited, and the later line wins (files and commands
//! carry no change time), so every version must be kept until the input ends: only then is it
//! known which one is the newest. Versions are kept as only what the rules read, in flat
//! vectors; the newest per id is picked by sorting at the end. Past [`IN_MEMORY`] versions
//! they go to temporary files instead, split by their id's hash, so that each part is sorted
//! alone: memory stays flat however many records a file holds.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};

use super::values::Measure;
use exist_api::types::Day;

/// Versions kept in memory before they go to disk: about 50 MB with two rules.
const IN_MEMORY: usize = 1 << 20;

/// How many parts the versions on disk are split into (by the top bits of their id's hash).
const PARTS: usize = 16;

/// Versions, column by column.
#[derive(Debug, Default)]
struct Versions {
    /// A 96-bit hash of each version's id (a collision is out of reach) in the high bits, its
    /// index here in the low 32: sorting these plain integers groups the versions of an id, the
    /// newest (last to come) last.
    ids: Vec<u128>,
    days: Vec<Day>,
    at: Vec<NaiveDateTime>,
    /// One per rule and version: the number, NaN for an absent measure or a text (in
    /// `texts`), negative infinity for one left out by `where`.
    numbers: Vec<f64>,
    /// Text measures, by `index * rules + rule`.
    texts: HashMap<usize, String>,
    /// One per `[[tags]]` table and version (`index * tables + table`): the tags it holds.
    tags: Vec<BTreeSet<String>>,
}

impl Versions {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.days.clear();
        self.at.clear();
        self.numbers.clear();
        self.texts.clear();
        self.tags.clear();
    }

    /// The newest version of each id, by index, in day order (so that each day's accumulators
    /// are looked up once). The ids are left sorted.
    fn newest(&mut self) -> Vec<u32> {
        self.ids.sort_unstable();
        let ids = &self.ids;
        let mut newest: Vec<u32> = (0..ids.len())
            .filter(|&i| i + 1 == ids.len() || ids[i + 1] >> 32 != ids[i] >> 32)
            .map(|i| ids[i] as u32)
            .collect();
        newest.sort_unstable_by_key(|&i| self.days[i as usize]);
        newest
    }

    /// Writes the version at `i`: its hash, day, time and numbers, then its texts and tags.
    fn write(&self, i: usize, rules: usize, tables: usize, out: &mut impl Write) -> io::Result<()> {
        let at = self.at[i].and_utc();
        out.write_all(&(self.ids[i] >> 32).to_le_bytes())?;
        out.write_all(&self.days[i].date().num_days_from_ce().to_le_bytes())?;
        out.write_all(&at.timestamp().to_le_bytes())?;
        out.write_all(&at.timestamp_subsec_nanos().to_le_bytes())?;
        for x in &self.numbers[i * rules..(i + 1) * rules] {
            out.write_all(&x.to_le_bytes())?;
        }
        let texts: Vec<(usize, &String)> = (0..rules)
            .filter_map(|r| self.texts.get(&(i * rules + r)).map(|t| (r, t)))
            .collect();
        write_len(out, texts.len())?;
        for (rule, text) in texts {
            write_len(out, rule)?;
            write_text(out, text)?;
        }
        for set in &self.tags[i * tables..(i + 1) * tables] {
            write_len(out, set.len())?;
            for tag in set {
                write_text(out, tag)?;
            }
        }
        Ok(())
    }

    /// Reads one version [`Self::write`] wrote; false at the end of the input.
    fn read(&mut self, input: &mut impl BufRead, rules: usize, tables: usize) -> io::Result<bool> {
        if input.fill_buf()?.is_empty() {
            return Ok(false);
        }
        let hash = u128::from_le_bytes(read_array(input)?);
        let day = NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(read_array(input)?));
        let at = DateTime::from_timestamp(
            i64::from_le_bytes(read_array(input)?),
            u32::from_le_bytes(read_array(input)?),
        );
        let (Some(day), Some(at)) = (day, at) else {
            return Err(corrupt());
        };
        let index = self.len();
        self.ids.push(hash << 32 | index as u128);
        self.days.push(Day::new(day));
        self.at.push(at.naive_utc());
        for _ in 0..rules {
            self.numbers.push(f64::from_le_bytes(read_array(input)?));
        }
        for _ in 0..read_len(input)? {
            let rule = read_len(input)?;
            if rule >= rules {
                return Err(corrupt());
            }
            self.texts.insert(index * rules + rule, read_text(input)?);
        }
        for _ in 0..tables {
            let tags = (0..read_len(input)?)
                .map(|_| read_text(input))
                .collect::<io::Result<_>>()?;
            self.tags.push(tags);
        }
        Ok(true)
    }
}

fn corrupt() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a record version kept on disk is corrupt",
    )
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn write_len(out: &mut impl Write, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("a text over 4 GiB"))?;
    out.write_all(&n.to_le_bytes())
}

fn read_len(input: &mut impl Read) -> io::Result<usize> {
    Ok(u32::from_le_bytes(read_array(input)?) as usize)
}

fn write_text(out: &mut impl Write, text: &str) -> io::Result<()> {
    write_len(out, text.len())?;
    out.write_all(text.as_bytes())
}

fn read_text(input: &mut impl Read) -> io::Result<String> {
    let mut bytes = vec![0; read_len(input)?];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| corrupt())
}

/// The newest version of each id of a source read whole.
#[derive(Debug)]
pub(super) struct NewestById {
    /// Numbers per version.
    rules: usize,
    /// `[[tags]]` tables per version.
    tables: usize,
    /// Versions not yet on disk.
    memory: Versions,
    /// The parts on disk, once there are more than `in_memory` versions.
    parts: Option<Vec<BufWriter<File>>>,
    /// How many versions memory holds before they go to disk ([`IN_MEMORY`]).
    in_memory: usize,
    /// Where the parts go.
    dir: std::path::PathBuf,
}

impl NewestById {
    /// Kept versions will carry `rules` measures and `tables` tag sets.
    pub fn new(rules: usize, tables: usize) -> Self {
        Self {
            rules,
            tables,
            memory: Versions::default(),
            parts: None,
            in_memory: IN_MEMORY,
            dir: std::env::temp_dir(),
        }
    }

    /// Keeps one version: a failure is writing it to disk. An unusable measure was named and
    /// left out by the caller; here it is absent.
    pub fn keep(
        &mut self,
        id: &str,
        day: Day,
        at: NaiveDateTime,
        measures: impl Iterator<Item = Measure>,
        tags: Vec<BTreeSet<String>>,
    ) -> io::Result<()> {
        let memory = &mut self.memory;
        let index = memory.len();
        memory.tags.extend(tags);
        memory.ids.push(id_hash(id) << 32 | index as u128);
        memory.days.push(day);
        memory.at.push(at);
        for (rule, measure) in measures.enumerate() {
            memory.numbers.push(match measure {
                Measure::Number(x) => x,
                Measure::Absent | Measure::Bad(_) => f64::NAN,
                // Measures are finite, so an infinity is free to mean "left out by `where`"
                // without a map entry for every record a filter drops.
                Measure::Excluded => f64::NEG_INFINITY,
                Measure::Text(text) => {
                    memory.texts.insert(index * self.rules + rule, text);
                    f64::NAN
                }
            });
        }
        if self.memory.len() >= self.in_memory {
            self.spill()?;
        }
        Ok(())
    }

    /// Moves the versions in memory to their parts on disk.
    fn spill(&mut self) -> io::Result<()> {
        let parts = match &mut self.parts {
            Some(parts) => parts,
            None => self.parts.insert(
                (0..PARTS)
                    .map(|_| {
                        tempfile::tempfile_in(&self.dir)
                            .map(|f| BufWriter::with_capacity(1 << 16, f))
                    })
                    .collect::<io::Result<_>>()?,
            ),
        };
        for i in 0..self.memory.len() {
            let part = &mut parts[part_of(self.memory.ids[i])];
            self.memory.write(i, self.rules, self.tables, part)?;
        }
        self.memory.clear();
        Ok(())
    }

    /// Hands over the newest version of each id, a day at a time (a day comes once per part
    /// on disk); a failure is reading the versions back from disk.
    pub fn finish(mut self, mut take: impl FnMut(Day, &mut DayVersions<'_>)) -> io::Result<()> {
        let mut versions = std::mem::take(&mut self.memory);
        if self.parts.is_none() {
            self.hand_over(&mut versions, &mut take);
            return Ok(());
        }
        self.memory = versions;
        self.spill()?;
        // Its room is not needed again: each part is smaller.
        self.memory = Versions::default();
        let mut versions = Versions::default();
        for part in self.parts.take().into_iter().flatten() {
            let mut file = part.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.rewind()?;
            let mut file = BufReader::with_capacity(1 << 16, file);
            versions.clear();
            while versions.read(&mut file, self.rules, self.tables)? {}
            self.hand_over(&mut versions, &mut take);
        }
        Ok(())
    }

    /// Hands over the newest of `versions`, a day at a time.
    fn hand_over(
        &mut self,
        versions: &mut Versions,
        take: &mut impl FnMut(Day, &mut DayVersions<'_>),
    ) {
        let newest = versions.newest();
        let day = |i: u32| versions.days[i as usize];
        let groups: Vec<(Day, usize)> = newest
            .chunk_by(|&a, &b| day(a) == day(b))
            .map(|group| (day(group[0]), group.len()))
            .collect();
        let mut start = 0;
        for (day, len) in groups {
            let mut versions = DayVersions {
                versions: &mut *versions,
                members: &newest[start..start + len],
                rules: self.rules,
                tables: self.tables,
            };
            take(day, &mut versions);
            start += len;
        }
    }
}

/// The newest versions that fall on one day.
pub(super) struct DayVersions<'a> {
    versions: &'a mut Versions,
    members: &'a [u32],
    rules: usize,
    tables: usize,
}

impl DayVersions<'_> {
    /// Each version's time and its measure for rule `rule`.
    pub fn measures(&self, rule: usize) -> impl Iterator<Item = (NaiveDateTime, Measure)> + '_ {
        self.members.iter().map(move |&i| {
            let position = i as usize * self.rules + rule;
            let measure = match self.versions.numbers[position] {
                f64::NEG_INFINITY => Measure::Excluded,
                x if !x.is_nan() => Measure::Number(x),
                _ => self
                    .versions
                    .texts
                    .get(&position)
                    .map_or(Measure::Absent, |t| Measure::Text(t.clone())),
            };
            let i = i as usize;
            (self.versions.at[i], measure)
        })
    }

    /// The tags each version holds for `[[tags]]` table `table` (taken: asked once).
    pub fn take_tags(&mut self, table: usize) -> impl Iterator<Item = BTreeSet<String>> + '_ {
        let tables = self.tables;
        let tags = &mut self.versions.tags;
        self.members.iter().map(move |&i| {
            tags.get_mut(i as usize * tables + table)
                .map(std::mem::take)
                .unwrap_or_default()
        })
    }
}

/// Which part on disk a version goes to: the top bits of its id's hash.
fn part_of(id: u128) -> usize {
    (id >> (128 - PARTS.trailing_zeros())) as usize
}

/// A 96-bit hash of an id: the low 96 bits of its XXH3-128.
fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes()) & ((1u128 << 96) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(d: u32) -> Day {
        Day::new(NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
    }

    fn at(h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    /// What the newest versions say: by day, each version's time, measures and first tags,
    /// in a stable order (however often a day was handed over).
    type Said = Vec<(Day, Vec<(NaiveDateTime, Vec<Measure>, BTreeSet<String>)>)>;

    fn said(table: NewestById, rules: usize, tables: usize) -> Said {
        let mut out: Said = Vec::new();
        table
            .finish(|day, versions| {
                let measures: Vec<Vec<(NaiveDateTime, Measure)>> =
                    (0..rules).map(|r| versions.measures(r).collect()).collect();
                let tags: Vec<BTreeSet<String>> = if tables > 0 {
                    versions.take_tags(0).collect()
                } else {
                    vec![BTreeSet::new(); measures.first().map_or(0, Vec::len)]
                };
                let each = (0..tags.len()).map(|v| {
                    let at = measures.first().map_or(at(0), |m| m[v].0);
                    let ms = measures.iter().map(|m| m[v].1.clone()).collect();
                    (at, ms, tags[v].clone())
                });
                match out.iter_mut().find(|(d, _)| *d == day) {
                    Some((_, all)) => all.extend(each),
                    None => out.push((day, each.collect())),
                }
            })
            .unwrap();
        out.sort_by_key(|(d, _)| *d);
        for (_, each) in &mut out {
            each.sort_by_key(|v| format!("{v:?}"));
        }
        out
    }

    #[test]
    fn the_later_version_of_an_id_wins_with_all_its_measures() {
        let mut table = NewestById::new(2, 0);
        let both = |a, b| [a, b].into_iter();
        table
            .keep(
                "a",
                day(1),
                at(1),
                both(Measure::Number(1.0), Measure::Text("x".into())),
                vec![],
            )
            .unwrap();
        table
            .keep(
                "b",
                day(2),
                at(2),
                both(Measure::Absent, Measure::Number(5.0)),
                vec![],
            )
            .unwrap();
        table
            .keep(
                "a",
                day(3),
                at(3),
                both(Measure::Number(7.0), Measure::Absent),
                vec![],
            )
            .unwrap();
        let none = BTreeSet::new;
        assert_eq!(
            said(table, 2, 0),
            vec![
                (
                    day(2),
                    vec![(at(2), vec![Measure::Absent, Measure::Number(5.0)], none())]
                ),
                // The old text does not leak into the new version.
                (
                    day(3),
                    vec![(at(3), vec![Measure::Number(7.0), Measure::Absent], none())]
                ),
            ]
        );
    }

    #[test]
    fn filtered_records_and_tags_keep_to_their_version() {
        let tags = |t: &[&str]| vec![t.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()];
        let mut table = NewestById::new(1, 1);
        let one = |m| [m].into_iter();
        table
            .keep("a", day(20), at(1), one(Measure::Excluded), tags(&["gym"]))
            .unwrap();
        table
            .keep("b", day(20), at(2), one(Measure::Excluded), tags(&[]))
            .unwrap();
        table
            .keep(
                "a",
                day(20),
                at(3),
                one(Measure::Number(3.0)),
                tags(&["work"]),
            )
            .unwrap();
        assert_eq!(
            said(table, 1, 1),
            vec![(
                day(20),
                vec![
                    (at(2), vec![Measure::Excluded], BTreeSet::new()),
                    (at(3), vec![Measure::Number(3.0)], tags(&["work"]).remove(0)),
                ]
            )]
        );
    }

    #[test]
    fn id_hashes_differ_for_near_ids() {
        let hashes: std::collections::HashSet<u128> =
            (0..10_000).map(|i| id_hash(&format!("r{i}"))).collect();
        assert_eq!(hashes.len(), 10_000);
    }

    #[test]
    fn a_temporary_directory_that_fails_is_an_error_not_a_loss() {
        let mut table = NewestById::new(1, 0);
        table.in_memory = 2;
        table.dir = "/nonexistent/exist-agent-test".into();
        table
            .keep("a", day(1), at(1), [Measure::Absent].into_iter(), vec![])
            .unwrap();
        let full = table.keep("b", day(1), at(1), [Measure::Absent].into_iter(), vec![]);
        assert!(
            full.is_err(),
            "the versions could not be kept: said, not dropped"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Versions that go to disk give the same newest versions as versions kept in memory,
        /// text, tags and all.
        #[test]
        fn versions_on_disk_say_what_versions_in_memory_say(
            versions in prop::collection::vec((0u8..40, 1u32..29, 0u32..24, prop::option::of(-1e6f64..1e6), any::<bool>()), 0..300),
            limit in 1usize..50,
        ) {
            let fill = |table: &mut NewestById| {
                for (id, d, h, n, text) in &versions {
                    let measure = match (n, text) {
                        (Some(x), false) => Measure::Number(*x),
                        (Some(x), true) => Measure::Text(format!("{x}")),
                        (None, false) => Measure::Absent,
                        (None, true) => Measure::Excluded,
                    };
                    let tags = vec![[format!("t{id}")].into_iter().collect()];
                    table
                        .keep(&format!("r{id}"), day(*d), at(*h), [measure, Measure::Number(f64::from(*d))].into_iter(), tags)
                        .unwrap();
                }
            };
            let mut memory = NewestById::new(2, 1);
            fill(&mut memory);
            let mut disk = NewestById::new(2, 1);
            disk.in_memory = limit;
            fill(&mut disk);
            prop_assert_eq!(said(disk, 2, 1), said(memory, 2, 1));
        }
    }
}
