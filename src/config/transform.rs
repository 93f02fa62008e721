//! The keys of an `[[attribute]]` that turn records into what a person means: `where`, `map`,
//! `scale`, `multiply` and `fill`, read into a [`Transform`] once and checked against the
//! attribute's aggregate and value type, so that a run never has to guess.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{Locator, Seg};
use super::{Aggregate, ConfigError};
use crate::sources::FieldPath;
use crate::sync::transform::{range_of, Condition, Scalar, Scale, Test, Transform, ValueMap};
use exist_api::types::ValueType;

/// The transform keys as written.
#[derive(Debug)]
pub(super) struct RawTransform {
    pub conditions: Option<toml::Value>,
    pub map: Option<BTreeMap<String, toml::Value>>,
    pub scale: Option<RawScale>,
    pub multiply: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScale {
    from: [f64; 2],
    to: [f64; 2],
}

/// What the checks need to know of the attribute the transform belongs to.
pub(super) struct AttributeFacts<'a> {
    pub index: usize,
    pub aggregate: Aggregate,
    pub aggregate_name: &'a str,
    pub value_type: ValueType,
    pub display_name: String,
}

/// Reads and checks the transform keys of attribute `cx.index`.
pub(super) fn check(
    loc: &Locator<'_>,
    cx: &AttributeFacts<'_>,
    raw: RawTransform,
) -> Result<Transform, ConfigError> {
    let at = |k: &'static str| [Seg::Key("attribute"), Seg::Index(cx.index), Seg::Key(k)];
    let conditions = match raw.conditions {
        None => Vec::new(),
        Some(value) => conditions(loc, &at("where"), value)?,
    };
    let multiply =
        match raw.multiply {
            Some(m) if !m.is_finite() || m == 0.0 => return Err(loc.error(
                &at("multiply"),
                format!("multiply = {m} turns every value into nonsense"),
                "write the conversion factor, e.g. multiply = 0.45359237 for pounds to kilograms",
            )),
            m => m,
        };
    let scale = match raw.scale {
        None => None,
        Some(RawScale { from, to }) => Some(
            Scale::new((from[0], from[1]), (to[0], to[1])).ok_or_else(|| {
                loc.error(
                    &at("scale"),
                    format!(
                        "scale.from [{}, {}] has no width to scale from",
                        from[0], from[1]
                    ),
                    "write the range the values come in, e.g. from = [1, 5]",
                )
            })?,
        ),
    };
    let map = match raw.map {
        None => None,
        Some(entries) => Some(value_map(loc, cx, entries)?),
    };
    let transform = Transform {
        conditions,
        map,
        scale,
        multiply,
    };
    if transform.changes_values() {
        let key = if transform.map.is_some() {
            "map"
        } else if transform.scale.is_some() {
            "scale"
        } else {
            "multiply"
        };
        if matches!(cx.aggregate, Aggregate::Count | Aggregate::Any) {
            return Err(loc.error(
                &at(key),
                format!(
                    "`{}` looks at records, not at a field's value, so `{key}` would change nothing",
                    cx.aggregate_name
                ),
                format!("remove `{key}`, or aggregate the field with sum, max, min, mean or last"),
            ));
        }
        if cx.value_type == ValueType::String {
            return Err(loc.error(
                &at(key),
                format!("{} holds text, which `{key}` cannot make", cx.display_name),
                format!("remove `{key}`: a string attribute takes the field's text as it is"),
            ));
        }
    }
    check_ranges(loc, cx, &transform)?;
    Ok(transform)
}

/// A scale must land inside the attribute's type, and a map must land inside the scale's
/// `from` (else every such record would be skipped) or, with nothing after it and an aggregate
/// that keeps values as they are, inside the type.
fn check_ranges(
    loc: &Locator<'_>,
    cx: &AttributeFacts<'_>,
    transform: &Transform,
) -> Result<(), ConfigError> {
    let Some((lo, hi)) = range_of(cx.value_type) else {
        return Ok(());
    };
    let factor = transform.multiply.unwrap_or(1.0);
    let range = || match (lo.is_finite(), hi.is_finite()) {
        (true, true) => format!("{lo} to {hi}"),
        (true, false) => format!("{lo} or more"),
        _ => "any number".to_owned(),
    };
    let attr = |k: &'static str| [Seg::Key("attribute"), Seg::Index(cx.index), Seg::Key(k)];
    if let Some(scale) = &transform.scale {
        let (t0, t1) = scale.to();
        let (a, b) = (t0 * factor, t1 * factor);
        if a.min(b) < lo || a.max(b) > hi {
            let after = if factor == 1.0 {
                String::new()
            } else {
                format!(" (times multiply = {factor})")
            };
            return Err(loc.error(
                &attr("scale"),
                format!(
                    "scale.to [{t0}, {t1}]{after} leaves the range of {} ({}: {})",
                    cx.display_name,
                    cx.value_type,
                    range()
                ),
                format!("write `to` within {}", range()),
            ));
        }
    }
    let Some(map) = &transform.map else {
        return Ok(());
    };
    for (key, x) in map.targets() {
        let path = [
            Seg::Key("attribute"),
            Seg::Index(cx.index),
            Seg::Key("map"),
            Seg::Key(key),
        ];
        if let Some(scale) = &transform.scale {
            let (f0, f1) = scale.from();
            if x < f0.min(f1) || x > f0.max(f1) {
                return Err(loc.error(
                    &path,
                    format!("\"{key}\" maps to {x}, outside scale.from [{f0}, {f1}], so those records would all be skipped"),
                    "map into the scale's `from` range, or widen it",
                ));
            }
            continue;
        }
        let kept = matches!(
            cx.aggregate,
            Aggregate::Max | Aggregate::Min | Aggregate::Mean | Aggregate::Last
        );
        let y = x * factor;
        if kept && (y < lo || y > hi) {
            return Err(loc.error(
                &path,
                format!(
                    "\"{key}\" maps to {x}, which leaves the range of {} ({}: {})",
                    cx.display_name,
                    cx.value_type,
                    range()
                ),
                format!(
                    "map into {}, or add scale = {{ from = [..], to = [..] }} to rescale",
                    range()
                ),
            ));
        }
    }
    Ok(())
}

fn value_map(
    loc: &Locator<'_>,
    cx: &AttributeFacts<'_>,
    entries: BTreeMap<String, toml::Value>,
) -> Result<ValueMap, ConfigError> {
    let error = |key: Option<&str>, problem: String, fix: String| {
        let mut path = vec![Seg::Key("attribute"), Seg::Index(cx.index), Seg::Key("map")];
        path.extend(key.map(Seg::Key));
        loc.error(&path, problem, fix)
    };
    if entries.is_empty() {
        return Err(error(
            None,
            "the map lists nothing, so every record would be skipped".into(),
            "list what each value stands for, e.g. map = { rad = 9, good = 7, meh = 5 }".into(),
        ));
    }
    let mut pairs = Vec::with_capacity(entries.len());
    for (key, value) in &entries {
        let x = match value {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) if f.is_finite() => *f,
            other => {
                return Err(error(
                    Some(key),
                    format!("\"{key}\" maps to {other}, not a number"),
                    format!("write {key} = <the number it stands for>"),
                ))
            }
        };
        pairs.push((key.clone(), x));
    }
    ValueMap::new(pairs).map_err(|key| {
        error(
            Some(&key),
            format!("\"{key}\" is listed twice (spaces around a value are ignored, and 1 and 1.0 are the same number)"),
            "keep one entry per value".into(),
        )
    })
}

/// `where`: one table, or a list of them that must all hold.
fn conditions(
    loc: &Locator<'_>,
    path: &[Seg<'_>],
    value: toml::Value,
) -> Result<Vec<Condition>, ConfigError> {
    let tables = match value {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::Table(t) => Ok(t),
                other => Err(loc.error(
                    path,
                    format!("a `where` list holds {other}, not a condition"),
                    WHERE_FIX,
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(loc.error(
                path,
                format!("`where` is {other}, not a condition"),
                WHERE_FIX,
            ))
        }
    };
    let numbered = tables.len() > 1;
    tables
        .into_iter()
        .enumerate()
        .map(|(n, table)| {
            condition(table).map_err(|(problem, fix)| {
                let problem = if numbered {
                    format!("condition {}: {problem}", n + 1)
                } else {
                    problem
                };
                loc.error(path, problem, fix)
            })
        })
        .collect()
}

const WHERE_FIX: &str = "write where = { field = \"...\", equals = \"...\" } (or in = [...], matches = \"regex\", exists = true), or a list of such tables";

const TESTS: [&str; 4] = ["equals", "in", "matches", "exists"];

/// One condition table: `field` and exactly one test.
fn condition(mut table: toml::Table) -> Result<Condition, (String, String)> {
    let field = match table.remove("field") {
        Some(toml::Value::String(f)) => f,
        Some(other) => {
            return Err((
                format!("`field` is {other}, not a field name"),
                WHERE_FIX.into(),
            ))
        }
        None => {
            return Err((
                "a condition needs the `field` it tests".into(),
                WHERE_FIX.into(),
            ))
        }
    };
    if field.is_empty() || field.split('.').any(str::is_empty) {
        return Err((
            format!("\"{field}\" is not a field name"),
            "write the record's field, or a dotted path such as \"contributors.steps\"".into(),
        ));
    }
    if let Some(unknown) = table.keys().find(|k| !TESTS.contains(&k.as_str())) {
        return Err((
            format!("`{unknown}` is not a test"),
            "the keys allowed in a condition are field, equals, in, matches and exists".into(),
        ));
    }
    let mut tests = table.into_iter();
    let (name, value) = match (tests.next(), tests.next()) {
        (Some(one), None) => one,
        (None, _) => {
            return Err((
                format!("the condition on `{field}` has no test"),
                "add one of equals = \"...\", in = [...], matches = \"regex\" or exists = true"
                    .into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err((
                format!("the condition on `{field}` has more than one test"),
                "keep one test per condition; a list of conditions means all of them".into(),
            ))
        }
    };
    let test = match (name.as_str(), value) {
        ("equals", v) => Test::Equals(scalar(&v)?),
        ("in", toml::Value::Array(items)) if !items.is_empty() => {
            Test::In(items.iter().map(scalar).collect::<Result<_, _>>()?)
        }
        ("in", _) => {
            return Err((
                "`in` needs a list of the values that match".into(),
                "write in = [\"walk\", \"run\"]".into(),
            ))
        }
        ("matches", toml::Value::String(pattern)) => {
            Test::Matches(regex::Regex::new(&pattern).map_err(|e| {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or("").trim();
                let why = why.strip_prefix("error: ").unwrap_or(why).to_owned();
                (
                    format!("matches = \"{pattern}\" is not a regular expression ({why})"),
                    "fix the pattern (Rust regex syntax; escape a literal | ( or . with \\)".into(),
                )
            })?)
        }
        ("matches", other) => {
            return Err((
                format!("`matches` is {other}, not a regular expression"),
                "write matches = \"^run\"".into(),
            ))
        }
        ("exists", toml::Value::Boolean(b)) => Test::Exists(b),
        (_, other) => {
            return Err((
                format!("`exists` is {other}, not true or false"),
                "write exists = true (or false)".into(),
            ))
        }
    };
    Ok(Condition {
        field: FieldPath::new(field),
        test,
    })
}

fn scalar(v: &toml::Value) -> Result<Scalar, (String, String)> {
    match v {
        toml::Value::String(s) => Ok(Scalar::Text(s.clone())),
        toml::Value::Integer(i) => Ok(Scalar::Number(*i as f64)),
        toml::Value::Float(f) if f.is_finite() => Ok(Scalar::Number(*f)),
        toml::Value::Boolean(b) => Ok(Scalar::Bool(*b)),
        other => Err((
            format!("{other} cannot be compared with a record's field"),
            "compare with text, a number or true/false".into(),
        )),
    }
}
