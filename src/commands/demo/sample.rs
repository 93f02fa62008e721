//! The demo's built-in sample data: a week of walks (served by the health-data sandbox) and a
//! week of coffees (written to a CSV log), with the changes that arrive before the second sync.
//!
//! Rows name their day relative to today in the user's timezone, so the demo always shows the
//! week that just ended, whatever the date it runs on.

use chrono::{
    DateTime, Days, NaiveDate, NaiveTime, Offset, SecondsFormat, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// `id,day,time,steps,sync` rows; see the file's comments.
const WALKS: &str = include_str!("steps.csv");
/// `day,time,drink,sync` rows; see the file's comments.
const COFFEES: &str = include_str!("coffee.csv");

/// How long after a walk started the tracker uploaded it: the past week's records carry past
/// change times, so the second sync's incremental pull sees only what changed since the first.
const UPLOAD_DELAY: TimeDelta = TimeDelta::hours(1);

/// The header of the coffee log the demo writes.
pub(super) const COFFEE_LOG_HEADER: &str = "date,drink";

/// Which sync a row is there for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SyncRound {
    /// At the source before the first sync.
    First,
    /// Arrives (or changes) between the first and the second sync.
    Second,
}

/// One walk, as the health-data API reports it.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    /// The record's id; a second-round walk with a first-round id is an edit of that record.
    pub id: String,
    /// Days after today (negative: in the past).
    pub day: i64,
    /// Local wall-clock start time.
    pub time: NaiveTime,
    /// Steps walked.
    pub steps: i64,
    /// When it reaches the source.
    pub round: SyncRound,
}

/// One cup, as a line of the coffee log.
#[derive(Debug, Clone)]
pub(super) struct Coffee {
    /// Days after today (negative: in the past).
    pub day: i64,
    /// Local wall-clock time.
    pub time: NaiveTime,
    /// What was drunk (not aggregated; it makes the log look like one).
    pub drink: String,
    /// When it is written to the log.
    pub round: SyncRound,
}

/// All of the sample data.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    /// Walks, first round first.
    pub walks: Vec<Walk>,
    /// Coffees, in the order they are logged.
    pub coffees: Vec<Coffee>,
}

impl Sample {
    /// The data compiled into the binary.
    ///
    /// # Panics
    /// If the embedded files are malformed: they are part of the source code.
    pub fn embedded() -> Self {
        Self {
            walks: rows(WALKS).map(walk).collect(),
            coffees: rows(COFFEES).map(coffee).collect(),
        }
    }

    /// The walk with `id` in the first round, if there is one (what a second-round row edits).
    pub fn first_walk(&self, id: &str) -> Option<&Walk> {
        self.walks
            .iter()
            .find(|w| w.round == SyncRound::First && w.id == id)
    }
}

/// Puts sample rows on real dates and instants: day 0 is `today` in `tz`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Calendar {
    /// The user's timezone.
    pub tz: Tz,
    /// Today there.
    pub today: NaiveDate,
}

impl Calendar {
    /// A calendar for today in `tz`.
    pub fn today_in(tz: Tz) -> Self {
        Self {
            tz,
            today: Utc::now().with_timezone(&tz).date_naive(),
        }
    }

    /// The date `day` days after today.
    pub fn date(&self, day: i64) -> NaiveDate {
        let shift = Days::new(day.unsigned_abs());
        let date = if day < 0 {
            self.today.checked_sub_days(shift)
        } else {
            self.today.checked_add_days(shift)
        };
        date.expect("sample days are a few days from today")
    }

    /// The instant of local `time` on `day`.
    pub fn instant(&self, day: i64, time: NaiveTime) -> DateTime<Tz> {
        self.tz
            .from_local_datetime(&self.date(day).and_time(time))
            .earliest()
            .expect("sample times avoid the hours daylight-saving changes skip")
    }
}

impl Walk {
    /// The record as the API serves it: a UTC start time with the local offset beside it, as
    /// health-data APIs write them (the agent must place it on the user's day, not UTC's).
    /// A first-round walk was uploaded an hour after it started; a second-round one changes
    /// now, and the source stamps it so.
    pub fn record(&self, calendar: &Calendar) -> Value {
        let start = self.start(calendar);
        let mut record = json!({
            "id": self.id,
            "startTime": utc_text(start.to_utc()),
            "tzOffset": start.offset().fix().to_string(),
            "steps": self.steps,
        });
        if self.round == SyncRound::First {
            record["updatedAt"] = utc_text(start.to_utc() + UPLOAD_DELAY).into();
        }
        record
    }

    /// When the walk started.
    pub fn start(&self, calendar: &Calendar) -> DateTime<Tz> {
        calendar.instant(self.day, self.time)
    }

    /// Whether the walk's UTC date differs from its local one (a late-evening walk west of UTC).
    pub fn crosses_utc_midnight(&self, calendar: &Calendar) -> bool {
        let start = self.start(calendar);
        start.date_naive() != start.to_utc().date_naive()
    }
}

impl Coffee {
    /// The line of the coffee log: a local time without offset (the user's own) and the drink.
    pub fn log_line(&self, calendar: &Calendar) -> String {
        let at = calendar.date(self.day).and_time(self.time);
        format!("{},{}", at.format("%Y-%m-%dT%H:%M:%S"), self.drink)
    }
}

fn utc_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The data rows of an embedded CSV file: comments, blank lines and the header skipped.
fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split(',').map(str::trim).collect())
}

fn walk(cells: Vec<&str>) -> Walk {
    let [id, day, time, steps, sync] = cells[..] else {
        panic!("steps.csv: expected id,day,time,steps,sync, got {cells:?}");
    };
    Walk {
        id: id.to_owned(),
        day: number(day),
        time: clock(time),
        steps: number(steps),
        round: round(sync),
    }
}

fn coffee(cells: Vec<&str>) -> Coffee {
    let [day, time, drink, sync] = cells[..] else {
        panic!("coffee.csv: expected day,time,drink,sync, got {cells:?}");
    };
    Coffee {
        day: number(day),
        time: clock(time),
        drink: drink.to_owned(),
        round: round(sync),
    }
}

fn number(cell: &str) -> i64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("sample data: {cell:?} is not a number"))
}

fn clock(cell: &str) -> NaiveTime {
    NaiveTime::parse_from_str(cell, "%H:%M")
        .unwrap_or_else(|_| panic!("sample data: {cell:?} is not HH:MM"))
}

fn round(cell: &str) -> SyncRound {
    match cell {
        "1" => SyncRound::First,
        "2" => SyncRound::Second,
        _ => panic!("sample data: sync is 1 or 2, not {cell:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sample_makes_the_demos_points() {
        let sample = Sample::embedded();
        let calendar = Calendar::today_in(chrono_tz::America::New_York);
        let mut days: Vec<i64> = sample.walks.iter().map(|w| w.day).collect();
        days.extend(sample.coffees.iter().map(|c| c.day));
        days.sort_unstable();
        days.dedup();
        assert_eq!(days, (-7..=-1).collect::<Vec<_>>(), "the week before today");
        assert!(
            sample
                .walks
                .iter()
                .any(|w| w.round == SyncRound::First && w.crosses_utc_midnight(&calendar)),
            "a walk whose UTC day is not the user's"
        );
        let second: Vec<&Walk> = sample
            .walks
            .iter()
            .filter(|w| w.round == SyncRound::Second)
            .collect();
        assert!(second.iter().any(|w| sample.first_walk(&w.id).is_some()));
        assert!(second.iter().any(|w| sample.first_walk(&w.id).is_none()));
        assert!(sample.coffees.iter().any(|c| c.round == SyncRound::Second));
    }

    #[test]
    fn records_carry_utc_times_and_the_local_offset() {
        let calendar = Calendar {
            tz: chrono_tz::America::New_York,
            today: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        };
        let walk = Walk {
            id: "w".into(),
            day: -1,
            time: NaiveTime::from_hms_opt(22, 40, 0).unwrap(),
            steps: 10,
            round: SyncRound::First,
        };
        assert_eq!(
            walk.record(&calendar),
            json!({
                "id": "w",
                "startTime": "2026-01-15T03:40:00.000Z",
                "tzOffset": "-05:00",
                "steps": 10,
                "updatedAt": "2026-01-15T04:40:00.000Z",
            })
        );
        assert!(walk.crosses_utc_midnight(&calendar));
    }
}
