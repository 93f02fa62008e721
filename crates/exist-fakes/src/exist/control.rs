//! The fake's own controls, as JSON under `/sandbox/`, for scripts that drive a fake started
//! from the command line (tests in Rust call the [`super::Sandbox`] methods). They are not part
//! of Exist's API: they need no token and are left out of the request log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::observe::detail;
use super::state::{AttributeInfo, Fault, RequestRecord, Shared, TokenGrant};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sandbox/requests", get(requests))
        .route("/sandbox/values", get(values))
        .route("/sandbox/attributes", get(attributes))
        .route("/sandbox/faults", post(inject))
        .route("/sandbox/give-away", post(give_away))
        .route("/sandbox/revoke", post(revoke))
        .route("/sandbox/expire", post(expire))
        .route("/sandbox/next-hour", post(next_hour))
        .route("/sandbox/timezone", post(timezone))
        .route("/sandbox/tokens", post(tokens))
        .route("/sandbox/redirect-uri", post(redirect_uri))
        .route("/sandbox/deny-next-authorization", post(deny))
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RequestRecord>> {
    Json(shared.requests())
}

/// `{"attribute": {"YYYY-MM-DD": value, ...}, ...}`.
async fn values(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut by_attribute: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for ((name, day), value) in shared.values() {
        by_attribute.entry(name).or_default().insert(day, value);
    }
    Json(json!(by_attribute))
}

async fn attributes(State(shared): State<Arc<Shared>>) -> Json<Vec<AttributeInfo>> {
    Json(shared.attributes())
}

/// Body: one [`Fault`], e.g. `{"kind":"drop","count":1,"path_prefix":"/api/2/"}`.
async fn inject(State(shared): State<Arc<Shared>>, Json(fault): Json<Fault>) -> Response {
    if let Fault::Status { status, .. } = fault {
        if StatusCode::from_u16(status).is_err() {
            return detail(
                StatusCode::BAD_REQUEST,
                "status must be an HTTP status code (100-999).",
            );
        }
    }
    shared.inject(fault);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// Body: `{"name": "steps"}`.
async fn give_away(
    State(shared): State<Arc<Shared>>,
    Json(Named { name }): Json<Named>,
) -> StatusCode {
    shared.give_to_other_service(&name);
    StatusCode::NO_CONTENT
}

async fn revoke(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.revoke_tokens();
    StatusCode::NO_CONTENT
}

async fn expire(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn next_hour(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.next_hour();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Timezone {
    timezone: String,
}

/// Body: `{"timezone": "Europe/Berlin"}`; an unknown name is a 400.
async fn timezone(
    State(shared): State<Arc<Shared>>,
    Json(Timezone { timezone }): Json<Timezone>,
) -> Response {
    match shared.set_timezone(&timezone) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => detail(StatusCode::BAD_REQUEST, &why),
    }
}

#[derive(Deserialize)]
struct Scopes {
    scopes: Vec<String>,
}

/// Body: `{"scopes": ["activity_write"]}`; answers a [`TokenGrant`], skipping the browser.
async fn tokens(
    State(shared): State<Arc<Shared>>,
    Json(Scopes { scopes }): Json<Scopes>,
) -> Json<TokenGrant> {
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    Json(shared.issue_tokens(&scopes))
}

#[derive(Deserialize)]
struct RedirectUri {
    redirect_uri: String,
}

/// Body: `{"redirect_uri": "http://localhost:8000/"}`: registers it for the client (as the
/// user would in Exist's app settings), replacing the one registered before.
async fn redirect_uri(
    State(shared): State<Arc<Shared>>,
    Json(RedirectUri { redirect_uri }): Json<RedirectUri>,
) -> StatusCode {
    shared.register_redirect_uri(&redirect_uri);
    StatusCode::NO_CONTENT
}

/// The next authorization is refused by the user (`error=access_denied`).
async fn deny(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.deny_next_authorization();
    StatusCode::NO_CONTENT
}
