//! OAuth2 for data sources (Withings, Fitbit, Strava, ...): `exist-agent login --source NAME`
//! runs the authorization-code flow through the same loopback listener as Exist's login (with
//! `state` checked and a PKCE challenge), and the tokens live in their own entry of the same
//! store (keyring, or a 0600 file named after the source).
//!
//! As with Exist's tokens, and by the same [`Refresher`]: refreshed only when they expire (or
//! the provider answers 401), one refresh at a time across processes (a lock file per source),
//! and the new pair stored before it is used, because providers rotate refresh tokens: the old
//! one dies with the refresh.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::config::{OAuth2Config, TokenStoreKind};
use crate::error::{Classify, ErrorKind};
use crate::exist::TokenLock;
use exist_api::auth::{self as exist_auth, LockFailure};
use exist_api::refresh::{Exchange, RefreshFailure, Refresher};
use exist_api::tokens::{TokenPair, TokenStore, TokenStoreError};
use exist_api::Secret;

/// Refresh a source's token when it expires within this margin (providers' access tokens last
/// hours, not days, so Exist's margin of a day would refresh every run).
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// How long `login --source` waits for the browser.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a source's token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceAuthError {
    /// Never authorized.
    #[error("source \"{source_name}\" is not authorized yet")]
    NoToken {
        /// The source.
        source_name: String,
    },
    /// The provider refused the token or the refresh token (revoked, expired).
    #[error("source \"{source_name}\": the provider refused the stored token ({detail})")]
    Refused {
        /// The source.
        source_name: String,
        /// The provider's words.
        detail: String,
    },
    /// The token endpoint could not be reached, or answered with a server error.
    #[error("source \"{source_name}\": cannot reach the token endpoint ({detail}); the stored tokens are unchanged")]
    Network {
        /// The source.
        source_name: String,
        /// What failed.
        detail: String,
    },
    /// The login did not complete.
    #[error("source \"{source_name}\": {detail}")]
    Login {
        /// The source.
        source_name: String,
        /// What happened.
        detail: String,
    },
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] TokenStoreError),
    /// The refresh lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockFailure),
}

impl SourceAuthError {
    fn source_name(&self) -> Option<&str> {
        match self {
            Self::NoToken { source_name }
            | Self::Refused { source_name, .. }
            | Self::Network { source_name, .. }
            | Self::Login { source_name, .. } => Some(source_name),
            Self::Store(_) | Self::Lock(_) => None,
        }
    }
}

impl Classify for SourceAuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoToken { .. } | Self::Refused { .. } => ErrorKind::Auth,
            Self::Network { .. } => ErrorKind::Temporary,
            Self::Lock(l) if l.busy => ErrorKind::Temporary,
            Self::Store(e) => e.kind(),
            Self::Login { .. } | Self::Lock(_) => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::NoToken { .. } | Self::Refused { .. } | Self::Login { .. } => {
                self.source_name().map(|name| {
                    format!(
                        "run `exist-agent login --source {name}`; the other sources keep syncing"
                    )
                })
            }
            Self::Network { .. } => Some("nothing: the next run tries again".into()),
            Self::Store(e) => e.fix(),
            Self::Lock(_) => None,
        }
    }
}

/// The token store entry of source `name`: its own keyring account, or its own 0600 file.
pub fn source_token_store(
    kind: TokenStoreKind,
    state_dir: &Path,
    name: &str,
    config: &OAuth2Config,
) -> Result<TokenStore, TokenStoreError> {
    let host = config.token_url.host_str().unwrap_or("provider");
    TokenStore::open_as(
        kind,
        state_dir,
        &format!("source:{name}@{host}#{}", config.client_id),
        &format!("tokens-{name}.json"),
    )
}

/// The lock that keeps two processes from refreshing source `name`'s token at once.
fn refresh_lock(state_dir: &Path, name: &str) -> TokenLock {
    TokenLock::at(PathBuf::from(state_dir).join(format!("token-{name}.lock")))
}

/// A source's access token, refreshed only when needed (see [`Refresher`]).
#[derive(Debug)]
pub struct SourceAuth(Refresher<SourceExchange>);

/// A provider's token request, as the source's configuration describes it.
struct SourceExchange {
    name: String,
    config: OAuth2Config,
    http: reqwest::Client,
}

impl Exchange for SourceExchange {
    type Error = SourceAuthError;

    async fn exchange(
        &self,
        _stored: &TokenPair,
        refresh_token: &Secret,
    ) -> Result<TokenPair, SourceAuthError> {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose().to_owned()),
        ];
        exchange(&self.http, &self.name, &self.config, form).await
    }

    fn failure(&self, failure: RefreshFailure) -> SourceAuthError {
        let source_name = self.name.clone();
        match failure {
            RefreshFailure::NoToken => SourceAuthError::NoToken { source_name },
            RefreshFailure::NoRefreshToken => SourceAuthError::Refused {
                source_name,
                detail: "the token has expired and there is no refresh token".into(),
            },
            RefreshFailure::Store(e) => SourceAuthError::Store(e),
            RefreshFailure::Lock(e) => SourceAuthError::Lock(e),
        }
    }

    fn whose(&self) -> String {
        format!("source {:?}", self.name)
    }
}

impl SourceAuth {
    /// The tokens of source `name` in `store`; refreshes lock a file in `state_dir`.
    pub fn new(name: &str, config: &OAuth2Config, store: TokenStore, state_dir: &Path) -> Self {
        let exchange = SourceExchange {
            name: name.to_owned(),
            config: config.clone(),
            http: token_client(),
        };
        let lock = std::sync::Arc::new(refresh_lock(state_dir, name));
        Self(Refresher::new(exchange, store, lock, REFRESH_MARGIN))
    }

    /// The token to use now: the stored one, refreshed first when it is about to expire.
    pub async fn access_token(&self) -> Result<Secret, SourceAuthError> {
        self.0.access_token().await
    }

    /// The provider answered 401 to `rejected`: refresh (unless another process already did)
    /// and return the token to retry with.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, SourceAuthError> {
        self.0.after_unauthorized(rejected).await
    }
}

fn token_client() -> reqwest::Client {
    // No redirects from a token endpoint (the oauth2 crate's advice against SSRF).
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// One token request: `form` plus the client's credentials and the provider's extra fields;
/// the reply's token object read where `token_reply` points.
async fn exchange(
    http: &reqwest::Client,
    name: &str,
    config: &OAuth2Config,
    mut form: Vec<(&str, String)>,
) -> Result<TokenPair, SourceAuthError> {
    form.push(("client_id", config.client_id.clone()));
    if let Ok(secret) = config.client_secret.resolve() {
        form.push(("client_secret", secret.expose().to_owned()));
    }
    for (k, v) in &config.token_params {
        form.push((k.as_str(), v.clone()));
    }
    let network = |detail: String| SourceAuthError::Network {
        source_name: name.to_owned(),
        detail,
    };
    let response = http
        .post(config.token_url.clone())
        .form(&form)
        .send()
        .await
        .map_err(|e| network(crate::error::error_chain(&e)))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| network(crate::error::error_chain(&e)))?;
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(network(format!("{status}")));
    }
    let reply: Value = serde_json::from_str(&body).map_err(|_| {
        network(format!(
            "{status} with a reply that is not JSON: {}",
            body.chars().take(120).collect::<String>()
        ))
    })?;
    let token = match &config.token_reply {
        Some(pointer) => reply.pointer(pointer),
        None => Some(&reply),
    };
    let access = token
        .and_then(|t| t.get("access_token"))
        .and_then(Value::as_str);
    match access {
        Some(access) if status.is_success() => {
            let token = token.unwrap_or(&reply);
            let text = |k: &str| token.get(k).and_then(Value::as_str).map(str::to_owned);
            let expires_in = token.get("expires_in").and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
            Ok(TokenPair {
                access_token: Secret::new(access.to_owned()),
                refresh_token: text("refresh_token").map(Secret::new),
                expires_at: expires_in.map(|s| Utc::now() + chrono::Duration::seconds(s)),
                scopes: text("scope")
                    .map(|s| {
                        s.split([' ', ','])
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }
        _ => {
            // OAuth's {"error", "error_description"}, or a provider's {"status", "error"}.
            let words = ["error_description", "error", "message"]
                .iter()
                .find_map(|k| reply.get(*k).and_then(Value::as_str))
                .unwrap_or("no token in the reply");
            let code = reply
                .get("status")
                .map(|s| format!(" (status {s})"))
                .unwrap_or_default();
            Err(SourceAuthError::Refused {
                source_name: name.to_owned(),
                detail: format!("{words}{code}"),
            })
        }
    }
}

/// Runs the authorization-code flow for source `name` and stores the pair. `show` receives the
/// lines meant for the user.
pub async fn login(
    name: &str,
    config: &OAuth2Config,
    store: &TokenStore,
    open_browser: bool,
    mut show: impl FnMut(&str),
) -> Result<TokenPair, SourceAuthError> {
    let fail = |detail: String| SourceAuthError::Login {
        source_name: name.to_owned(),
        detail,
    };
    let listener = exist_auth::bind_redirect(config.redirect_uri.url())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let state = oauth2::CsrfToken::new_random().secret().clone();
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    let mut url = config.authorize_url.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", config.redirect_uri.as_str())
            .append_pair("state", &state);
        if !config.scopes.is_empty() {
            q.append_pair("scope", &config.scopes.join(&config.scope_separator));
        }
        if config.pkce {
            q.append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", challenge.method().as_str());
        }
    }
    if !(open_browser && exist_auth::open_in_browser(url.as_str())) {
        show(&format!(
            "Open this URL to authorize the source \"{name}\":"
        ));
    }
    show(url.as_str());
    show(&format!(
        "Waiting for the provider to redirect to {} ...",
        config.redirect_uri
    ));
    let reply = tokio::time::timeout(
        LOGIN_TIMEOUT,
        exist_auth::wait_for_redirect(listener, config.redirect_uri.url()),
    )
    .await
    .map_err(|_| {
        fail(format!(
            "no reply from the browser within {} minutes; if the provider showed an error page, the redirect URI registered for your app and redirect_uri ({}) are not identical",
            LOGIN_TIMEOUT.as_secs() / 60,
            config.redirect_uri
        ))
    })?
    .map_err(|e| fail(e.to_string()))?;
    if let Some(error) = &reply.error {
        return Err(fail(if error == "access_denied" {
            "the authorization was declined in the browser".into()
        } else {
            format!("the provider refused the authorization ({error}); check the client id, the scopes and the redirect URI")
        }));
    }
    if reply.state.as_deref() != Some(state.as_str()) {
        return Err(fail(
            "the reply's `state` does not match this login (a stale or forged redirect); nothing was stored".into(),
        ));
    }
    let code = reply
        .code
        .ok_or_else(|| fail("the redirect carried no authorization code".into()))?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", config.redirect_uri.as_str().to_owned()),
    ];
    if config.pkce {
        form.push(("code_verifier", verifier.secret().clone()));
    }
    let mut pair = exchange(&token_client(), name, config, form).await?;
    if pair.scopes.is_empty() {
        pair.scopes = config.scopes.clone();
    }
    let store = store.clone();
    let to_save = pair.clone();
    tokio::task::spawn_blocking(move || store.save(&to_save))
        .await
        .map_err(|e| fail(format!("the token store thread failed: {e}")))??;
    Ok(pair)
}
