//! The configuration file exactly as written: serde structs that refuse unknown keys. Nothing
//! here is trusted; [`super::Config::from_raw`] checks it and builds the typed configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub exist: RawExist,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub source: Vec<RawSource>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub name: String,
    pub kind: String,
    pub date_field: String,
    pub tz_offset_field: Option<String>,
    pub every: Option<String>,
    // http
    pub url: Option<String>,
    pub token_env: Option<String>,
    pub basic_user_env: Option<String>,
    pub id_field: Option<String>,
    pub updated_field: Option<String>,
    pub page_limit: Option<i64>,
    pub window_days: Option<i64>,
    pub params: Option<BTreeMap<String, String>>,
    // file
    pub path: Option<String>,
    pub format: Option<String>,
    // command
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
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
