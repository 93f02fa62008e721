//! OAuth2 with Exist: the authorization-code login through a loopback listener, and the access
//! token every API call uses, refreshed only when it is about to expire or after a 401.
//!
//! A refresh rotates both tokens, so it runs under a cross-process lock, re-reads the stored pair
//! first (another process may have refreshed already), and stores the new pair before using it.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::tokens::{TokenPair, TokenStore, TokenStoreError};
use crate::config::ExistConfig;
use crate::error::{error_chain, Classify, ErrorKind};
use crate::secret::Secret;
use crate::store::lock::{FileLock, TOKEN_LOCK};
use crate::store::StoreError;

/// Refresh when the access token expires within this margin.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::days(1);

/// How long `login` waits for the browser to come back.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Why there is no usable access token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Nothing stored.
    #[error("no Exist token is stored")]
    NoToken,
    /// Exist refused the token or the refresh token.
    #[error("Exist refused the stored token ({0})")]
    Refused(String),
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] TokenStoreError),
    /// The refresh lock could not be taken.
    #[error(transparent)]
    Lock(#[from] StoreError),
    /// The OAuth app is not configured well enough for this.
    #[error("{0}")]
    Config(String),
    /// Exist could not be reached, or answered with a server error.
    #[error("could not reach Exist's token endpoint: {0}; the stored tokens are unchanged")]
    Network(String),
    /// The login did not complete.
    #[error("{0}")]
    Login(String),
}

impl Classify for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoToken | Self::Refused(_) => ErrorKind::Auth,
            Self::Network(_) => ErrorKind::Temporary,
            Self::Config(_) => ErrorKind::Config,
            Self::Lock(l) => l.kind(),
            Self::Store(_) | Self::Login(_) => ErrorKind::Failed,
        }
    }

    fn fix(&self) -> Option<String> {
        match self {
            Self::NoToken | Self::Refused(_) => {
                Some("run `exist-agent login` to authorize again".into())
            }
            Self::Network(_) => Some("try again later".into()),
            Self::Lock(l) => l.fix(),
            Self::Store(s) => s.fix(),
            Self::Config(_) | Self::Login(_) => None,
        }
    }
}

/// An HTTP client for token requests: no redirects (the oauth2 crate's advice against SSRF).
fn token_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a TLS backend is compiled in")
}

fn oauth_client(config: &ExistConfig) -> Result<OAuthClient, AuthError> {
    let secret = config.client_secret.resolve().map_err(AuthError::Config)?;
    let join = |path: &str| {
        config
            .base_url
            .join(path)
            .map_err(|e| AuthError::Config(format!("exist.base_url: {e}")))
    };
    Ok(BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
        // Exist reads the client secret from the form body, not HTTP Basic.
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::from_url(join("oauth2/authorize")?))
        .set_token_uri(TokenUrl::from_url(join("oauth2/access_token")?))
        .set_redirect_uri(RedirectUrl::from_url(config.redirect_uri.clone())))
}

fn pair_from<T: TokenResponse>(token: &T, fallback_scopes: &[String]) -> TokenPair {
    TokenPair {
        access_token: Secret::new(token.access_token().secret().clone()),
        refresh_token: token
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        expires_at: token
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d),
        scopes: token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| fallback_scopes.to_vec()),
    }
}

fn explain_token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => AuthError::Refused("the refresh token is no longer valid".into()),
            BasicErrorResponseType::InvalidClient => AuthError::Config(
                "Exist refused the client id or secret; check [exist] client_id and the client secret".into(),
            ),
            other => AuthError::Refused(format!("token endpoint said {other}")),
        },
        RequestTokenError::Request(e) => AuthError::Network(error_chain(&e)),
        RequestTokenError::Parse(e, _) => AuthError::Network(format!("unexpected reply: {e}")),
        RequestTokenError::Other(e) => AuthError::Network(e),
    }
}

/// The access token for API calls, refreshed only when needed.
pub struct Auth {
    config: ExistConfig,
    store: TokenStore,
    lock_path: PathBuf,
    http: reqwest::Client,
    current: tokio::sync::Mutex<Option<TokenPair>>,
}

impl Auth {
    /// Tokens from `store`; refreshes are serialized through a lock file in `state_dir`.
    pub fn new(config: ExistConfig, store: TokenStore, state_dir: &std::path::Path) -> Self {
        Self {
            config,
            store,
            lock_path: state_dir.join(TOKEN_LOCK),
            http: token_http_client(),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The token store in use.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The access token to use now: the stored one, refreshed first if it expires within a day.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut current = self.current.lock().await;
        let pair = match current.take() {
            Some(pair) => pair,
            None => self.load().await?.ok_or(AuthError::NoToken)?,
        };
        let pair = if pair.expires_within(Utc::now(), REFRESH_MARGIN) {
            self.refresh(&pair).await?
        } else {
            pair
        };
        let token = pair.access_token.clone();
        *current = Some(pair);
        Ok(token)
    }

    /// Exist answered 401 to `rejected`: refresh (unless another process already did) and
    /// return the token to retry with.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        let mut current = self.current.lock().await;
        let pair = match current.take() {
            Some(pair) if pair.access_token != *rejected => pair,
            Some(pair) => self.refresh(&pair).await?,
            None => {
                let stored = self.load().await?.ok_or(AuthError::NoToken)?;
                if stored.access_token == *rejected {
                    self.refresh(&stored).await?
                } else {
                    stored
                }
            }
        };
        let token = pair.access_token.clone();
        *current = Some(pair);
        Ok(token)
    }

    async fn load(&self) -> Result<Option<TokenPair>, AuthError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.load())
            .await
            .expect("token store thread panicked")?)
    }

    /// Refreshes `seen` under the cross-process lock, unless the stored pair already moved on.
    async fn refresh(&self, seen: &TokenPair) -> Result<TokenPair, AuthError> {
        let lock_path = self.lock_path.clone();
        let _lock = tokio::task::spawn_blocking(move || {
            FileLock::acquire(&lock_path, Duration::from_secs(120), |pid| {
                tracing::info!("waiting for another exist-agent process (pid {pid}) that is refreshing the token")
            })
        })
        .await
        .expect("lock thread panicked")?;
        let stored = self.load().await?.ok_or(AuthError::NoToken)?;
        if stored.access_token != seen.access_token {
            tracing::debug!("another process refreshed the token already; using its pair");
            return Ok(stored);
        }
        let Some(refresh_token) = &stored.refresh_token else {
            return Err(AuthError::Refused(
                "the token has expired and cannot be refreshed (no refresh token)".into(),
            ));
        };
        let client = oauth_client(&self.config)?;
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(explain_token_error)?;
        let mut pair = pair_from(&response, &stored.scopes);
        if pair.refresh_token.is_none() {
            pair.refresh_token = stored.refresh_token.clone();
        }
        // The old pair is now dead at Exist: the new one must be durable before anything uses it.
        let store = self.store.clone();
        let to_save = pair.clone();
        tokio::task::spawn_blocking(move || store.save(&to_save))
            .await
            .expect("token store thread panicked")?;
        tracing::info!(expires_at = ?pair.expires_at, "Exist token refreshed and stored");
        Ok(pair)
    }
}

/// The result of a completed login.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The stored pair.
    pub pair: TokenPair,
    /// Where it was stored.
    pub stored_in: String,
}

/// Runs the authorization-code flow: listens on the redirect URI, sends the user to Exist's
/// authorize page (printing the URL when `open_browser` is false or fails), checks `state`,
/// exchanges the code and stores the pair. `show` receives the lines meant for the user.
pub async fn login(
    config: &ExistConfig,
    scopes: &[String],
    store: &TokenStore,
    open_browser: bool,
    mut show: impl FnMut(&str),
) -> Result<LoginOutcome, AuthError> {
    let client = oauth_client(config)?;
    let listener = bind_redirect(&config.redirect_uri).await?;
    let mut request = client.authorize_url(CsrfToken::new_random);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state) = request.url();
    let opened = open_browser && open_in_browser(url.as_str());
    if opened {
        show(&format!(
            "Opened your browser to authorize exist-agent. If nothing happened, open:\n  {url}"
        ));
    } else {
        show(&format!(
            "Open this URL in a browser to authorize exist-agent:\n  {url}"
        ));
    }
    show(&format!(
        "Waiting for Exist to redirect to {} ...",
        config.redirect_uri
    ));
    let reply = tokio::time::timeout(
        LOGIN_TIMEOUT,
        wait_for_redirect(listener, &config.redirect_uri),
    )
    .await
    .map_err(|_| {
        AuthError::Login(format!(
            "no reply from the browser within {} minutes; run `exist-agent login` again",
            LOGIN_TIMEOUT.as_secs() / 60
        ))
    })??;
    let code = check_reply(&reply, state.secret())?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&token_http_client())
        .await
        .map_err(explain_token_error)?;
    let pair = pair_from(&response, scopes);
    let missing: Vec<_> = scopes.iter().filter(|s| !pair.scopes.contains(s)).collect();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "Exist granted fewer scopes than the configuration needs"
        );
    }
    let (to_store, to_save) = (store.clone(), pair.clone());
    tokio::task::spawn_blocking(move || to_store.save(&to_save))
        .await
        .expect("token store thread panicked")?;
    Ok(LoginOutcome {
        pair,
        stored_in: store.describe(),
    })
}

/// Stores a token obtained elsewhere (e.g. an Exist app's personal token).
pub fn store_given_token(
    store: &TokenStore,
    token: &str,
    scopes: &[String],
) -> Result<TokenPair, AuthError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Login(
            "the token given with --token is empty".into(),
        ));
    }
    let pair = TokenPair {
        access_token: Secret::new(token),
        refresh_token: None,
        expires_at: None,
        scopes: scopes.to_vec(),
    };
    store.save(&pair)?;
    Ok(pair)
}

/// What the browser brought back to the redirect URI.
#[derive(Debug, Default)]
struct RedirectReply {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn check_reply(reply: &RedirectReply, expected_state: &str) -> Result<String, AuthError> {
    if let Some(error) = &reply.error {
        return Err(AuthError::Login(format!(
            "Exist refused the authorization ({error}); run `exist-agent login` again"
        )));
    }
    // `state` guards against forged redirects: an absent or different one is refused.
    match reply.state.as_deref() {
        Some(s) if s == expected_state => {}
        _ => {
            return Err(AuthError::Login(
                "the reply's `state` does not match this login (a stale or forged redirect); nothing was stored; run `exist-agent login` again".into(),
            ))
        }
    }
    reply.code.clone().ok_or_else(|| {
        AuthError::Login(
            "the redirect carried no authorization code; run `exist-agent login` again".into(),
        )
    })
}

async fn bind_redirect(redirect: &Url) -> Result<tokio::net::TcpListener, AuthError> {
    let port = redirect.port_or_known_default().unwrap_or(80);
    let host = match redirect.host_str() {
        Some("localhost") | None => "127.0.0.1".to_owned(),
        Some(h) => h.trim_matches(|c| c == '[' || c == ']').to_owned(),
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await.map_err(|e| {
        AuthError::Login(format!(
            "cannot listen on {host}:{port} for the redirect ({e}); free the port or change exist.redirect_uri (and the app's registered redirect URI)"
        ))
    })?;
    Ok(listener)
}

/// Serves the redirect URI until one request to its path arrives; answers the browser kindly.
async fn wait_for_redirect(
    listener: tokio::net::TcpListener,
    redirect: &Url,
) -> Result<RedirectReply, AuthError> {
    use axum::extract::{Query, State};
    use axum::response::Html;
    use std::collections::HashMap;

    type Tx =
        std::sync::Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<RedirectReply>>>>;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx: Tx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(tx)));
    let handler = |State(tx): State<Tx>, Query(q): Query<HashMap<String, String>>| async move {
        let reply = RedirectReply {
            code: q.get("code").cloned(),
            state: q.get("state").cloned(),
            error: q.get("error").cloned(),
        };
        let ok = reply.error.is_none() && reply.code.is_some();
        if let Some(tx) = tx.lock().await.take() {
            let _ = tx.send(reply);
        }
        Html(if ok {
            "<h1>exist-agent</h1><p>Authorization received. You can close this tab.</p>"
        } else {
            "<h1>exist-agent</h1><p>Authorization failed; see the terminal.</p>"
        })
    };
    let path = redirect.path().to_owned();
    let app = axum::Router::new()
        .route(&path, axum::routing::get(handler))
        .with_state(tx);
    let server = axum::serve(listener, app);
    tokio::select! {
        reply = rx => reply.map_err(|_| AuthError::Login("the redirect listener stopped".into())),
        result = server => Err(AuthError::Login(format!("the redirect listener failed: {result:?}"))),
    }
}

fn open_in_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked() {
        let ok = RedirectReply {
            code: Some("c".into()),
            state: Some("s".into()),
            error: None,
        };
        assert_eq!(check_reply(&ok, "s").unwrap(), "c");
        assert!(check_reply(&ok, "other")
            .unwrap_err()
            .to_string()
            .contains("does not match"));
        let missing_state = RedirectReply {
            state: None,
            ..RedirectReply {
                code: Some("c".into()),
                ..Default::default()
            }
        };
        assert!(check_reply(&missing_state, "s").is_err());
        let denied = RedirectReply {
            error: Some("access_denied".into()),
            ..Default::default()
        };
        assert!(check_reply(&denied, "s")
            .unwrap_err()
            .to_string()
            .contains("access_denied"));
    }
}
