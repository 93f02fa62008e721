//! The layer around every non-control route: it records each request (with secrets masked)
//! and answers queued transport faults before the request reaches the fake's logic.

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::conn::KillSwitch;
use super::state::{Fault, FaultStage, RequestRecord, Shared};

/// Bodies larger than this are refused with 413 (35 items with 1000-character strings are far
/// smaller). Exist's own limit is unknown; Django's default `DATA_UPLOAD_MAX_MEMORY_SIZE` is
/// 2.5 MB.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Field and parameter names whose values are credentials, masked in the request log.
const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "access_token",
    "refresh_token",
    "code",
    "password",
    "token",
];

const MASK: &str = "***";

/// Marks a response altered by a [`Fault`] after the request reached the fake's logic (a
/// [`Fault::Misreport`]), so that the log flags it as faulted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faulted;

/// Records the request, then answers it with a queued fault or passes it on.
pub(crate) async fn observe(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/sandbox/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        let mut record = describe(&parts, &Bytes::new());
        let response = detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.");
        record.status = response.status().as_u16();
        shared.log(record);
        return response;
    };
    let mut record = describe(&parts, &bytes);
    let response = match shared.take_fault(parts.uri.path(), FaultStage::Transport) {
        Some(fault) => {
            record.faulted = true;
            answer_fault(&fault, &parts)
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    record.faulted |= response.extensions().get::<Faulted>().is_some();
    record.status = match response.extensions().get::<Dropped>() {
        Some(Dropped) => 0,
        None => response.status().as_u16(),
    };
    // The path only: queries and bodies may carry secrets, and the record keeps them masked.
    tracing::info!(
        method = %record.method,
        path = %record.path,
        status = record.status,
        faulted = record.faulted,
        "exist fake request"
    );
    shared.log(record);
    response
}

/// Marks a response that will never reach the client because its connection was cut.
#[derive(Debug, Clone, Copy)]
struct Dropped;

/// A JSON error body in the shape Django REST framework uses: `{"detail": ...}`.
pub(crate) fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

fn answer_fault(fault: &Fault, parts: &Parts) -> Response {
    match fault {
        Fault::Status { status, .. } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            detail(status, &format!("Fault injected: HTTP {}", status.as_u16()))
        }
        Fault::RetryAfter429 {
            retry_after_secs, ..
        } => {
            let mut response = detail(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Request was throttled. Expected available in {retry_after_secs} seconds."
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        Fault::Drop { .. } => {
            match parts.extensions.get::<ConnectInfo<KillSwitch>>() {
                Some(ConnectInfo(switch)) => switch.cut(),
                // Only a router served without the fake's listener lands here (never in
                // `Sandbox::start`); the nearest thing to a dead connection is a gateway error.
                None => return detail(StatusCode::BAD_GATEWAY, "Fault injected: dropped"),
            }
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(Dropped);
            response
        }
        // Never taken at this stage (see `FaultStage`); answered as if no fault were queued
        // would need the request, so a plain error makes a wrong queue visible instead.
        Fault::Misreport { .. } => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Fault injected at the wrong stage",
        ),
    }
}

/// What the log keeps of a request: everything but secrets.
fn describe(parts: &Parts, body: &Bytes) -> RequestRecord {
    let fields = body_fields(parts, body);
    let text_field = |key: &str| {
        fields
            .as_ref()
            .and_then(|f| f.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let grant_type = text_field("grant_type");
    let refresh_token_fingerprint = text_field("refresh_token").map(|t| fingerprint(&t));
    let items = match &fields {
        Some(Value::Array(items)) => items.len(),
        _ => 0,
    };
    RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(mask_query).unwrap_or_default(),
        status: 0,
        body: fields.map(mask),
        grant_type,
        refresh_token_fingerprint,
        items,
        faulted: false,
    }
}

/// The body as JSON: a JSON body as itself (whatever its `Content-Type`, as the write
/// endpoints read it), form fields as an object, anything else as `None`.
fn body_fields(parts: &Parts, body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    if let Ok(json) = serde_json::from_slice(body) {
        return Some(json);
    }
    if is_form(parts) {
        let fields: Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Some(Value::Object(fields));
    }
    None
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// Replaces the values of secret keys, at any depth, with `"***"`.
fn mask(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret(&k) {
                        Value::from(MASK)
                    } else {
                        mask(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        other => other,
    }
}

/// The query string with the values of secret parameters replaced by `***`.
fn mask_query(query: &str) -> String {
    let mut masked = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        masked.append_pair(&k, if is_secret(&k) { MASK } else { &v });
    }
    masked.finish()
}

/// The first 8 hex digits of the token's SHA-256: enough to tell tokens apart, useless to
/// anyone who wants to use one.
fn fingerprint(token: &str) -> String {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    digest[..8].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let masked = mask(json!({
            "client_secret": "s3cret",
            "client_id": "c",
            "nested": [{"refresh_token": "r", "value": 1}]
        }));
        assert_eq!(
            masked,
            json!({"client_secret": "***", "client_id": "c", "nested": [{"refresh_token": "***", "value": 1}]})
        );
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        assert_eq!(
            mask_query("access_token=abc&limit=2"),
            "access_token=***&limit=2"
        );
        assert_eq!(mask_query("scope=a+b&state=x"), "scope=a+b&state=x");
    }

    #[test]
    fn fingerprints_are_short_stable_and_distinct() {
        assert_eq!(fingerprint("abc"), "ba7816bf");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }
}
