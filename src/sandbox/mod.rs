//! A strict, Exist-compatible local server: OAuth2 (auto-approving), API v2 attributes and
//! values, a request log, and fault injection.
//!
//! It exists so that the agent can be tested end to end over real HTTP, tried without an Exist
//! account (`exist-agent sandbox`), and demonstrated (`exist-agent demo`). It is strict where
//! Exist is strict (35-item batches, ownership, scopes, token rotation, the hourly rate limit)
//! and stricter where that helps tests catch client mistakes (value ranges, `Content-Type`, the
//! client secret in the form body, exact redirect URIs). See `reference/exist-api.md`.
//!
//! Everything a test needs is a method of [`Sandbox`]; the same controls are served as JSON under
//! `/sandbox/` for scripts driving a sandbox started from the command line.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use exist_agent::sandbox::{Sandbox, SandboxOptions};
//! let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap(), SandboxOptions::default()).await?;
//! let grant = sandbox.issue_tokens(&["activity_write"]);
//! // ... point the client at sandbox.base_url() and use grant.access_token ...
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod conn;
mod control;
mod oauth;
mod observe;
mod params;
mod state;
mod tokens;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use state::{AttributeInfo, Fault, Owner, RequestRecord, TokenGrant};

use conn::{KillSwitch, SandboxListener};
use state::Shared;

/// How long [`Sandbox::shutdown`] waits for open connections to finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a sandbox is set up: its one OAuth client, its tokens, its limits and its user.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The only client id the OAuth endpoints accept.
    pub client_id: String,
    /// The client secret that must accompany `client_id` in the token request's form body.
    pub client_secret: String,
    /// How long an access token lives (`expires_in`); Exist's is 31535999 s.
    pub token_lifetime: Duration,
    /// Requests allowed per access token per clock hour (Exist: 300); past it, HTTP 429.
    pub rate_limit: u32,
    /// The user's IANA timezone, as the profile reports it; days default to this zone's today.
    pub timezone: String,
    /// The user's name, as the profile reports it.
    pub username: String,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            token_lifetime: Duration::from_secs(31_535_999),
            rate_limit: 300,
            timezone: "UTC".into(),
            username: "sandbox".into(),
        }
    }
}

/// A running sandbox server. Dropping it stops the server abruptly; [`Sandbox::shutdown`] stops
/// it gracefully.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Sandbox {
    /// Binds `addr` (port 0 picks a free port) and serves until [`Sandbox::shutdown`].
    ///
    /// Fails if the address cannot be bound or `options.timezone` is not an IANA name.
    pub async fn start(addr: SocketAddr, options: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener = SandboxListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{addr}/")).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::new(options, base_url)?);
        let app = router(shared.clone()).into_make_service_with_connect_info::<KillSwitch>();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender means the `Sandbox` is gone: stop as well.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Sandbox {
            shared,
            addr,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's root, e.g. `http://127.0.0.1:PORT/`: the API is at `{base}api/2/`, OAuth at
    /// `{base}oauth2/`, the controls at `{base}sandbox/`.
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// Every request served so far, in the order they were answered, faulted and refused ones
    /// included, `/sandbox/` control calls excluded. Secrets appear as `***`.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Every stored value, keyed by (attribute name, `YYYY-MM-DD`).
    pub fn values(&self) -> BTreeMap<(String, String), serde_json::Value> {
        self.shared.values()
    }

    /// The user's attribute called `name`, if they have one.
    pub fn attribute(&self, name: &str) -> Option<AttributeInfo> {
        self.shared.attribute(name)
    }

    /// Every attribute the user has, by name.
    pub fn attributes(&self) -> Vec<AttributeInfo> {
        self.shared.attributes()
    }

    /// Queues a fault for the next matching requests (see [`Fault`]). Faults apply in the order
    /// they were queued, before any processing: a faulted request changes nothing.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Hands `attribute` to another service, as a user can in Exist's web page: writes from our
    /// client get `unauthorised` until it acquires the attribute again. A template the user
    /// lacks is created, owned by the other service; an unknown custom name is ignored.
    pub fn give_to_other_service(&self, attribute: &str) {
        self.shared.give_to_other_service(attribute);
    }

    /// Revokes every access and refresh token issued so far (the user disconnected the client).
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens();
    }

    /// Makes every current access token expired now; refresh tokens keep working.
    pub fn expire_access_tokens(&self) {
        self.shared.expire_access_tokens();
    }

    /// Ends the rate-limit hour: every token's request count starts again from zero.
    pub fn next_hour(&self) {
        self.shared.next_hour();
    }

    /// Mints a token pair for our client with `scopes`, as if the browser flow had run.
    /// Scopes are taken as given (unknown ones simply grant nothing).
    pub fn issue_tokens(&self, scopes: &[&str]) -> TokenGrant {
        self.shared.issue_tokens(scopes)
    }

    /// Changes the user's timezone (as if they moved).
    ///
    /// # Panics
    /// If `tz` is not an IANA timezone name: that is a mistake in the calling test or demo.
    pub fn set_timezone(&self, tz: &str) {
        if let Err(e) = self.shared.set_timezone(tz) {
            panic!("{e}");
        }
    }

    /// Stops accepting connections, lets open ones finish (for a few seconds at most), and
    /// returns when the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                // A client holding a connection open must not keep the process alive.
                server.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Runs a sandbox on `addr` until Ctrl-C, printing where it listens and its client
/// credentials (they are the sandbox's own, not secrets of any real account).
pub async fn serve_forever(addr: SocketAddr, options: SandboxOptions) -> std::io::Result<()> {
    let sandbox = Sandbox::start(addr, options).await?;
    println!(
        "sandbox listening on {} (client_id={}, client_secret={})",
        sandbox.base_url(),
        sandbox.shared.options.client_id,
        sandbox.shared.options.client_secret,
    );
    let stopped = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    stopped
}

/// All routes: OAuth, the API and the controls, with the request log and faults around them.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(oauth::routes())
        .merge(api::routes())
        .merge(control::routes())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            observe::observe,
        ))
        .with_state(shared)
}
