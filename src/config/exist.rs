//! The `[exist]` table: how to reach Exist and the registered app.

use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use super::error::{Locator, Seg};
use super::{is_loopback, parse_url, ConfigError, SecretSource, DEFAULT_BASE_URL};
use exist_api::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExist {
    pub base_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub redirect_uri: Option<String>,
    pub timezone: Option<String>,
    pub verify: Option<bool>,
}

/// The `[exist]` table.
#[derive(Debug, Clone)]
pub struct ExistConfig {
    /// Exist's host, without the `/api/2/` part.
    pub base_url: Url,
    /// The OAuth client id of the user's registered app.
    pub client_id: String,
    /// Where the client secret comes from.
    pub client_secret: SecretSource,
    /// The loopback address `login` listens on and Exist redirects to.
    pub redirect_uri: exist_api::auth::RedirectUri,
    /// The user's timezone, when configured; otherwise the Exist profile's.
    pub timezone: Option<Tz>,
    /// Whether `login` also asks the read scopes of the configured groups, so that `verify` can
    /// read back what Exist holds.
    pub verify: bool,
}

impl ExistConfig {
    /// The registered Exist app, as the API client needs it.
    pub fn app(&self) -> exist_api::auth::App {
        exist_api::auth::App {
            base_url: self.base_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

pub(super) fn check(loc: &Locator<'_>, raw: RawExist) -> Result<ExistConfig, ConfigError> {
    let at = |k| [Seg::Key("exist"), Seg::Key(k)];
    let base_url = parse_url(
        loc,
        &at("base_url"),
        raw.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
    )?;
    // Kept exactly as written: Exist compares it with the registered one character for character.
    let written = raw
        .redirect_uri
        .as_deref()
        .unwrap_or("http://localhost:8000/");
    parse_url(loc, &at("redirect_uri"), written)?;
    let redirect_uri = exist_api::auth::RedirectUri::parse(written).map_err(|_| {
        loc.error(
            &at("redirect_uri"),
            "is not a URL",
            "write e.g. \"http://localhost:8000/\"",
        )
    })?;
    if !is_loopback(redirect_uri.url()) {
        return Err(loc.error(
            &at("redirect_uri"),
            format!("{redirect_uri} is not a loopback address; login listens on it"),
            "use http://localhost:PORT/ or http://127.0.0.1:PORT/ and register the same URI in your Exist app",
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(loc.error(
            &at("client_id"),
            "is empty",
            "copy your Exist app's client id",
        ));
    }
    let client_secret = match (raw.client_secret, raw.client_secret_env) {
        (Some(_), Some(_)) => {
            return Err(loc.error(
                &at("client_secret"),
                "both client_secret and client_secret_env are set",
                "keep one; client_secret_env keeps the secret out of the file",
            ))
        }
        (Some(s), None) => SecretSource::Inline(Secret::new(s)),
        (None, Some(var)) => SecretSource::Env(var),
        (None, None) => SecretSource::None,
    };
    let timezone = match raw.timezone {
        None => None,
        Some(tz) => Some(tz.parse::<Tz>().map_err(|_| {
            loc.error(
                &at("timezone"),
                format!("\"{tz}\" is not an IANA timezone"),
                "write a name such as \"Europe/Berlin\" or \"America/New_York\", or remove it to use your Exist profile's",
            )
        })?),
    };
    Ok(ExistConfig {
        base_url,
        client_id: raw.client_id,
        client_secret,
        redirect_uri,
        timezone,
        verify: raw.verify.unwrap_or(false),
    })
}
