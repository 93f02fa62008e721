//! A record field as configured: a name, or a dotted path into nested objects and arrays.

use std::fmt;

use serde_json::Value;

use super::fields::{Fields, Key};

/// A field of a record: `steps`, or a path such as `contributors.steps` or `measures.0.value`
/// (a number indexes an array). A key that exists as written wins over the path, so a flat
/// field named `heart.rate` is still found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
    /// The interned name of `text` and of the first segment.
    key: Key,
    first: Key,
}

impl FieldPath {
    /// The path written as `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        Self {
            key: Key::of(&text),
            first: Key::of(&segments[0]),
            text,
            segments,
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path goes into nested values.
    pub fn is_nested(&self) -> bool {
        self.segments.len() > 1
    }

    /// The top-level fields a record must keep for this path to be read: the name as written
    /// and, for a path, its first segment.
    pub fn top_names(&self) -> impl Iterator<Item = &str> {
        let first = self.is_nested().then(|| self.segments[0].as_str());
        std::iter::once(self.text.as_str()).chain(first)
    }

    /// The value at this path in `fields`, if there is one.
    pub fn get<'a>(&self, fields: &'a Fields) -> Option<&'a Value> {
        if let Some(value) = fields.get_key(self.key) {
            return Some(value);
        }
        if !self.is_nested() {
            return None;
        }
        let mut value = fields.get_key(self.first)?;
        for segment in &self.segments[1..] {
            value = match value {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for FieldPath {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for FieldPath {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        v.as_object().unwrap().clone().into()
    }

    #[test]
    fn paths_go_into_objects_and_arrays_and_flat_keys_win() {
        let f = fields(json!({
            "steps": 3,
            "contributors": {"steps": 7, "list": [{"v": 1}, {"v": 2}]},
            "heart.rate": 60,
            "measures": [{"value": 7215, "unit": -2}]
        }));
        assert_eq!(FieldPath::new("steps").get(&f), Some(&json!(3)));
        assert_eq!(
            FieldPath::new("contributors.steps").get(&f),
            Some(&json!(7))
        );
        assert_eq!(
            FieldPath::new("contributors.list.1.v").get(&f),
            Some(&json!(2))
        );
        assert_eq!(
            FieldPath::new("measures.0.value").get(&f),
            Some(&json!(7215))
        );
        assert_eq!(FieldPath::new("heart.rate").get(&f), Some(&json!(60)));
        assert_eq!(FieldPath::new("contributors.nope").get(&f), None);
        assert_eq!(FieldPath::new("measures.5.value").get(&f), None);
        assert_eq!(FieldPath::new("steps.deeper").get(&f), None);
    }
}
