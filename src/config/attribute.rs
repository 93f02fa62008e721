//! The `[[attribute]]` tables: what goes to Exist, and how a day's records become its value.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{Locator, Seg};
use super::transform::{self, RawScale, RawTransform};
use super::{ConfigError, SourceConfig};
use crate::sync::transform::Transform;
use exist_api::templates::{self, Template};
use exist_api::types::{Group, ValueType};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttribute {
    pub template: Option<String>,
    pub name: Option<String>,
    pub label: Option<String>,
    pub group: Option<String>,
    pub value_type: Option<String>,
    pub source: String,
    pub field: Option<String>,
    pub aggregate: String,
    #[serde(rename = "where")]
    pub conditions: Option<toml::Value>,
    pub map: Option<BTreeMap<String, toml::Value>>,
    pub scale: Option<RawScale>,
    pub multiply: Option<f64>,
    pub fill: Option<String>,
}

/// One `[[attribute]]`: an Exist attribute and how its daily value is computed.
#[derive(Debug, Clone)]
pub struct AttributeConfig {
    /// Which Exist attribute.
    pub target: AttributeTarget,
    /// The source its records come from.
    pub source: String,
    /// The record field aggregated (not needed for `count`).
    pub field: Option<crate::sources::FieldPath>,
    /// How a day's records become one value.
    pub aggregate: Aggregate,
    /// Which records count, and what their field's value stands for.
    pub transform: Transform,
    /// What days without records get.
    pub fill: Fill,
}

impl AttributeConfig {
    /// The attribute's group.
    pub fn group(&self) -> Group {
        match &self.target {
            AttributeTarget::Template(t) => t.group,
            AttributeTarget::Existing { group, .. } | AttributeTarget::Custom { group, .. } => {
                *group
            }
            AttributeTarget::Tag { .. } => Group::Custom,
        }
    }

    /// The attribute's value type.
    pub fn value_type(&self) -> ValueType {
        match &self.target {
            AttributeTarget::Template(t) => t.value_type,
            AttributeTarget::Existing { value_type, .. }
            | AttributeTarget::Custom { value_type, .. } => *value_type,
            AttributeTarget::Tag { .. } => ValueType::Boolean,
        }
    }

    /// A stable key for this attribute in the state store, independent of Exist's naming.
    pub fn key(&self) -> String {
        match &self.target {
            AttributeTarget::Template(t) => format!("template:{}", t.name),
            AttributeTarget::Existing { name, .. } => format!("name:{name}"),
            AttributeTarget::Custom { label, .. } => format!("custom:{label}"),
            AttributeTarget::Tag { key, .. } => key.clone(),
        }
    }

    /// How the attribute is shown to people before Exist has named it.
    pub fn display_name(&self) -> String {
        match &self.target {
            AttributeTarget::Template(t) => t.name.to_owned(),
            AttributeTarget::Existing { name, .. } => name.clone(),
            AttributeTarget::Custom { label, .. } | AttributeTarget::Tag { label, .. } => {
                label.clone()
            }
        }
    }
}

/// Which Exist attribute an `[[attribute]]` writes.
#[derive(Debug, Clone)]
pub enum AttributeTarget {
    /// A template: acquired, its name is the template's.
    Template(&'static Template),
    /// An attribute the user already has, acquired by name.
    Existing {
        /// Its Exist name.
        name: String,
        /// Its group.
        group: Group,
        /// Its value type.
        value_type: ValueType,
    },
    /// A custom attribute: created once; Exist chooses its name.
    Custom {
        /// The label shown in Exist.
        label: String,
        /// Its group.
        group: Group,
        /// Its value type.
        value_type: ValueType,
    },
    /// One value of a `[[tags]]` field: a custom boolean (group `custom`), created on first
    /// sight; Exist chooses its name.
    Tag {
        /// The label shown in Exist: the tags' prefix and the value.
        label: String,
        /// Its identity in the state (see [`super::TagsConfig::attribute`]).
        key: String,
    },
}

/// What the days of the synced range without records get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// No value: nothing is known about them.
    #[default]
    Nothing,
    /// Zero (`sum`, `count` and `any` only): no record means none happened.
    Zero,
}

/// How a day's records become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum of the field.
    Sum,
    /// Number of records.
    Count,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Arithmetic mean.
    Mean,
    /// The value of the latest record.
    Last,
    /// 1 when the day has a record that matches `where`, else 0.
    Any,
}

impl Aggregate {
    const NAMES: [(&'static str, Aggregate); 7] = [
        ("sum", Self::Sum),
        ("count", Self::Count),
        ("max", Self::Max),
        ("min", Self::Min),
        ("mean", Self::Mean),
        ("last", Self::Last),
        ("any", Self::Any),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }
}

pub(super) fn check(
    loc: &Locator<'_>,
    i: usize,
    raw: RawAttribute,
    sources: &[SourceConfig],
) -> Result<AttributeConfig, ConfigError> {
    let at = |k| [Seg::Key("attribute"), Seg::Index(i), Seg::Key(k)];
    let here = [Seg::Key("attribute"), Seg::Index(i)];
    let group = |loc: &Locator<'_>, g: &Option<String>| -> Result<Group, ConfigError> {
        let Some(g) = g else {
            return Err(loc.error(
                &here,
                "needs `group`",
                format!("add group = \"...\", one of {}", group_list()),
            ));
        };
        Group::from_name(g).ok_or_else(|| {
            loc.error(
                &at("group"),
                format!("\"{g}\" is not an Exist group"),
                format!("write one of {}", group_list()),
            )
        })
    };
    let value_type =
        |loc: &Locator<'_>, v: &Option<String>, custom: bool| -> Result<ValueType, ConfigError> {
            let choices =
                "integer, float, string, duration, time_of_day, percentage, boolean or scale";
            let Some(v) = v else {
                return Err(loc.error(
                    &here,
                    "needs `value_type`",
                    format!("add value_type = \"...\": {choices}"),
                ));
            };
            match ValueType::from_config_name(v) {
                Some(ValueType::TimeOfDayFromMidday) if custom => Err(loc.error(
                    &at("value_type"),
                    "time_of_day_midday is for templates only",
                    format!("write one of {choices}"),
                )),
                Some(t) => Ok(t),
                None => Err(loc.error(
                    &at("value_type"),
                    format!("\"{v}\" is not a value type"),
                    format!("write one of {choices}"),
                )),
            }
        };
    let target = match (&raw.template, &raw.name, &raw.label) {
        (Some(t), None, None) => {
            if raw.group.is_some() || raw.value_type.is_some() {
                return Err(loc.error(
                    &at(if raw.group.is_some() {
                        "group"
                    } else {
                        "value_type"
                    }),
                    "a template has its own group and value type",
                    "remove group and value_type from this attribute",
                ));
            }
            let template = templates::find(t).ok_or_else(|| {
                let hint = match templates::suggest(t).as_slice() {
                    [] => "use a template from Exist's list (see the README), or a custom attribute with label, group and value_type".to_owned(),
                    close => format!("did you mean {}? Or use a custom attribute with label, group and value_type", close.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" or ")),
                };
                loc.error(&at("template"), format!("\"{t}\" is not an Exist template"), hint)
            })?;
            AttributeTarget::Template(template)
        }
        (None, Some(name), None) => {
            if exist_api::types::AttributeName::new(name.as_str()).is_err() {
                return Err(loc.error(
                    &at("name"),
                    format!("\"{name}\" is not an Exist attribute name"),
                    "write the name as Exist shows it: lowercase letters, digits and `_`",
                ));
            }
            AttributeTarget::Existing {
                name: name.clone(),
                group: group(loc, &raw.group)?,
                value_type: value_type(loc, &raw.value_type, false)?,
            }
        }
        (None, None, Some(label)) => {
            if exist_api::types::AttributeName::slug_of(label).is_err() {
                return Err(loc.error(
                    &at("label"),
                    format!("\"{label}\" has no letters or digits"),
                    "write a label such as \"Espressos\"",
                ));
            }
            AttributeTarget::Custom {
                label: label.clone(),
                group: group(loc, &raw.group)?,
                value_type: value_type(loc, &raw.value_type, true)?,
            }
        }
        _ => {
            return Err(loc.error(&here, "needs exactly one of `template`, `name` or `label`", "write template = \"steps\" for a template, name = \"...\" for an attribute you already have, or label = \"...\" (with group and value_type) for a custom one"));
        }
    };
    if !sources.iter().any(|s| s.name == raw.source) {
        let known: Vec<_> = sources.iter().map(|s| format!("\"{}\"", s.name)).collect();
        let fix = if known.is_empty() {
            "add a [[source]] with that name".to_owned()
        } else {
            format!(
                "write one of {} or add a [[source]] named \"{}\"",
                known.join(", "),
                raw.source
            )
        };
        return Err(loc.error(
            &at("source"),
            format!("no source is named \"{}\"", raw.source),
            fix,
        ));
    }
    let aggregate = Aggregate::from_name(&raw.aggregate).ok_or_else(|| {
        loc.error(
            &at("aggregate"),
            format!("\"{}\" is not an aggregate", raw.aggregate),
            "write sum, count, max, min, mean, last or any",
        )
    })?;
    let fill = match raw.fill.as_deref() {
        None | Some("none") => Fill::Nothing,
        Some("zero") if matches!(aggregate, Aggregate::Sum | Aggregate::Count | Aggregate::Any) => {
            Fill::Zero
        }
        Some("zero") => {
            return Err(loc.error(
                &at("fill"),
                format!("a day without records has no {} to fill with zero", raw.aggregate),
                "remove fill, or use it with aggregate sum, count or any",
            ))
        }
        Some(other) => {
            return Err(loc.error(
                &at("fill"),
                format!("\"{other}\" is not a fill"),
                "write fill = \"zero\" (days without records get 0), or leave it out (they get no value)",
            ))
        }
    };
    let mut attribute = AttributeConfig {
        target,
        source: raw.source,
        field: raw.field.map(crate::sources::FieldPath::new),
        aggregate,
        transform: Transform::default(),
        fill,
    };
    if aggregate == Aggregate::Any && attribute.field.is_some() {
        return Err(loc.error(
            &at("field"),
            "`any` asks whether a day has a record that matches `where`, not what a field holds",
            "remove field, and say which records count with where = { field = \"...\", equals = \"...\" } (or exists = true)",
        ));
    }
    if attribute.field.is_none() && !matches!(aggregate, Aggregate::Count | Aggregate::Any) {
        return Err(loc.error(
            &here,
            format!("`{}` needs the record `field` to aggregate", raw.aggregate),
            "add field = \"...\", or use aggregate = \"count\"",
        ));
    }
    let vt = attribute.value_type();
    if !attribute.group().is_writable() {
        return Err(loc.error(
            &here,
            format!(
                "{} is in Exist's {} group, which Exist fills itself: no app may write it",
                attribute.display_name(),
                attribute.group()
            ),
            "remove this attribute, or send the value to a custom attribute in another group",
        ));
    }
    if attribute.group() == Group::Custom && vt != ValueType::Boolean {
        return Err(loc.error(
            &at(if raw.value_type.is_some() { "value_type" } else { "group" }),
            format!("Exist's `custom` group holds booleans (daily tags) only, not {vt}"),
            "use another group (e.g. food, health, productivity) for this attribute, or value_type = \"boolean\" for a tag",
        ));
    }
    if vt == ValueType::String && !matches!(aggregate, Aggregate::Last) {
        return Err(loc.error(
            &at("aggregate"),
            format!(
                "a string attribute cannot be aggregated with `{}`",
                raw.aggregate
            ),
            "use aggregate = \"last\"",
        ));
    }
    let zero_or_one = |x: f64| {
        crate::sync::transform::range_of(vt).is_some_and(|(lo, hi)| (lo..=hi).contains(&x))
    };
    if aggregate == Aggregate::Any && !(zero_or_one(0.0) && zero_or_one(1.0)) {
        return Err(loc.error(
            &at("aggregate"),
            format!(
                "`any` gives 0 or 1, which {} ({vt}) cannot hold",
                attribute.display_name()
            ),
            "send it to a boolean (or integer) attribute",
        ));
    }
    if fill == Fill::Zero && !zero_or_one(0.0) {
        return Err(loc.error(
            &at("fill"),
            format!(
                "fill = \"zero\" gives 0, which {} ({vt}) cannot hold",
                attribute.display_name()
            ),
            "remove fill",
        ));
    }
    let cx = transform::AttributeFacts {
        index: i,
        aggregate,
        aggregate_name: &raw.aggregate,
        value_type: vt,
        display_name: attribute.display_name(),
    };
    let raw_transform = RawTransform {
        conditions: raw.conditions,
        map: raw.map,
        scale: raw.scale,
        multiply: raw.multiply,
    };
    attribute.transform = transform::check(loc, &cx, raw_transform)?;
    Ok(attribute)
}

fn group_list() -> String {
    Group::ALL
        .iter()
        .filter(|g| g.is_writable())
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
