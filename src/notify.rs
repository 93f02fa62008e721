//! Signed notifications that trigger a sync: a source's owner (a webhook relay, a script after
//! an export) tells the daemon that new data is waiting, instead of waiting for the next hour.
//!
//! The protocol: `POST /notify` with the body `{"source": "NAME"}` and the header
//! `X-Exist-Agent-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body under the shared
//! secret ([`sign`] computes it). Answers: 202 accepted, 401 missing or bad signature, 400 body
//! not JSON of that shape, 404 unknown source, 403 peer not on this machine, 413 body too large.
//!
//! Only loopback addresses are served, and only loopback peers answered: the endpoint is for
//! programs on this machine. There is no timestamp against replays, on purpose: a replayed
//! notification can only cause one more sync, which is idempotent and debounced, and only a local
//! process could replay it. Notifications for the same source within the debounce window (10 s by
//! default) produce one trigger at the end of the window, so a burst of exports syncs once with
//! all of its data.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use exist_api::Secret;

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "x-exist-agent-signature";

/// The default debounce window.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(10);

/// The largest body accepted; a notification is a few dozen bytes.
const MAX_BODY: usize = 16 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why the listener cannot run.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The address is reachable from other machines, and that was not asked for.
    #[error("refusing to listen on {addr}: it is reachable from other machines; set agent.listen to 127.0.0.1:PORT, or listen_remote = true for inboxes a phone delivers to")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// An empty secret would let anyone sign.
    #[error("the notification secret is empty; set agent.notify_secret (or its environment variable) to a long random string")]
    EmptySecret,
    /// Binding or serving failed.
    #[error("could not {action} on {addr}: {source}; if another program uses the port, choose another in agent.listen")]
    Io {
        /// "listen" or "serve".
        action: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Its message already says what to do.
impl crate::error::Classify for NotifyError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

/// What the endpoint accepts and how it debounces.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    secret: Secret,
    known_sources: BTreeSet<String>,
    debounce: Duration,
}

impl NotifyConfig {
    /// Accepts notifications signed with `secret` for the sources named in `known_sources`,
    /// debounced over [`DEFAULT_DEBOUNCE`].
    pub fn new(secret: Secret, known_sources: impl IntoIterator<Item = String>) -> Self {
        Self {
            secret,
            known_sources: known_sources.into_iter().collect(),
            debounce: DEFAULT_DEBOUNCE,
        }
    }

    /// Sets the debounce window.
    #[cfg(test)]
    pub fn debounce(mut self, window: Duration) -> Self {
        self.debounce = window;
        self
    }
}

/// The signature header's value for `body`: `sha256=<lowercase hex HMAC-SHA256>`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

fn mac(secret: &Secret, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    mac
}

/// Whether `header` is a valid signature of `body`, compared in constant time.
fn verify(secret: &Secret, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex_tag) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    mac(secret, body).verify_slice(&tag).is_ok()
}

/// Whether `ip` is this machine, including IPv4 loopback written as an IPv6-mapped address.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A listener on a loopback address, from [`bind`].
#[derive(Debug)]
pub struct NotifyListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl NotifyListener {
    /// The address actually bound (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds the listener, refusing any address other hosts could reach unless `remote`. Port 0
/// picks a free port (see [`NotifyListener::local_addr`]).
pub async fn bind(addr: SocketAddr, remote: bool) -> Result<NotifyListener, NotifyError> {
    if !remote && !is_loopback(addr.ip()) {
        return Err(NotifyError::NotLoopback { addr });
    }
    let failed = |source| NotifyError::Io {
        action: "listen",
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok(NotifyListener { listener, addr })
}

/// What the listener serves: signed notifications, inboxes, or both.
pub struct Endpoints {
    /// `POST /notify`, when a shared secret is configured.
    pub notify: Option<NotifyConfig>,
    /// `POST /inbox/<source>`, when a source is an inbox.
    pub inboxes: Option<crate::inbox::Inboxes>,
}

impl From<NotifyConfig> for Endpoints {
    fn from(notify: NotifyConfig) -> Self {
        Self {
            notify: Some(notify),
            inboxes: None,
        }
    }
}

/// Serves the endpoints on `listener` until `shutdown` resolves, sending the name of each
/// source notified or delivered to on `trigger`, once per debounce window.
pub async fn serve(
    listener: NotifyListener,
    endpoints: impl Into<Endpoints>,
    trigger: mpsc::Sender<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NotifyError> {
    let Endpoints { notify, inboxes } = endpoints.into();
    if notify
        .as_ref()
        .is_some_and(|n| n.secret.expose().is_empty())
    {
        return Err(NotifyError::EmptySecret);
    }
    let NotifyListener { listener, addr } = listener;
    let debounce = notify.as_ref().map_or(DEFAULT_DEBOUNCE, |n| n.debounce);
    let debouncer = Arc::new(Debouncer::new(debounce, trigger));
    let mut app = Router::new();
    if let Some(config) = notify {
        tracing::info!(%addr, "accepting signed notifications on /notify");
        app = app.merge(router(Arc::new(Endpoint {
            debouncer: Arc::clone(&debouncer),
            config,
        })));
    }
    if let Some(inboxes) = inboxes {
        tracing::info!(%addr, "accepting deliveries on /inbox/<source>");
        app = app.merge(crate::inbox::routes(inboxes, debouncer));
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| NotifyError::Io {
        action: "serve",
        addr,
        source,
    })
}

fn router(state: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/notify", post(notify))
        .route_layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The endpoint's shared state.
struct Endpoint {
    config: NotifyConfig,
    debouncer: Arc<Debouncer>,
}

/// The body of a notification.
#[derive(serde::Deserialize)]
struct Notification {
    source: String,
}

async fn notify(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !is_loopback(peer.ip()) {
        tracing::warn!(%peer, "refused a notification from another machine");
        return (
            StatusCode::FORBIDDEN,
            "notifications are accepted from this machine only\n".into(),
        );
    }
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !verify(&endpoint.config.secret, signature, &body) {
        tracing::warn!(%peer, signed = signature.is_some(), "refused a notification: missing or bad signature");
        return (
            StatusCode::UNAUTHORIZED,
            "missing or bad X-Exist-Agent-Signature: send sha256=<hex HMAC-SHA256 of the raw body with the shared secret>\n".into(),
        );
    }
    let Ok(Notification { source }) = serde_json::from_slice(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "the body must be JSON like {\"source\": \"NAME\"}\n".into(),
        );
    };
    if !endpoint.config.known_sources.contains(&source) {
        tracing::warn!(%source, "refused a notification for an unknown source");
        return (
            StatusCode::NOT_FOUND,
            format!("no source is named {source:?} in the configuration\n"),
        );
    }
    tracing::info!(%source, "notification accepted");
    endpoint.debouncer.push(source);
    (StatusCode::ACCEPTED, "accepted\n".into())
}

/// Turns every burst of notifications (or deliveries) for one source into one trigger, sent when
/// the window that the burst's first one opened closes.
pub(crate) struct Debouncer {
    window: Duration,
    waiting: Mutex<HashSet<String>>,
    trigger: mpsc::Sender<String>,
}

impl Debouncer {
    fn new(window: Duration, trigger: mpsc::Sender<String>) -> Self {
        Self {
            window,
            waiting: Mutex::default(),
            trigger,
        }
    }

    pub(crate) fn push(self: &Arc<Self>, source: String) {
        if !self.lock().insert(source.clone()) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(this.window).await;
            // Leave the window before sending: a notification from now on opens a new one.
            this.lock().remove(&source);
            if this.trigger.send(source.clone()).await.is_err() {
                tracing::warn!(%source, "notification dropped: the daemon is no longer listening");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked: insert and remove are atomic.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
