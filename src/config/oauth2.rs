//! `auth = { oauth2 = { ... } }` on an `http` source: a provider's OAuth2 authorization-code flow,
//! authorized once with `exist-agent login --source NAME`.
//!
//! Providers differ around the standard: Withings wants `action=requesttoken` in every token
//! request and answers inside `{"status": 0, "body": {...}}`; Fitbit and Strava separate scopes
//! with a comma or a space. Those differences are keys (`token_params`, `token_reply`,
//! `scope_separator`), not code per provider.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::error::{Locator, Seg};
use super::{parse_url, AgentConfig, ConfigError, SecretSource, TokenStoreKind};
use exist_api::auth::RedirectUri;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth2 {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub scope_separator: Option<String>,
    pub redirect_uri: Option<String>,
    pub pkce: Option<bool>,
    pub token_params: Option<BTreeMap<String, String>>,
    pub token_reply: Option<String>,
}

/// A provider's OAuth2 settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Config {
    /// Where the user is sent to allow access.
    pub authorize_url: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token_url: Url,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The app's client secret, from the environment (none for a public client).
    pub client_secret: SecretSource,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// How the scopes are joined in the authorize URL (" " by default, "," for Withings).
    pub scope_separator: String,
    /// The redirect URI registered with the provider, sent exactly as written.
    pub redirect_uri: RedirectUri,
    /// Whether to send a PKCE challenge (RFC 7636); on by default, since providers that do not
    /// know it ignore it.
    pub pkce: bool,
    /// Extra form fields of every token request (Withings: `action = "requesttoken"`).
    pub token_params: BTreeMap<String, String>,
    /// A JSON Pointer to the token object in the token reply (Withings: "/body").
    pub token_reply: Option<String>,
    /// Where the source's tokens are kept: the agent's token store kind, in its state directory.
    pub token_store: TokenStoreKind,
    /// The agent's state directory (the token file and the refresh lock).
    pub state_dir: PathBuf,
}

/// The redirect URI when none is written: `login --source` listens there.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:8000/";

pub(super) fn check(
    loc: &Locator<'_>,
    at: &dyn Fn(&'static str) -> Vec<Seg<'static>>,
    raw: &RawOAuth2,
    agent: &AgentConfig,
) -> Result<OAuth2Config, ConfigError> {
    let authorize_url = parse_url(loc, &at("authorize_url"), &raw.authorize_url)?;
    let token_url = parse_url(loc, &at("token_url"), &raw.token_url)?;
    if raw.client_id.trim().is_empty() {
        return Err(loc.error(
            &at("client_id"),
            "the client id is empty",
            "write the client id the provider shows for your app",
        ));
    }
    let written = raw.redirect_uri.as_deref().unwrap_or(DEFAULT_REDIRECT_URI);
    parse_url(loc, &at("redirect_uri"), written)?;
    let redirect_uri = RedirectUri::parse(written).map_err(|_| {
        loc.error(
            &at("redirect_uri"),
            format!("\"{written}\" is not a URL"),
            "write the redirect URI registered with the provider, e.g. \"http://localhost:8000/\"",
        )
    })?;
    let loopback = redirect_uri
        .url()
        .host_str()
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
    if !loopback {
        return Err(loc.error(
            &at("redirect_uri"),
            format!("{redirect_uri} is not a loopback address; `login --source` listens on it"),
            "register http://localhost:PORT/ (or 127.0.0.1) with the provider and write it here",
        ));
    }
    if let Some(pointer) = &raw.token_reply {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(loc.error(
                &at("token_reply"),
                format!("\"{pointer}\" is not a JSON Pointer"),
                "write it from the reply's root, e.g. \"/body\"",
            ));
        }
    }
    Ok(OAuth2Config {
        authorize_url,
        token_url,
        client_id: raw.client_id.clone(),
        client_secret: raw
            .client_secret_env
            .clone()
            .map_or(SecretSource::None, SecretSource::Env),
        scopes: raw.scopes.clone().unwrap_or_default(),
        scope_separator: raw.scope_separator.clone().unwrap_or_else(|| " ".into()),
        redirect_uri,
        pkce: raw.pkce.unwrap_or(true),
        token_params: raw.token_params.clone().unwrap_or_default(),
        token_reply: raw.token_reply.clone().filter(|p| !p.is_empty()),
        token_store: agent.token_store,
        state_dir: agent.state_dir.clone(),
    })
}
