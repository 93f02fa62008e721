//! What an attribute does to a record before its day is aggregated: pure functions over typed
//! values, parsed once from the configuration.
//!
//! In order: `where` decides whether a record counts at all; then the field's value is read,
//! `map`ped (text or number to a number), `scale`d linearly (rounded for whole-number types) and
//! `multiply`d (a unit conversion). A value the transform cannot honestly turn into a number (not
//! in the map, outside the scale's `from` range, not a number) is a [`Skip`]: the record is left
//! out of its day and named, never turned into a guess.
//!
//! Tags ([`tag_values`]) read a field as a list of values (`"work | gym"`, or a JSON array),
//! each trimmed and in lower case, since Exist keeps its tags in lower case.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value as Json;

use crate::sources::{FieldPath, Fields};
use exist_api::types::ValueType;

/// How an attribute turns each record into what it aggregates. The default does nothing: every
/// record counts, its field is read as a number.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    /// The record counts only when all of these hold (`where`).
    pub conditions: Vec<Condition>,
    /// Text or numbers to numbers (`map`).
    pub map: Option<ValueMap>,
    /// A linear rescale, after the map (`scale`).
    pub scale: Option<Scale>,
    /// A factor applied last (`multiply`), e.g. pounds to kilograms.
    pub multiply: Option<f64>,
}

impl Transform {
    /// Whether a record with `fields` counts for the attribute.
    pub fn admits(&self, fields: &Fields) -> bool {
        self.conditions.iter().all(|c| c.holds(fields))
    }

    /// The fields the `where` conditions test.
    pub fn fields_read(&self) -> impl Iterator<Item = &FieldPath> {
        self.conditions.iter().map(|c| &c.field)
    }

    /// Whether the transform changes values (not only which records count).
    pub fn changes_values(&self) -> bool {
        self.map.is_some() || self.scale.is_some() || self.multiply.is_some()
    }

    /// The number a field's value `raw` stands for, transformed; `whole` rounds the scaled
    /// value (the attribute's type holds whole numbers).
    pub fn number(&self, raw: &Json, whole: bool) -> Result<f64, Skip> {
        let mut x = match &self.map {
            Some(map) => map.get(raw).ok_or(Skip::Unmapped)?,
            None => number_of(raw).ok_or(Skip::NotANumber)?,
        };
        if let Some(scale) = &self.scale {
            x = scale.apply(x)?;
            if whole {
                x = x.round();
            }
        }
        if let Some(factor) = self.multiply {
            x *= factor;
        }
        Ok(x)
    }
}

/// One `where` condition: a test on one field.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The field tested.
    pub field: FieldPath,
    /// The test.
    pub test: Test,
}

impl Condition {
    /// Whether the condition holds for a record with `fields`. An absent (or null) field
    /// equals nothing, matches nothing and does not exist.
    pub fn holds(&self, fields: &Fields) -> bool {
        let value = self.field.get(fields).filter(|v| !v.is_null());
        match (&self.test, value) {
            (Test::Exists(wanted), v) => v.is_some() == *wanted,
            (_, None) => false,
            (Test::Equals(s), Some(v)) => s.equals(v),
            (Test::In(list), Some(v)) => list.iter().any(|s| s.equals(v)),
            (Test::Matches(re), Some(Json::String(text))) => re.is_match(text),
            (Test::Matches(re), Some(v)) => re.is_match(&v.to_string()),
            (Test::HasTag { value, separator }, Some(v)) => {
                tag_values(Some(v), separator.as_deref()).contains(value)
            }
        }
    }
}

/// What a [`Condition`] tests.
#[derive(Debug, Clone)]
pub enum Test {
    /// The field equals this value (`equals`).
    Equals(Scalar),
    /// The field equals one of these (`in`).
    In(Vec<Scalar>),
    /// The field's text matches this regular expression anywhere (`matches`; anchor it with
    /// `^...$` to match the whole text).
    Matches(Regex),
    /// The field is present (`exists = true`) or absent (`exists = false`).
    Exists(bool),
    /// The field's list of tags (see [`tag_values`]) holds this one: how a `[[tags]]` value
    /// becomes an attribute of its own.
    HasTag {
        /// The tag, as [`tag_values`] gives it.
        value: String,
        /// What separates the tags in a text field.
        separator: Option<String>,
    },
}

/// A value written in the configuration, compared with a record's field.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text: equal to the field's text, surrounding spaces ignored on both sides.
    Text(String),
    /// A number: equal to the field's number (a number, or text that reads as one).
    Number(f64),
    /// A boolean: the field's boolean, or the text `true` / `false`.
    Bool(bool),
}

impl Scalar {
    /// Whether a record's field value `v` equals this.
    pub fn equals(&self, v: &Json) -> bool {
        match self {
            Self::Text(s) => match v {
                Json::String(text) => text.trim() == s.trim(),
                other => other.to_string().trim() == s.trim(),
            },
            Self::Number(n) => number_of(v) == Some(*n),
            Self::Bool(b) => match v {
                Json::Bool(x) => x == b,
                Json::String(s) => s
                    .trim()
                    .eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
        }
    }
}

/// A `map`: text or numbers to numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMap {
    entries: Vec<MapEntry>,
}

#[derive(Debug, Clone, PartialEq)]
struct MapEntry {
    /// The key, surrounding spaces trimmed.
    text: String,
    /// The key as a number, when it reads as one: it then also matches numeric fields.
    number: Option<f64>,
    to: f64,
}

impl ValueMap {
    /// A map from `(key, number)` pairs; two keys that mean the same value (`" meh"` and
    /// `"meh"`, `"1"` and `"1.0"`) are refused with the second one.
    pub fn new(pairs: impl IntoIterator<Item = (String, f64)>) -> Result<Self, String> {
        let mut entries: Vec<MapEntry> = Vec::new();
        for (key, to) in pairs {
            let text = key.trim().to_owned();
            let number = text.parse::<f64>().ok().filter(|x| x.is_finite());
            let same = entries
                .iter()
                .any(|e| e.text == text || (number.is_some() && e.number == number));
            if same {
                return Err(key);
            }
            entries.push(MapEntry { text, number, to });
        }
        Ok(Self { entries })
    }

    /// The number `raw` maps to, if the map lists it: by number for numeric values, else by
    /// its text, surrounding spaces ignored.
    pub fn get(&self, raw: &Json) -> Option<f64> {
        if let Some(x) = number_of(raw) {
            if let Some(e) = self.entries.iter().find(|e| e.number == Some(x)) {
                return Some(e.to);
            }
        }
        let text = match raw {
            Json::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        };
        let text = text.trim();
        self.entries.iter().find(|e| e.text == text).map(|e| e.to)
    }

    /// Every number the map gives.
    pub fn targets(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.entries.iter().map(|e| (e.text.as_str(), e.to))
    }
}

/// A linear rescale from one range onto another (`scale = { from = [1, 5], to = [1, 9] }`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    /// A rescale; `None` when `from`'s ends are equal (nothing to scale from) or a bound is not
    /// finite.
    pub fn new(from: (f64, f64), to: (f64, f64)) -> Option<Self> {
        let finite = [from.0, from.1, to.0, to.1].iter().all(|x| x.is_finite());
        (finite && from.0 != from.1).then_some(Self { from, to })
    }

    /// The range values come from.
    pub fn from(&self) -> (f64, f64) {
        self.from
    }

    /// The range values go to.
    pub fn to(&self) -> (f64, f64) {
        self.to
    }

    /// `x` rescaled; a value outside `from` is not extrapolated but skipped.
    pub fn apply(&self, x: f64) -> Result<f64, Skip> {
        let (f0, f1) = self.from;
        let (t0, t1) = self.to;
        if x < f0.min(f1) || x > f0.max(f1) {
            return Err(Skip::OutsideScale { from: self.from });
        }
        let y = t0 + (x - f0) / (f1 - f0) * (t1 - t0);
        // Rounding must not carry an end of `from` past the end of `to`.
        Ok(y.clamp(t0.min(t1), t0.max(t1)))
    }
}

/// Why a transform could not turn a field's value into a number.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Skip {
    /// Not a number, and no map says what it stands for.
    #[error("not a number")]
    NotANumber,
    /// The map does not list it.
    #[error("which `map` does not list; add it to the attribute's map")]
    Unmapped,
    /// Outside the scale's `from` range.
    #[error("outside scale.from [{}, {}]", .from.0, .from.1)]
    OutsideScale {
        /// The range.
        from: (f64, f64),
    },
}

/// The tags a field holds: a text split at `separator` (or whole), or a JSON array's items,
/// each trimmed and in lower case; empty ones are dropped.
pub fn tag_values(raw: Option<&Json>, separator: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |text: &str| {
        let tag = text.trim().to_lowercase();
        if !tag.is_empty() {
            out.insert(tag);
        }
    };
    match raw {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items.iter().filter(|i| !i.is_null()) {
                add(&text_of(item));
            }
        }
        Some(v) => {
            let text = text_of(v);
            match separator {
                Some(sep) => text.split(sep).for_each(&mut add),
                None => add(&text),
            }
        }
    }
    out
}

/// The numbers an attribute of type `vt` may hold, both ends included; `None` for text.
pub fn range_of(vt: ValueType) -> Option<(f64, f64)> {
    Some(match vt {
        ValueType::String => return None,
        ValueType::Scale => (1.0, 9.0),
        ValueType::Boolean | ValueType::Percentage => (0.0, 1.0),
        ValueType::TimeOfDay | ValueType::TimeOfDayFromMidday => (0.0, 1439.0),
        ValueType::Duration => (0.0, f64::INFINITY),
        ValueType::Integer | ValueType::Float => (f64::NEG_INFINITY, f64::INFINITY),
    })
}

/// A field's value as a number: a number, text that reads as a finite one, or a boolean.
fn number_of(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        // "NaN" and "inf" parse as floats but are no measure of anything.
        Json::String(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A field's value as text: a string as it is, anything else as JSON.
pub(crate) fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fields(v: Json) -> Fields {
        v.as_object().unwrap().clone().into()
    }

    fn when(field: &str, test: Test) -> Condition {
        Condition {
            field: FieldPath::new(field),
            test,
        }
    }

    fn mood_map() -> ValueMap {
        ValueMap::new(
            [
                ("rad", 9.0),
                ("good", 7.0),
                ("meh", 5.0),
                ("bad", 3.0),
                ("awful", 1.0),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        )
        .unwrap()
    }

    #[test]
    fn conditions_equal_match_exist_and_list() {
        let f =
            fields(json!({"activity": " Meditating ", "n": 5, "ok": true, "s": {"kind": "run"}}));
        let text = |s: &str| Scalar::Text(s.into());
        assert!(when("activity", Test::Equals(text("Meditating"))).holds(&f));
        assert!(
            !when("activity", Test::Equals(text("meditating"))).holds(&f),
            "case matters"
        );
        assert!(when("n", Test::Equals(Scalar::Number(5.0))).holds(&f));
        assert!(
            when("n", Test::Equals(text("5"))).holds(&f),
            "a number's text"
        );
        assert!(when("ok", Test::Equals(Scalar::Bool(true))).holds(&f));
        assert!(!when("ok", Test::Equals(Scalar::Bool(false))).holds(&f));
        assert!(when("s.kind", Test::In(vec![text("walk"), text("run")])).holds(&f));
        assert!(!when("s.kind", Test::In(vec![text("walk")])).holds(&f));
        assert!(when("activity", Test::Matches(Regex::new("^ ?Med").unwrap())).holds(&f));
        assert!(!when("activity", Test::Matches(Regex::new("^Med").unwrap())).holds(&f));
        assert!(when("n", Test::Exists(true)).holds(&f));
        assert!(when("gone", Test::Exists(false)).holds(&f));
        assert!(!when("gone", Test::Exists(true)).holds(&f));
        assert!(
            !when("gone", Test::Equals(text(""))).holds(&f),
            "absent equals nothing"
        );
        assert!(!when("gone", Test::Matches(Regex::new("").unwrap())).holds(&f));
        let null = fields(json!({"n": null}));
        assert!(
            when("n", Test::Exists(false)).holds(&null),
            "null is absent"
        );
    }

    #[test]
    fn a_list_of_conditions_means_all_of_them() {
        let t = Transform {
            conditions: vec![
                when("user", Test::Equals(Scalar::Text("me".into()))),
                when("weight", Test::Exists(true)),
            ],
            ..Transform::default()
        };
        assert!(t.admits(&fields(json!({"user": "me", "weight": 180}))));
        assert!(!t.admits(&fields(json!({"user": "you", "weight": 180}))));
        assert!(!t.admits(&fields(json!({"user": "me"}))));
        assert!(Transform::default().admits(&fields(json!({}))));
    }

    #[test]
    fn maps_text_and_numbers_and_names_what_they_lack() {
        let t = Transform {
            map: Some(mood_map()),
            ..Transform::default()
        };
        assert_eq!(t.number(&json!("rad"), true), Ok(9.0));
        assert_eq!(
            t.number(&json!("meh "), true),
            Ok(5.0),
            "Daylio pads some words"
        );
        assert_eq!(t.number(&json!("sad"), true), Err(Skip::Unmapped));
        assert_eq!(t.number(&json!(3), true), Err(Skip::Unmapped));
        let numbers = ValueMap::new([("1".to_owned(), 10.0), ("2".to_owned(), 20.0)]).unwrap();
        assert_eq!(numbers.get(&json!(2)), Some(20.0));
        assert_eq!(numbers.get(&json!(2.0)), Some(20.0));
        assert_eq!(numbers.get(&json!("1")), Some(10.0));
        assert_eq!(numbers.get(&json!(3)), None);
        assert_eq!(
            ValueMap::new([("meh".to_owned(), 1.0), (" meh".to_owned(), 2.0)]),
            Err(" meh".to_owned())
        );
        assert!(ValueMap::new([("1".to_owned(), 1.0), ("1.0".to_owned(), 2.0)]).is_err());
    }

    #[test]
    fn scales_round_for_whole_types_and_skip_outside_from() {
        let scale = Scale::new((1.0, 5.0), (1.0, 9.0)).unwrap();
        let t = Transform {
            scale: Some(scale),
            ..Transform::default()
        };
        assert_eq!(t.number(&json!(1), true), Ok(1.0));
        assert_eq!(t.number(&json!(5), true), Ok(9.0));
        assert_eq!(t.number(&json!(3.3), true), Ok(6.0), "5.6 rounded");
        assert_eq!(t.number(&json!(3.3), false), Ok(1.0 + 2.3 * 2.0));
        assert_eq!(
            t.number(&json!(6), true),
            Err(Skip::OutsideScale { from: (1.0, 5.0) })
        );
        assert_eq!(t.number(&json!("lots"), true), Err(Skip::NotANumber));
        let reversed = Scale::new((0.0, 10.0), (9.0, 1.0)).unwrap();
        assert_eq!(reversed.apply(0.0), Ok(9.0));
        assert_eq!(reversed.apply(10.0), Ok(1.0));
        assert!(Scale::new((2.0, 2.0), (1.0, 9.0)).is_none());
    }

    #[test]
    fn map_then_scale_then_multiply() {
        let t = Transform {
            map: Some(ValueMap::new([("low".to_owned(), 1.0), ("high".to_owned(), 3.0)]).unwrap()),
            scale: Some(Scale::new((1.0, 3.0), (0.0, 100.0)).unwrap()),
            multiply: Some(0.5),
            ..Transform::default()
        };
        assert_eq!(t.number(&json!("high"), true), Ok(50.0));
        let lb = Transform {
            multiply: Some(0.45359237),
            ..Transform::default()
        };
        let kg = lb.number(&json!(180.0), false).unwrap();
        assert!((kg - 81.6466266).abs() < 1e-6, "{kg}");
    }

    #[test]
    fn tags_split_trim_and_lower_case() {
        let daylio = json!("clean | music | movies / tv | Bad Sleep | tired ");
        let tags = tag_values(Some(&daylio), Some(" | "));
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            ["bad sleep", "clean", "movies / tv", "music", "tired"]
        );
        let padded = json!("stressed / frustrated  | cook  ");
        assert_eq!(
            tag_values(Some(&padded), Some("|"))
                .into_iter()
                .collect::<Vec<_>>(),
            ["cook", "stressed / frustrated"]
        );
        assert_eq!(
            tag_values(Some(&json!(["Gym", " work", null, ""])), Some("|")).len(),
            2
        );
        assert!(tag_values(Some(&json!("")), Some(" | ")).is_empty());
        assert!(tag_values(None, None).is_empty());
        assert_eq!(
            tag_values(Some(&json!("a | b")), None).len(),
            1,
            "no separator: one tag"
        );
        let has = when(
            "activities",
            Test::HasTag {
                value: "bad sleep".into(),
                separator: Some(" | ".into()),
            },
        );
        assert!(has.holds(&fields(json!({"activities": daylio}))));
        assert!(!has.holds(&fields(json!({"activities": "sleep"}))));
    }

    #[test]
    fn type_ranges() {
        assert_eq!(range_of(ValueType::Scale), Some((1.0, 9.0)));
        assert_eq!(range_of(ValueType::Percentage), Some((0.0, 1.0)));
        assert_eq!(range_of(ValueType::String), None);
        assert_eq!(range_of(ValueType::Duration).map(|r| r.0), Some(0.0));
    }

    fn bound() -> impl Strategy<Value = f64> {
        -1e6f64..1e6
    }

    proptest! {
        /// Every value inside `from` lands inside `to`, the ends land on the ends, and order is
        /// kept (or reversed, for a reversed range).
        #[test]
        fn scale_stays_inside_to(f0 in bound(), f1 in bound(), t0 in bound(), t1 in bound(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            prop_assume!(f0 != f1);
            let s = Scale::new((f0, f1), (t0, t1)).unwrap();
            let (x, y) = (f0 + a * (f1 - f0), f0 + b * (f1 - f0));
            let (lo, hi) = (t0.min(t1), t0.max(t1));
            for v in [x, y] {
                let out = s.apply(v.clamp(f0.min(f1), f0.max(f1))).unwrap();
                prop_assert!((lo..=hi).contains(&out), "{v} -> {out} not in {lo}..{hi}");
            }
            prop_assert!((s.apply(f0).unwrap() - t0).abs() <= 1e-6 * (1.0 + t0.abs()));
            prop_assert!((s.apply(f1).unwrap() - t1).abs() <= 1e-6 * (1.0 + t1.abs()));
            if a < b {
                let (sx, sy) = (s.apply(x.clamp(f0.min(f1), f0.max(f1))).unwrap(), s.apply(y.clamp(f0.min(f1), f0.max(f1))).unwrap());
                let ordered = if t0 <= t1 { sx <= sy } else { sx >= sy };
                prop_assert!(ordered, "{sx} and {sy} out of order");
            }
        }

        /// Outside `from` is never a number.
        #[test]
        fn scale_skips_outside_from(f0 in bound(), f1 in bound(), beyond in 1e-3f64..1e6) {
            prop_assume!(f0 != f1);
            let s = Scale::new((f0, f1), (1.0, 9.0)).unwrap();
            prop_assert!(s.apply(f0.max(f1) + beyond).is_err());
            prop_assert!(s.apply(f0.min(f1) - beyond).is_err());
        }

        /// A map gives only the numbers it lists, and gives each key its own.
        #[test]
        fn maps_give_only_their_numbers(keys in proptest::collection::btree_set("[a-z]{1,6}", 1..8), probe in "[a-z ]{0,8}") {
            let pairs: Vec<(String, f64)> = keys.iter().enumerate().map(|(i, k)| (k.clone(), i as f64)).collect();
            let map = ValueMap::new(pairs.clone()).unwrap();
            for (k, v) in &pairs {
                prop_assert_eq!(map.get(&json!(format!(" {k} "))), Some(*v));
            }
            match map.get(&json!(probe.clone())) {
                Some(x) => prop_assert!(keys.contains(probe.trim()) && pairs.iter().any(|(_, v)| *v == x)),
                None => prop_assert!(!keys.contains(probe.trim())),
            }
        }

        /// Joining tags with the separator and reading them back gives the same tags.
        #[test]
        fn tags_read_back(tags in proptest::collection::btree_set("[a-z][a-z /]{0,8}[a-z]", 0..6)) {
            let joined = tags.iter().cloned().collect::<Vec<_>>().join(" | ");
            let back = tag_values(Some(&json!(joined)), Some(" | "));
            prop_assert_eq!(back, tags.iter().map(|t| t.trim().to_owned()).collect::<BTreeSet<_>>());
        }
    }
}
