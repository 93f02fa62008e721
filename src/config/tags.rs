//! The `[[tags]]` tables: one custom boolean attribute (a daily tag, group `custom`) per distinct
//! value of a record field, such as each activity of a Daylio export.

use serde::Deserialize;

use super::attribute::{Aggregate, AttributeConfig, AttributeTarget, Fill};
use super::error::{Locator, Seg};
use super::{ConfigError, SourceConfig};
use crate::sources::FieldPath;
use crate::sync::transform::{Condition, Test, Transform};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTags {
    source: String,
    field: String,
    separator: Option<String>,
    prefix: Option<String>,
}

/// One `[[tags]]`: the values of a field, each its own daily tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagsConfig {
    /// The source whose records carry the field.
    pub source: String,
    /// The field holding a record's tags.
    pub field: FieldPath,
    /// What separates several tags in a text field (`" | "`); none: the whole text is one tag.
    /// A JSON array's items are tags either way.
    pub separator: Option<String>,
    /// Put before each value in the tag's label (`"daylio "`); empty by default.
    pub prefix: String,
}

/// The start of every tag attribute's key in the state.
const KEY_PREFIX: &str = "tag:";

impl TagsConfig {
    /// The attribute of tag `value` (as [`crate::sync::transform::tag_values`] gives it): a
    /// custom boolean labelled with the prefix and the value, 1 on the days of the source where
    /// a record holds the value, else 0. Its key names the tags table and the value, so that a
    /// value is recognised as this table's on later runs.
    pub fn attribute(&self, value: &str) -> AttributeConfig {
        let key = serde_json::json!([self.source, self.field.as_str(), self.prefix, value]);
        AttributeConfig {
            target: AttributeTarget::Tag {
                label: format!("{}{value}", self.prefix),
                key: format!("{KEY_PREFIX}{key}"),
            },
            source: self.source.clone(),
            field: None,
            aggregate: Aggregate::Any,
            transform: Transform {
                conditions: vec![Condition {
                    field: self.field.clone(),
                    test: Test::HasTag {
                        value: value.to_owned(),
                        separator: self.separator.clone(),
                    },
                }],
                ..Transform::default()
            },
            fill: Fill::Nothing,
        }
    }

    /// The tag value an attribute key of this table's stands for; `None` for any other key.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let parts: [String; 4] = serde_json::from_str(key.strip_prefix(KEY_PREFIX)?).ok()?;
        let [source, field, prefix, value] = parts;
        (source == self.source && field == self.field.as_str() && prefix == self.prefix)
            .then_some(value)
    }
}

pub(super) fn check(
    loc: &Locator<'_>,
    i: usize,
    raw: RawTags,
    sources: &[SourceConfig],
    earlier: &[TagsConfig],
) -> Result<TagsConfig, ConfigError> {
    let at = |k| [Seg::Key("tags"), Seg::Index(i), Seg::Key(k)];
    if !sources.iter().any(|s| s.name == raw.source) {
        let known: Vec<_> = sources.iter().map(|s| format!("\"{}\"", s.name)).collect();
        return Err(loc.error(
            &at("source"),
            format!("no source is named \"{}\"", raw.source),
            if known.is_empty() {
                "add a [[source]] with that name".to_owned()
            } else {
                format!("write one of {}", known.join(", "))
            },
        ));
    }
    if raw.field.is_empty() || raw.field.split('.').any(str::is_empty) {
        return Err(loc.error(
            &at("field"),
            format!("\"{}\" is not a field name", raw.field),
            "write the record's field holding the tags, e.g. field = \"activities\"",
        ));
    }
    if raw.separator.as_deref() == Some("") {
        return Err(loc.error(
            &at("separator"),
            "an empty separator splits nothing",
            "write what stands between two tags, e.g. separator = \" | \", or leave it out",
        ));
    }
    let tags = TagsConfig {
        source: raw.source,
        field: FieldPath::new(raw.field),
        separator: raw.separator,
        prefix: raw.prefix.unwrap_or_default(),
    };
    let same = |t: &&TagsConfig| {
        t.source == tags.source && t.field == tags.field && t.prefix == tags.prefix
    };
    if earlier.iter().any(|t| same(&t)) {
        return Err(loc.error(
            &[Seg::Key("tags"), Seg::Index(i)],
            format!(
                "the tags of `{}` in source \"{}\" are configured twice",
                tags.field, tags.source
            ),
            "keep one [[tags]] per source and field (or give them different prefixes)",
        ));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_table_and_the_value() {
        let tags = TagsConfig {
            source: "daylio".into(),
            field: FieldPath::new("activities"),
            separator: Some("|".into()),
            prefix: "d: ".into(),
        };
        let a = tags.attribute("movies / tv");
        assert_eq!(a.display_name(), "d: movies / tv");
        assert_eq!(tags.value_of(&a.key()).as_deref(), Some("movies / tv"));
        let other = TagsConfig {
            prefix: String::new(),
            ..tags.clone()
        };
        assert_eq!(
            other.value_of(&a.key()),
            None,
            "another prefix: another table"
        );
        assert_eq!(tags.value_of("custom:d: gym"), None);
        assert_eq!(tags.value_of("tag:[1,2]"), None);
    }
}
