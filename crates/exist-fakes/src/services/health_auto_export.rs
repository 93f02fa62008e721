//! What the iOS app Health Auto Export posts from Apple Health to a REST API automation: a typed
//! builder for that JSON, and fixtures. Not a server: tests post the JSON to the agent's inbox.
//!
//! Written from:
//! - the app's JSON format page, <https://github.com/Lybron/health-auto-export/wiki/API-Export---JSON-Format>:
//!   everything sits in a `data` object holding `metrics` (and `workouts`, and in newer versions
//!   more arrays); each metric is `{name, units, data}`, and most metrics' data points are
//!   `{qty, date}` with `date` formatted `yyyy-MM-dd HH:mm:ss Z` (e.g. `2026-11-18 07:30:00
//!   +0100`); blood pressure, heart rate and sleep have their own point shapes;
//! - its REST API automation guide, <https://help.healthyapps.dev/en/health-auto-export/automations/rest-api>,
//!   and <https://github.com/Lybron/health-auto-export/wiki/Configuration-&-Deep-Linking>: an
//!   HTTP POST of that JSON with `Content-Type: application/json` and any headers the user adds
//!   (e.g. `Authorization: Bearer ...`), sent while the phone is unlocked, so batches overlap and
//!   repeat (the "Default" period re-sends the whole previous day);
//! - the metric names receivers in public code match on (`step_count`, `active_energy`,
//!   `weight_body_mass`, ...), since the format page names them only by their Health labels.
//!
//! Data points carry the phone's UTC offset at the time, so a trip shows two offsets in one
//! export; the agent must place each point by its own offset. Points may include a `source`
//! (the device or app) when the export is not aggregated.
//!
//! # Reading it with exist-agent (draft)
//!
//! ```toml
//! [agent]
//! listen = "127.0.0.1:8765"
//!
//! [[source]]
//! name = "apple-health"
//! kind = "inbox"
//! format = "health-auto-export"     # each data point becomes {metric, units, date, qty, ...}
//! token_env = "INBOX_TOKEN"         # the app sends Authorization: Bearer <token> (a header the
//!                                   # user adds to the automation)
//! date_field = "date"               # "yyyy-MM-dd HH:mm:ss Z": its own offset decides the day
//! id_field = ""                     # no ids: a re-sent batch must replace, not add, so the
//!                                   # inbox needs a key such as (metric, date, source) or
//!                                   # "replace the days a batch covers"
//!
//! [[attribute]]
//! template = "steps"
//! source = "apple-health"
//! where = { field = "metric", equals = "step_count" }
//! field = "qty"
//! aggregate = "sum"
//!
//! [[attribute]]
//! template = "active_energy"
//! source = "apple-health"
//! where = { field = "metric", equals = "active_energy" }   # units "kcal" (or "kJ": multiply = 0.239006)
//! field = "qty"
//! aggregate = "sum"
//!
//! [[attribute]]
//! template = "weight"
//! source = "apple-health"
//! where = { field = "metric", equals = "weight_body_mass" }   # "kg", or "lb": multiply = 0.45359237
//! field = "qty"
//! aggregate = "last"
//! ```
//!
//! With [`fixtures::travel_week`] (New York on 16-17 November 2026, Berlin from the 18th) the
//! day values are, for a user in `Europe/Berlin`:
//! steps 16th..19th = 7000, 4500, 6200, 11000; active energy = 350.5, 280.25, 460.0, 420.0;
//! weight 16th = 80.2, 18th = 79.9, 19th = 79.7 (none on the 17th);
//! and for a user in `America/New_York`:
//! steps = 7500, 4200, 6000, 11000; active energy = 350.5, 330.25, 410.0, 420.0;
//! weight = 80.2, 80.0, 79.9, 79.7.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Map, Value};

/// Metric names as the app sends them.
pub mod metric {
    pub const STEP_COUNT: &str = "step_count";
    pub const ACTIVE_ENERGY: &str = "active_energy";
    pub const BASAL_ENERGY_BURNED: &str = "basal_energy_burned";
    pub const WEIGHT_BODY_MASS: &str = "weight_body_mass";
    pub const BODY_FAT_PERCENTAGE: &str = "body_fat_percentage";
    pub const BODY_MASS_INDEX: &str = "body_mass_index";
    pub const RESTING_HEART_RATE: &str = "resting_heart_rate";
    pub const HEART_RATE_VARIABILITY: &str = "heart_rate_variability";
    pub const WALKING_RUNNING_DISTANCE: &str = "walking_running_distance";
    pub const APPLE_EXERCISE_TIME: &str = "apple_exercise_time";
    pub const FLIGHTS_CLIMBED: &str = "flights_climbed";
    pub const MINDFUL_MINUTES: &str = "mindful_minutes";
    pub const DIETARY_WATER: &str = "dietary_water";
}

/// The app's date format: `yyyy-MM-dd HH:mm:ss Z`.
pub const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S %z";

/// Formats a time the way the app does (`2026-11-18 07:30:00 +0100`).
pub fn format_date(date: DateTime<FixedOffset>) -> String {
    date.format(DATE_FORMAT).to_string()
}

/// One `{qty, date}` data point, with the optional `source` and any extra fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub date: DateTime<FixedOffset>,
    pub qty: f64,
    pub source: Option<String>,
    pub extra: Map<String, Value>,
}

/// One metric: a name, its units and its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub units: String,
    pub data: Vec<Point>,
}

impl Metric {
    /// An empty metric (`units` as the app writes them: `count`, `kcal`, `kJ`, `kg`, `lb`, `%`).
    pub fn new(name: &str, units: &str) -> Self {
        Self {
            name: name.to_owned(),
            units: units.to_owned(),
            data: Vec::new(),
        }
    }

    /// Adds a point.
    pub fn point(mut self, date: DateTime<FixedOffset>, qty: f64) -> Self {
        self.data.push(Point {
            date,
            qty,
            source: None,
            extra: Map::new(),
        });
        self
    }

    /// Adds a point from a device or app (`source`, e.g. `Apple Watch`).
    pub fn point_from(mut self, date: DateTime<FixedOffset>, qty: f64, source: &str) -> Self {
        self.data.push(Point {
            date,
            qty,
            source: Some(source.to_owned()),
            extra: Map::new(),
        });
        self
    }

    fn to_json(&self) -> Value {
        let data: Vec<Value> = self
            .data
            .iter()
            .map(|p| {
                let mut point = Map::new();
                point.insert("qty".to_owned(), json!(p.qty));
                point.insert("date".to_owned(), json!(format_date(p.date)));
                if let Some(source) = &p.source {
                    point.insert("source".to_owned(), json!(source));
                }
                for (k, v) in &p.extra {
                    point.insert(k.clone(), v.clone());
                }
                Value::Object(point)
            })
            .collect();
        json!({ "name": self.name, "units": self.units, "data": data })
    }
}

/// A whole export, as one POST body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Export {
    pub metrics: Vec<Metric>,
    /// Workouts, passed through as given (their shape is versioned by the app).
    pub workouts: Vec<Value>,
}

impl Export {
    /// An export with no metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// The JSON body the app posts: `{"data": {"metrics": [...], "workouts": [...]}}`.
    pub fn to_json(&self) -> Value {
        json!({
            "data": {
                "metrics": self.metrics.iter().map(Metric::to_json).collect::<Vec<_>>(),
                "workouts": self.workouts,
            }
        })
    }

    /// The body as a string.
    pub fn to_body(&self) -> String {
        self.to_json().to_string()
    }
}

/// Ready-made exports.
pub mod fixtures {
    use super::{metric, Export, Metric};
    use chrono::{DateTime, FixedOffset};

    fn at(s: &str) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_str(s, super::DATE_FORMAT).ok()
    }

    fn points(metric: Metric, points: &[(&str, f64)]) -> Metric {
        points
            .iter()
            .filter_map(|(date, qty)| at(date).map(|d| (d, *qty)))
            .fold(metric, |m, (d, q)| m.point_from(d, q, "Apple Watch"))
    }

    /// Steps, active energy and weight from 16 to 19 November 2026: in New York (-0500) until
    /// the evening of the 17th, in Berlin (+0100) from the 18th. The day values per timezone are
    /// in the module documentation.
    pub fn travel_week() -> Export {
        let steps = points(
            Metric::new(metric::STEP_COUNT, "count"),
            &[
                ("2026-11-16 08:00:00 -0500", 3000.0),
                ("2026-11-16 17:00:00 -0500", 4000.0),
                ("2026-11-16 22:30:00 -0500", 500.0),
                ("2026-11-17 09:00:00 -0500", 2500.0),
                ("2026-11-17 17:00:00 -0500", 1500.0),
                ("2026-11-18 00:30:00 +0100", 200.0),
                ("2026-11-18 10:00:00 +0100", 6000.0),
                ("2026-11-19 09:00:00 +0100", 7000.0),
                ("2026-11-19 20:00:00 +0100", 4000.0),
            ],
        );
        let energy = points(
            Metric::new(metric::ACTIVE_ENERGY, "kcal"),
            &[
                ("2026-11-16 12:00:00 -0500", 350.5),
                ("2026-11-17 12:00:00 -0500", 280.25),
                ("2026-11-18 00:15:00 +0100", 50.0),
                ("2026-11-18 12:00:00 +0100", 410.0),
                ("2026-11-19 12:00:00 +0100", 300.0),
                ("2026-11-19 23:30:00 +0100", 120.0),
            ],
        );
        let weight = points(
            Metric::new(metric::WEIGHT_BODY_MASS, "kg"),
            &[
                ("2026-11-16 07:00:00 -0500", 80.2),
                ("2026-11-17 23:00:00 -0500", 80.0),
                ("2026-11-18 07:30:00 +0100", 79.9),
                ("2026-11-19 07:30:00 +0100", 79.7),
            ],
        );
        Export::new().metric(steps).metric(energy).metric(weight)
    }

    /// The same weight series in pounds (`lb`), as a phone set to US units sends it.
    pub fn weight_in_pounds() -> Export {
        Export::new().metric(points(
            Metric::new(metric::WEIGHT_BODY_MASS, "lb"),
            &[
                ("2026-11-16 07:00:00 -0500", 176.8),
                ("2026-11-18 07:30:00 +0100", 176.1),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_with_a_numeric_offset() {
        let date = DateTime::parse_from_rfc3339("2026-11-18T07:30:00+01:00").unwrap();
        assert_eq!(format_date(date), "2026-11-18 07:30:00 +0100");
    }

    #[test]
    fn the_body_nests_metrics_under_data() {
        let body = fixtures::travel_week().to_json();
        let metrics = body["data"]["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0]["name"], "step_count");
        assert_eq!(metrics[0]["units"], "count");
        assert_eq!(metrics[0]["data"][0]["date"], "2026-11-16 08:00:00 -0500");
        assert_eq!(metrics[0]["data"][0]["qty"], 3000.0);
        assert_eq!(metrics[0]["data"][0]["source"], "Apple Watch");
        assert!(body["data"]["workouts"].as_array().unwrap().is_empty());
    }
}
