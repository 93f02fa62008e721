//! OAuth2 with Exist: the authorization-code login through a loopback listener, and the access
//! token every API call uses, refreshed only when it is about to expire or after a 401.
//!
//! A refresh rotates both tokens, so it runs under a cross-process lock, re-reads the stored pair
//! first (another process may have refreshed already), and stores the new pair before using it:
//! the [`Refresher`] every provider's tokens share.

use std::time::Duration;

use chrono::Utc;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::refresh::{Exchange, RefreshFailure, Refresher};
use super::tokens::{TokenPair, TokenStore, TokenStoreError};
use crate::error_chain;
use crate::secret::Secret;

/// The user's registered Exist app: what the OAuth flow and a refresh need.
#[derive(Debug, Clone)]
pub struct App {
    /// Exist's host, without the `/api/2/` part.
    pub base_url: Url,
    /// The OAuth client id.
    pub client_id: String,
    /// Where the client secret comes from.
    pub client_secret: SecretSource,
    /// The redirect URI, exactly as registered with Exist.
    pub redirect_uri: RedirectUri,
}

/// The redirect URI as written (and so as sent: Exist compares it with the registered one
/// character for character, so `http://localhost:8000` and `http://localhost:8000/` differ), and
/// parsed, to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    written: String,
    url: Url,
}

impl RedirectUri {
    /// Parses `text`, keeping it as written.
    pub fn parse(text: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            url: Url::parse(text)?,
            written: text.to_owned(),
        })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// Parsed.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl std::fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written)
    }
}

/// Where a secret (the OAuth client secret, a shared notification secret) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration.
    Inline(Secret),
    /// Read from this environment variable when needed.
    Env(String),
    /// None configured (enough for a pasted personal token).
    None,
}

impl SecretSource {
    /// The secret, or why there is none.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            Self::Inline(s) => Ok(s.clone()),
            Self::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
                _ => Err(format!(
                    "the environment variable {var} is not set; export it with your Exist app's client secret"
                )),
            },
            Self::None => Err("no client secret is configured".into()),
        }
    }
}

/// Keeps two processes from refreshing the tokens at once; held while a refresh runs.
pub trait RefreshLock: Send + Sync {
    /// Takes the lock, waiting for another holder for a while.
    fn acquire(&self) -> Result<Box<dyn Send>, LockFailure>;
}

/// Why the refresh lock could not be taken.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LockFailure {
    /// What happened.
    pub message: String,
    /// Whether another process held it for longer than the wait (trying later works).
    pub busy: bool,
}

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
    Lock(#[from] LockFailure),
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

/// An HTTP client for token requests: no redirects (the oauth2 crate's advice against SSRF).
fn token_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a TLS backend is compiled in")
}

fn oauth_client(config: &App) -> Result<OAuthClient, AuthError> {
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
        .set_redirect_uri(
            RedirectUrl::new(config.redirect_uri.as_str().to_owned())
                .map_err(|e| AuthError::Config(format!("exist.redirect_uri: {e}")))?,
        ))
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

/// The access token for API calls, refreshed only when needed (see [`Refresher`]).
pub struct Auth(Refresher<ExistExchange>);

/// Exist's token request: the oauth2 crate's refresh-token grant.
struct ExistExchange {
    config: App,
    http: reqwest::Client,
}

impl Exchange for ExistExchange {
    type Error = AuthError;

    async fn exchange(
        &self,
        stored: &TokenPair,
        refresh_token: &Secret,
    ) -> Result<TokenPair, AuthError> {
        let client = oauth_client(&self.config)?;
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&self.http)
            .await
            .map_err(explain_token_error)?;
        Ok(pair_from(&response, &stored.scopes))
    }

    fn failure(&self, failure: RefreshFailure) -> AuthError {
        match failure {
            RefreshFailure::NoToken => AuthError::NoToken,
            RefreshFailure::NoRefreshToken => AuthError::Refused(
                "the token has expired and cannot be refreshed (no refresh token)".into(),
            ),
            RefreshFailure::Store(e) => AuthError::Store(e),
            RefreshFailure::Lock(e) => AuthError::Lock(e),
        }
    }

    fn whose(&self) -> String {
        "Exist".into()
    }
}

impl Auth {
    /// Tokens from `store`, for `app`; refreshes are serialized through `lock`.
    pub fn new(app: App, store: TokenStore, lock: std::sync::Arc<dyn RefreshLock>) -> Self {
        let exchange = ExistExchange {
            config: app,
            http: token_http_client(),
        };
        Self(Refresher::new(exchange, store, lock, REFRESH_MARGIN))
    }

    /// The token store in use.
    pub fn store(&self) -> &TokenStore {
        self.0.store()
    }

    /// The access token to use now: the stored one, refreshed first if it expires within a day.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        self.0.access_token().await
    }

    /// Exist answered 401 to `rejected`: refresh (unless another process already did) and
    /// return the token to retry with.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        self.0.after_unauthorized(rejected).await
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
    config: &App,
    scopes: &[String],
    store: &TokenStore,
    open_browser: bool,
    mut show: impl FnMut(&str),
) -> Result<LoginOutcome, AuthError> {
    let client = oauth_client(config)?;
    let listener = bind_redirect(config.redirect_uri.url()).await?;
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
        "Waiting for Exist to redirect to {} ...\nIf Exist shows an error page instead of asking you to allow exist-agent, the redirect URI registered for your Exist app is not exactly {}: make the two identical, character for character (in the app's settings at Exist, or exist.redirect_uri), and log in again.",
        config.redirect_uri, config.redirect_uri
    ));
    let reply = tokio::time::timeout(
        LOGIN_TIMEOUT,
        wait_for_redirect(listener, config.redirect_uri.url()),
    )
    .await
    .map_err(|_| {
        AuthError::Login(format!(
            "no reply from the browser within {} minutes; if Exist showed an error page, the redirect URI registered for your app and exist.redirect_uri ({}) are not identical; make them so and run `exist-agent login` again",
            LOGIN_TIMEOUT.as_secs() / 60,
            config.redirect_uri
        ))
    })??;
    let code = check_reply(&reply, state.secret(), &config.redirect_uri)?;
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
pub struct RedirectReply {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` the request carried, echoed.
    pub state: Option<String>,
    /// The provider's error (`access_denied`, ...).
    pub error: Option<String>,
}

fn check_reply(
    reply: &RedirectReply,
    expected_state: &str,
    redirect: &RedirectUri,
) -> Result<String, AuthError> {
    match reply.error.as_deref() {
        Some("access_denied") => {
            return Err(AuthError::Login(
                "the authorization was declined in the browser; run `exist-agent login` again to allow it".into(),
            ))
        }
        Some(error) => {
            return Err(AuthError::Login(format!(
                "Exist refused the authorization ({error}); check that the redirect URI registered for your app is exactly {redirect} (exist.redirect_uri), then run `exist-agent login` again"
            )))
        }
        None => {}
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

/// Listens on the redirect URI's host and port (`localhost` as 127.0.0.1), before the user is
/// sent to the authorize page, so the reply cannot arrive before anyone listens.
pub async fn bind_redirect(redirect: &Url) -> Result<tokio::net::TcpListener, AuthError> {
    let port = redirect.port_or_known_default().unwrap_or(80);
    let host = match redirect.host_str() {
        Some("localhost") | None => "127.0.0.1".to_owned(),
        Some(h) => h.trim_matches(|c| c == '[' || c == ']').to_owned(),
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await.map_err(|e| {
        AuthError::Login(format!(
            "cannot listen on {host}:{port} for the redirect ({e}); free the port or change the redirect_uri (and the app's registered redirect URI)"
        ))
    })?;
    Ok(listener)
}

/// Serves the redirect URI until one request to its path arrives; answers the browser kindly.
pub async fn wait_for_redirect(
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

/// Opens `url` in the desktop's browser; false when there is no opener.
pub fn open_in_browser(url: &str) -> bool {
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
        let uri = RedirectUri::parse("http://localhost:8000/").unwrap();
        assert_eq!(check_reply(&ok, "s", &uri).unwrap(), "c");
        assert!(check_reply(&ok, "other", &uri)
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
        assert!(check_reply(&missing_state, "s", &uri).is_err());
        let denied = RedirectReply {
            error: Some("access_denied".into()),
            ..Default::default()
        };
        assert!(check_reply(&denied, "s", &uri)
            .unwrap_err()
            .to_string()
            .contains("declined"));
        let mismatch = RedirectReply {
            error: Some("invalid_request".into()),
            ..Default::default()
        };
        assert!(check_reply(&mismatch, "s", &uri)
            .unwrap_err()
            .to_string()
            .contains("exactly http://localhost:8000/"));
    }
}
