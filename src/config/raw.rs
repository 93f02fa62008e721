//! The configuration file exactly as written: serde structs that refuse unknown keys. Nothing
//! here is trusted; [`super::Config::from_raw`] checks it and builds the typed configuration.
//!
//! A `[[source]]` is read in two steps: its `kind` first, then the whole table as that kind's own
//! struct, so each kind lists exactly the keys it takes (one place to add a key) and an unknown or
//! misplaced key is refused with its line.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub exist: RawExist,
    #[serde(default)]
    pub agent: RawAgent,
    /// Read again, table by table, as [`RawSource`] once each table's kind is known.
    #[serde(default)]
    pub source: Vec<IgnoredAny>,
    #[serde(default)]
    pub attribute: Vec<RawAttribute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExist {
    pub base_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub redirect_uri: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub schedule: Option<String>,
    pub resync_days: Option<i64>,
    pub day_starts: Option<String>,
    pub token_store: Option<String>,
    pub state_dir: Option<String>,
    pub listen: Option<String>,
    pub notify_secret: Option<String>,
    pub notify_secret_env: Option<String>,
}

/// The kind of a `[[source]]`, read before the rest of its table.
#[derive(Debug, Deserialize)]
pub(super) struct RawKind {
    pub kind: String,
}

/// Declares the table of one source kind: the keys every kind takes, then its own.
macro_rules! source_table {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            pub name: String,
            #[allow(dead_code, reason = "read before the table, as RawKind")]
            pub kind: String,
            pub date_field: String,
            pub tz_offset_field: Option<String>,
            pub id_field: Option<String>,
            pub every: Option<String>,
            $(pub $field: $ty,)*
        }

        impl $name {
            fn common(&self) -> Common<'_> {
                Common {
                    name: &self.name,
                    date_field: &self.date_field,
                    tz_offset_field: self.tz_offset_field.as_deref(),
                    id_field: self.id_field.as_deref(),
                    every: self.every.as_deref(),
                }
            }
        }
    };
}

/// The keys every kind of source takes.
pub(super) struct Common<'a> {
    pub name: &'a str,
    pub date_field: &'a str,
    pub tz_offset_field: Option<&'a str>,
    pub id_field: Option<&'a str>,
    pub every: Option<&'a str>,
}

source_table!(
    /// `kind = "http"`.
    RawHttp {
        url: String,
        token_env: Option<String>,
        basic_user_env: Option<String>,
        updated_field: Option<String>,
        page_limit: Option<i64>,
        window_days: Option<i64>,
        max_pages: Option<i64>,
        timeout: Option<String>,
        params: Option<BTreeMap<String, String>>,
    }
);

source_table!(
    /// `kind = "file"`.
    RawFile {
        path: String,
        format: Option<String>,
    }
);

source_table!(
    /// `kind = "command"`.
    RawCommand {
        command: Vec<String>,
        format: Option<String>,
        timeout: Option<String>,
    }
);

/// A `[[source]]`, as its kind reads it.
#[derive(Debug)]
pub(super) enum RawSource {
    Http(RawHttp),
    File(RawFile),
    Command(RawCommand),
}

impl RawSource {
    /// The kinds, as written, for messages.
    pub const KINDS: &'static [&'static str] = &["http", "file", "command"];

    /// The keys every kind takes.
    pub fn common(&self) -> Common<'_> {
        match self {
            Self::Http(s) => s.common(),
            Self::File(s) => s.common(),
            Self::Command(s) => s.common(),
        }
    }

    /// The keys a source of `kind` takes, as its struct declares them.
    pub fn keys(kind: &str) -> &'static [&'static str] {
        let mut grab = FieldNames(&[]);
        // The grabber fails on purpose once it has the names; nothing else is read.
        let _ = Self::read(kind, &mut grab);
        grab.0
    }

    /// Reads a source table of `kind` through `de`; `None` for an unknown kind.
    pub fn read<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        Some(match kind {
            "http" => RawHttp::deserialize(de).map(Self::Http),
            "file" => RawFile::deserialize(de).map(Self::File),
            "command" => RawCommand::deserialize(de).map(Self::Command),
            _ => return None,
        })
    }
}

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
}

/// A deserializer that only learns the field names a derived struct asks for, so that messages
/// can list the keys of each kind without a hand-kept list.
struct FieldNames(&'static [&'static str]);

#[derive(Debug)]
struct Grabbed;

impl std::fmt::Display for Grabbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names taken")
    }
}

impl std::error::Error for Grabbed {}

impl serde::de::Error for Grabbed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Grabbed
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = Grabbed;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Grabbed> {
        Err(Grabbed)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Grabbed> {
        self.0 = fields;
        Err(Grabbed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
