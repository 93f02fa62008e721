//! The inbox endpoint: `POST /inbox/<source>` on the daemon's listener, for data that cannot be
//! pulled (a phone's Health Auto Export automation, an iOS Shortcut, a scale's bridge).
//!
//! The order of checks is the point: the source must be an inbox, then the bearer token must
//! be its own (compared in constant time) before a byte of the body is read; the body is read up
//! to [`MAX_BODY`]; its records are stored durably, and only then is the answer 200. A sync of
//! that source follows, debounced like a notification.
//!
//! Answers: 200 stored (JSON: how many, and the records skipped with why), 400 a body that is
//! not what the inbox's format says (with the reason), 401 missing or wrong token, 404 no inbox
//! of that name, 413 body too large, 503 the state is busy or full (try again; nothing stored).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::config::{Config, SourceKind};
use crate::error::{Error, ErrorKind};
use crate::notify::Debouncer;
use crate::store::Store;
use crate::sync::deliver::{store_delivery, Refused};
use exist_api::Secret;

/// The largest body an inbox accepts: a month of minute-by-minute heart rate from Health Auto
/// Export is a few MiB.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// The configured inboxes, with their tokens.
pub struct Inboxes {
    config: Arc<Config>,
    tokens: BTreeMap<String, Secret>,
}

impl Inboxes {
    /// The inboxes of `config`, their tokens read from the environment now; `None` when it has
    /// none. A token that is not set stops the daemon at start rather than refusing every
    /// delivery later.
    pub fn from_config(config: &Config) -> Result<Option<Self>, Error> {
        let mut tokens = BTreeMap::new();
        for source in &config.sources {
            let SourceKind::Inbox(inbox) = &source.kind else {
                continue;
            };
            match std::env::var(&inbox.token_env) {
                Ok(token) if !token.is_empty() => {
                    tokens.insert(source.name.clone(), Secret::new(token));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "the inbox \"{}\" has no token: {} is not set",
                            source.name, inbox.token_env
                        ),
                    )
                    .with_fix(format!(
                        "export {} with a long random token (`openssl rand -hex 32`) in the daemon's environment, and send it as Authorization: Bearer <token>",
                        inbox.token_env
                    )))
                }
            }
        }
        Ok((!tokens.is_empty()).then(|| Self {
            config: Arc::new(config.clone()),
            tokens,
        }))
    }
}

struct InboxEndpoint {
    inboxes: Inboxes,
    debouncer: Arc<Debouncer>,
}

/// The inbox routes; each stored delivery asks `debouncer` for a sync of its source.
pub(crate) fn routes(inboxes: Inboxes, debouncer: Arc<Debouncer>) -> Router {
    Router::new()
        .route("/inbox/{source}", post(deliver))
        .with_state(Arc::new(InboxEndpoint { inboxes, debouncer }))
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    (status, format!("{}\n", text.into())).into_response()
}

async fn deliver(
    State(endpoint): State<Arc<InboxEndpoint>>,
    Path(source): Path<String>,
    request: Request<Body>,
) -> Response {
    let Some(expected) = endpoint.inboxes.tokens.get(&source) else {
        return answer(
            StatusCode::NOT_FOUND,
            format!("no inbox is named {source:?} in the configuration"),
        );
    };
    if !bearer_matches(request.headers(), expected) {
        tracing::warn!(%source, "refused a delivery: missing or wrong token");
        let mut response = answer(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer <the inbox's token>",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid header"),
        );
        return response;
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} MiB (or was cut off); send a shorter period per delivery",
                    MAX_BODY / (1024 * 1024)
                ),
            )
        }
    };
    let config = Arc::clone(&endpoint.inboxes.config);
    let name = source.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let Some(source) = config.source(&name) else {
            return Err(Refused::Body(format!("no source is named {name:?}")));
        };
        let mut store = Store::open(&config.state_dir()).map_err(|e| Refused::Store(e.into()))?;
        store_delivery(&config, source, &mut store, &body)
    })
    .await;
    match stored {
        Ok(Ok(stored)) => {
            tracing::info!(%source, records = stored.records, skipped = stored.malformed.len(), "delivery stored");
            for m in &stored.malformed {
                tracing::warn!("{m}");
            }
            endpoint.debouncer.push(source);
            let skipped: Vec<_> = stored
                .malformed
                .iter()
                .map(|m| json!({"location": m.location, "reason": m.reason}))
                .collect();
            (
                StatusCode::OK,
                Json(json!({"stored": stored.records, "skipped": skipped})),
            )
                .into_response()
        }
        Ok(Err(Refused::Body(why))) => {
            tracing::warn!(%source, "refused a delivery: {why}");
            answer(StatusCode::BAD_REQUEST, why)
        }
        Ok(Err(Refused::Store(e))) => {
            tracing::error!(%source, "could not store a delivery: {}", e.message());
            let status = if e.kind() == ErrorKind::Temporary {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let mut response = answer(
                status,
                format!("not stored ({}); send it again later", e.message()),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, "60".parse().expect("a valid header"));
            response
        }
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not stored ({e}); send it again later"),
        ),
    }
}

/// Whether the request carries `Authorization: Bearer <expected>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, expected: &Secret) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), expected.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
