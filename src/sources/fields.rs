//! A record's fields: only those the configuration reads, parsed straight from the source's
//! bytes.
//!
//! A million-line file is parsed a million times, so this is where allocations count. A
//! [`Projection`] names the fields a source's configuration reads (its date, id and offset
//! fields, its attributes' fields and `where` tests, its tags); a JSON object is parsed with it
//! as a seed, every other field skipped unparsed. What is kept is a small [`Fields`] list keyed by
//! interned names ([`Key`]), so no field name is allocated per record.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, RwLock};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A field name, interned. Names are interned when the configuration is read (each field path)
/// and by [`Projection::everything`], so the table grows with the names a configuration and its
/// sources use, never with the number of records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u32);

/// Every interned name and its key; names live as long as the process.
struct Names {
    keys: HashMap<&'static str, Key>,
    names: Vec<&'static str>,
}

static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(|| {
    RwLock::new(Names {
        keys: HashMap::new(),
        names: Vec::new(),
    })
});

impl Key {
    /// The key of `name`, interning it if it is new.
    pub fn of(name: &str) -> Self {
        if let Some(key) = Self::find(name) {
            return key;
        }
        let mut names = NAMES.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&key) = names.keys.get(name) {
            return key;
        }
        let key = Key(u32::try_from(names.names.len()).unwrap_or(u32::MAX));
        let name: &'static str = Box::leak(name.into());
        names.names.push(name);
        names.keys.insert(name, key);
        key
    }

    /// The key of `name` if it was interned (no record can hold a field of another name).
    pub fn find(name: &str) -> Option<Self> {
        let names = NAMES.read().unwrap_or_else(|e| e.into_inner());
        names.keys.get(name).copied()
    }

    /// The name.
    pub fn name(self) -> &'static str {
        let names = NAMES.read().unwrap_or_else(|e| e.into_inner());
        names
            .names
            .get(self.0 as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// Which top-level fields of a record are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// The names kept and their keys; few, so a linear search beats hashing.
    names: Vec<(Box<str>, Key)>,
    /// Every field is kept (to look at a source's records whole, as tests and probes do).
    everything: bool,
}

impl Projection {
    /// Keeps every field. Each new name is interned: for looking at a source, not for a
    /// daemon's runs, which name their fields.
    pub fn everything() -> Self {
        Self {
            names: Vec::new(),
            everything: true,
        }
    }

    /// Keeps the top-level fields that `paths` start with.
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a super::FieldPath>) -> Self {
        let mut projection = Self::default();
        for path in paths {
            for name in path.top_names() {
                projection.keep(name, Key::of(name));
            }
        }
        projection
    }

    /// Also keeps what `other` keeps.
    pub fn union(mut self, other: &Projection) -> Self {
        self.everything |= other.everything;
        for (name, key) in &other.names {
            self.keep(name, *key);
        }
        self
    }

    fn keep(&mut self, name: &str, key: Key) {
        if !self.names.iter().any(|(n, _)| **n == *name) {
            self.names.push((name.into(), key));
        }
    }

    /// The key a field named `name` is kept under, if it is kept.
    pub fn key_of(&self, name: &str) -> Option<Key> {
        match self.names.iter().find(|(n, _)| **n == *name) {
            Some((_, key)) => Some(*key),
            None if self.everything => Some(Key::of(name)),
            None => None,
        }
    }
}

/// A record's kept fields, in the order the source gave them.
#[derive(Clone, Default, PartialEq)]
pub struct Fields(Vec<(Key, Value)>);

impl Fields {
    /// The fields of `json`, one JSON object, that `projection` keeps; the rest is checked to be
    /// JSON but not built. Anything but an object is a data error ("not a JSON object").
    pub fn parse(json: &[u8], projection: &Projection) -> serde_json::Result<Self> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let fields = Projected(projection).deserialize(&mut de)?;
        de.end()?;
        Ok(fields)
    }

    /// The fields of `object` that `projection` keeps.
    pub fn project(object: Map<String, Value>, projection: &Projection) -> Self {
        let mut fields = Self::default();
        for (name, value) in object {
            if let Some(key) = projection.key_of(&name) {
                fields.insert(key, value);
            }
        }
        fields
    }

    /// Sets a field; a second value of the same field replaces the first, as in a JSON object.
    pub fn insert(&mut self, key: Key, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key, value)),
        }
    }

    /// The field kept under `key`.
    pub fn get_key(&self, key: Key) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The field named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.get_key(Key::find(name)?)
    }

    /// Whether a field named `name` is kept.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The fields as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.name().to_owned(), v.clone()))
            .collect()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// Every field kept.
impl From<Map<String, Value>> for Fields {
    fn from(object: Map<String, Value>) -> Self {
        Self::project(object, &Projection::everything())
    }
}

/// A JSON object, every field kept.
impl<'de> de::Deserialize<'de> for Fields {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Projected(&Projection::everything()).deserialize(deserializer)
    }
}

/// Like a JSON object's: `Null` for a field that is not there.
impl std::ops::Index<&str> for Fields {
    type Output = Value;
    fn index(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

/// The same fields and values, whatever the order.
impl PartialEq<Map<String, Value>> for Fields {
    fn eq(&self, object: &Map<String, Value>) -> bool {
        self.0.len() == object.len() && self.0.iter().all(|(k, v)| object.get(k.name()) == Some(v))
    }
}

/// The seed that parses one JSON object into the [`Fields`] a projection keeps.
struct Projected<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for Projected<'_> {
    type Value = Fields;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Projected<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields(Vec::new());
        while let Some(name) = map.next_key::<Name<'de>>()? {
            match self.0.key_of(name.as_str()) {
                Some(key) => fields.insert(key, map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// A field name as the parser gives it: borrowed from the input unless it had escapes.
enum Name<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            Self::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name::Owned(s.to_owned()))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::FieldPath;
    use serde_json::json;

    #[test]
    fn only_the_projected_fields_are_kept_and_the_rest_must_still_be_json() {
        let wanted = [FieldPath::new("steps"), FieldPath::new("sleep.deep")];
        let projection = Projection::of(&wanted);
        let line = br#"{"id":"a","steps":5,"big":{"x":[1,2,{"y":null}]},"sleep":{"deep":3},"st\u0065ps":6}"#;
        let fields = Fields::parse(line, &projection).unwrap();
        // The escaped name is the same field: the later value wins, as in a JSON object.
        assert_eq!(
            fields,
            json!({"steps": 6, "sleep": {"deep": 3}})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(fields["id"], Value::Null);
        assert!(Fields::parse(br#"{"steps":5,"big":[1,}"#, &projection).is_err());
        assert!(Fields::parse(br#"{"steps":5} x"#, &projection).is_err());
        let not_object = Fields::parse(b"[1,2]", &projection).unwrap_err();
        assert_eq!(not_object.classify(), serde_json::error::Category::Data);
    }

    #[test]
    fn everything_keeps_every_field() {
        let object = json!({"a": 1, "b": "two", "c": [3]})
            .as_object()
            .unwrap()
            .clone();
        let line = serde_json::to_vec(&object).unwrap();
        let fields = Fields::parse(&line, &Projection::everything()).unwrap();
        assert_eq!(fields, object);
        assert_eq!(fields.to_map(), object);
    }
}
