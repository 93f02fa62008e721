//! The vocabulary of Exist's API as types: attribute names, days, values, value types, groups
//! and batches. Each is parsed once at the edge so the rest of the code can trust it.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Exist accepts at most this many objects in one write call.
pub const MAX_BATCH: usize = 35;

/// An attribute's machine name, as Exist spells it: lowercase ASCII letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeName(String);

/// Why a string is not an [`AttributeName`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not an Exist attribute name (lowercase letters, digits and `_`, 1 to 100 characters)"
)]
pub struct InvalidAttributeName(pub String);

impl AttributeName {
    /// Parses a name, refusing anything Exist could not have produced.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidAttributeName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 100
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(name))
        } else {
            Err(InvalidAttributeName(name))
        }
    }

    /// The slug Exist derives from a custom attribute's label ("Espressos drunk" -> "espressos_drunk").
    /// Exist does not guarantee it, so the name is always read back from Exist's reply.
    pub fn slug_of(label: &str) -> Result<Self, InvalidAttributeName> {
        let mut slug = String::with_capacity(label.len());
        for c in label.trim().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('_') && !slug.is_empty() {
                slug.push('_');
            }
        }
        Self::new(slug.trim_end_matches('_').to_owned())
    }

    /// The name as Exist spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AttributeName {
    type Err = InvalidAttributeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for AttributeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AttributeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// One of the user's days (in the user's timezone), written `YYYY-MM-DD` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(NaiveDate);

impl Day {
    /// Wraps a calendar date.
    pub fn new(date: NaiveDate) -> Self {
        Self(date)
    }

    /// The calendar date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// The day before (the first day chrono knows has none: itself).
    pub fn pred(self) -> Self {
        Self(self.0.pred_opt().unwrap_or(self.0))
    }

    /// The day after (the last day chrono knows has none: itself).
    pub fn succ(self) -> Self {
        Self(self.0.succ_opt().unwrap_or(self.0))
    }

    /// Every day from `self` to `last`, both included.
    pub fn through(self, last: Day) -> impl Iterator<Item = Day> {
        self.0
            .iter_days()
            .take_while(move |d| *d <= last.0)
            .map(Day)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// Why a string is not a [`Day`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a date; write it as YYYY-MM-DD, e.g. 2026-01-31")]
pub struct InvalidDay(pub String);

impl FromStr for Day {
    type Err = InvalidDay;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Day)
            .map_err(|_| InvalidDay(s.to_owned()))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The value types Exist knows, with their wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// 0: a whole number.
    Integer,
    /// 1: a decimal number.
    Float,
    /// 2: text of at most [`MAX_STRING_CHARS`] characters.
    String,
    /// 3: minutes, whole.
    Duration,
    /// 4: minutes from midnight.
    TimeOfDay,
    /// 5: a fraction from 0.0 to 1.0.
    Percentage,
    /// 6: minutes from midday (templates only, e.g. `sleep_start`).
    TimeOfDayFromMidday,
    /// 7: 0 or 1 (custom tags).
    Boolean,
    /// 8: a whole number from 1 to 9 (e.g. `mood`).
    Scale,
}

/// The longest string value Exist stores.
pub const MAX_STRING_CHARS: usize = 1000;

impl ValueType {
    /// Every value type, in wire-code order.
    pub const ALL: [ValueType; 9] = [
        Self::Integer,
        Self::Float,
        Self::String,
        Self::Duration,
        Self::TimeOfDay,
        Self::Percentage,
        Self::TimeOfDayFromMidday,
        Self::Boolean,
        Self::Scale,
    ];

    /// Exist's numeric code for this type.
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|t| *t == self).expect("listed") as u8
    }

    /// The type with Exist's numeric code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The name used in configuration files.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Integer => "integer",
            Self::Float => "float",
            Self::String => "string",
            Self::Duration => "duration",
            Self::TimeOfDay => "time_of_day",
            Self::Percentage => "percentage",
            Self::TimeOfDayFromMidday => "time_of_day_midday",
            Self::Boolean => "boolean",
            Self::Scale => "scale",
        }
    }

    /// The type a configuration file names, if any.
    pub fn from_config_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.config_name() == name)
    }

    /// Whether Exist's `increment` takes this type (it refuses text, scales and times of day).
    pub fn is_incrementable(self) -> bool {
        !matches!(
            self,
            Self::String | Self::Scale | Self::TimeOfDay | Self::TimeOfDayFromMidday
        )
    }

    /// Whether values of this type are whole numbers on the wire.
    pub fn is_whole(self) -> bool {
        !matches!(self, Self::Float | Self::Percentage | Self::String)
    }

    /// Checks a value against this type the way a careful client must: Exist validates only
    /// broadly by type, so ranges are ours to check.
    pub fn check(self, value: &Value) -> Result<(), ValueError> {
        use Value::{Float, Int, Text};
        match (self, value) {
            (Self::String, Text(s)) if s.chars().count() <= MAX_STRING_CHARS => Ok(()),
            (Self::String, Text(_)) => Err(ValueError::TooLong),
            (Self::String, _) => Err(ValueError::WrongType(self)),
            (_, Text(_)) => Err(ValueError::WrongType(self)),
            (Self::Float, Float(f)) if f.is_finite() => Ok(()),
            (Self::Float, Int(_)) => Ok(()),
            (Self::Percentage, Float(f)) if (0.0..=1.0).contains(f) => Ok(()),
            (Self::Percentage, Int(i)) if (0..=1).contains(i) => Ok(()),
            (Self::Float | Self::Percentage, _) => Err(ValueError::OutOfRange(self)),
            (_, Float(_)) => Err(ValueError::WrongType(self)),
            (Self::Scale, Int(i)) if (1..=9).contains(i) => Ok(()),
            (Self::Boolean, Int(i)) if (0..=1).contains(i) => Ok(()),
            (Self::TimeOfDay | Self::TimeOfDayFromMidday, Int(i)) if (0..1440).contains(i) => {
                Ok(())
            }
            (Self::Integer, Int(_)) => Ok(()),
            (Self::Duration, Int(i)) if *i >= 0 => Ok(()),
            (_, Int(_)) => Err(ValueError::OutOfRange(self)),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

impl Serialize for ValueType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for ValueType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u8::deserialize(d)?;
        Self::from_code(code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown value type code {code}")))
    }
}

/// Why a value does not fit its attribute's type.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ValueError {
    /// A number where text is expected, or the reverse, or a fraction for a whole type.
    #[error("wrong kind of value for a {0} attribute")]
    WrongType(ValueType),
    /// Outside the type's range (scale 1-9, percentage 0-1, boolean 0/1, time 0-1439).
    #[error("out of range for a {0} attribute")]
    OutOfRange(ValueType),
    /// Longer than Exist stores.
    #[error("longer than {MAX_STRING_CHARS} characters")]
    TooLong,
}

/// One day's value of an attribute, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A whole number (integer, duration, times of day, boolean, scale).
    Int(i64),
    /// A decimal number (float, percentage).
    Float(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The attribute groups Exist knows; each has a write scope `{group}_write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    #[allow(missing_docs)]
    Activity,
    #[allow(missing_docs)]
    Productivity,
    #[allow(missing_docs)]
    Mood,
    #[allow(missing_docs)]
    Sleep,
    #[allow(missing_docs)]
    Workouts,
    #[allow(missing_docs)]
    Events,
    #[allow(missing_docs)]
    Finance,
    #[allow(missing_docs)]
    Food,
    #[allow(missing_docs)]
    Health,
    #[allow(missing_docs)]
    Location,
    #[allow(missing_docs)]
    Media,
    #[allow(missing_docs)]
    Social,
    #[allow(missing_docs)]
    Weather,
    #[allow(missing_docs)]
    Symptoms,
    #[allow(missing_docs)]
    Medication,
    #[allow(missing_docs)]
    Custom,
    /// Filled by Exist from Twitter itself: no scope lets an app write it.
    Twitter,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 17] = [
        Self::Activity,
        Self::Productivity,
        Self::Mood,
        Self::Sleep,
        Self::Workouts,
        Self::Events,
        Self::Finance,
        Self::Food,
        Self::Health,
        Self::Location,
        Self::Media,
        Self::Social,
        Self::Weather,
        Self::Symptoms,
        Self::Medication,
        Self::Custom,
        Self::Twitter,
    ];

    /// The group's name as Exist spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activity => "activity",
            Self::Productivity => "productivity",
            Self::Mood => "mood",
            Self::Sleep => "sleep",
            Self::Workouts => "workouts",
            Self::Events => "events",
            Self::Finance => "finance",
            Self::Food => "food",
            Self::Health => "health",
            Self::Location => "location",
            Self::Media => "media",
            Self::Social => "social",
            Self::Weather => "weather",
            Self::Symptoms => "symptoms",
            Self::Medication => "medication",
            Self::Custom => "custom",
            Self::Twitter => "twitter",
        }
    }

    /// The group Exist calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }

    /// Whether an app may write this group at all (Exist fills `twitter` itself).
    pub fn is_writable(self) -> bool {
        self != Self::Twitter
    }

    /// The OAuth scope that lets a client read this group's attributes and values.
    pub fn read_scope(self) -> String {
        format!("{}_read", self.as_str())
    }

    /// The OAuth scope that lets a client own and write this group's attributes.
    pub fn write_scope(self) -> String {
        format!("{}_write", self.as_str())
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Group {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown group `{s}`")))
    }
}

/// The scope for manually tracked attributes, which Exist lists beside the group scopes.
pub const MANUAL_WRITE_SCOPE: &str = "manual_write";

/// A list of at most [`MAX_BATCH`] items: the only thing a write call accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T>(Vec<T>);

impl<T> Batch<T> {
    /// Splits `items` into the fewest batches, `ceil(n / 35)`, keeping their order; none is empty.
    pub fn split(items: Vec<T>) -> Vec<Batch<T>> {
        let mut batches = Vec::with_capacity(items.len().div_ceil(MAX_BATCH));
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            batches.push(Batch(items.by_ref().take(MAX_BATCH).collect()));
        }
        batches
    }

    /// The items, in order.
    pub fn items(&self) -> &[T] {
        &self.0
    }

    /// Takes the items back.
    pub fn into_items(self) -> Vec<T> {
        self.0
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a batch made by [`Batch::split`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for Batch<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_are_checked() {
        assert!(AttributeName::new("steps").is_ok());
        assert!(AttributeName::new("sleep_start2").is_ok());
        assert!(AttributeName::new("").is_err());
        assert!(AttributeName::new("Steps").is_err());
        assert!(AttributeName::new("a b").is_err());
    }

    #[test]
    fn slugs_follow_labels() {
        assert_eq!(
            AttributeName::slug_of("Espressos").unwrap().as_str(),
            "espressos"
        );
        assert_eq!(
            AttributeName::slug_of("  Cups of Tea!  ").unwrap().as_str(),
            "cups_of_tea"
        );
        assert!(AttributeName::slug_of("!!!").is_err());
    }

    #[test]
    fn days_parse_and_print() {
        let d: Day = "2026-02-28".parse().unwrap();
        assert_eq!(d.succ().to_string(), "2026-03-01");
        assert_eq!(d.pred().to_string(), "2026-02-27");
        assert!("2026-02-30".parse::<Day>().is_err());
        assert_eq!(d.through(d.succ().succ()).count(), 3);
    }

    #[test]
    fn value_types_round_trip_codes_and_names() {
        for t in ValueType::ALL {
            assert_eq!(ValueType::from_code(t.code()), Some(t));
            assert_eq!(ValueType::from_config_name(t.config_name()), Some(t));
        }
        assert_eq!(ValueType::Scale.code(), 8);
        assert_eq!(ValueType::from_code(9), None);
    }

    #[test]
    fn values_are_range_checked() {
        use Value::*;
        assert!(ValueType::Scale.check(&Int(9)).is_ok());
        assert!(ValueType::Scale.check(&Int(10)).is_err());
        assert!(ValueType::Scale.check(&Int(0)).is_err());
        assert!(ValueType::Percentage.check(&Float(0.5)).is_ok());
        assert!(ValueType::Percentage.check(&Float(1.5)).is_err());
        assert!(ValueType::Integer.check(&Float(1.5)).is_err());
        assert!(ValueType::Boolean.check(&Int(2)).is_err());
        assert!(ValueType::TimeOfDay.check(&Int(1440)).is_err());
        assert!(ValueType::String.check(&Text("x".repeat(1001))).is_err());
        assert!(ValueType::String.check(&Int(1)).is_err());
        assert!(ValueType::Float.check(&Float(f64::NAN)).is_err());
    }

    #[test]
    fn batches_never_exceed_35_and_keep_everything() {
        for n in [0usize, 1, 34, 35, 36, 70, 71, 100] {
            let batches = Batch::split((0..n).collect());
            assert_eq!(batches.len(), n.div_ceil(MAX_BATCH));
            assert!(batches
                .iter()
                .all(|b| !b.is_empty() && b.len() <= MAX_BATCH));
            let flat: Vec<usize> = batches.into_iter().flat_map(Batch::into_items).collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>());
        }
    }
}
