//! OAuth2, authorization-code flow, as Exist runs it: `/oauth2/authorize` (approved at once, as
//! if the user clicked "Allow", unless a denial is queued) and `/oauth2/access_token` for codes
//! and refresh tokens.
//!
//! D documents the parameters and the token response; everything D leaves open follows L, the
//! Django OAuth2 library whose endpoint names, 40-hex tokens, `expires_in` of 31535999 and
//! rotation Exist shares (audit F9): exact redirect URI matching, error pages for bad requests,
//! `state` echoed, `access_denied` on refusal, client credentials in the body or HTTP Basic,
//! and every token error a 400 with a standard `error` code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use url::Url;

use super::params::Params;
use super::rules;
use super::state::{Shared, TokenGrant};
use super::tokens::{InvalidGrant, Scopes};

/// The OAuth routes. D writes them without a trailing slash; L's URL patterns (`^authorize/?$`,
/// `^access_token/?$`) accept both spellings, so both are served.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth2/authorize", get(authorize).post(authorize))
        .route("/oauth2/authorize/", get(authorize).post(authorize))
        .route("/oauth2/access_token", post(access_token).get(token_get))
        .route("/oauth2/access_token/", post(access_token).get(token_get))
}

/// The authorization step. A request L's request form refuses (unknown client, a redirect URI
/// other than the registered one, a missing or unknown response type or scope) gets an error
/// page with status 400 and no redirect: L renders those errors for the user instead of sending
/// them to an unchecked URI. A valid request is approved at once and redirected with `code`
/// and `state`, or, when a denial is queued, with `error=access_denied` and `state`.
async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    if params.get("client_id") != Some(shared.options.client_id.as_str()) {
        return error_page(
            "unauthorized_client",
            "An unauthorized client tried to access your resources.",
        );
    }
    match params.get("response_type").unwrap_or_default() {
        "" => return error_page("invalid_request", "No 'response_type' supplied."),
        // L also knows `token` (the implicit flow); Exist documents only `code`, and so does
        // this fake.
        "code" => {}
        other => {
            return error_page(
                "unsupported_response_type",
                &format!("'{other}' is not a supported response type."),
            )
        }
    }
    let registered = shared.world().redirect_uri.clone();
    // L compares the requested URI with the registered one as strings: `http://localhost:8000`
    // is not `http://localhost:8000/`. Without one, L redirects to the registered URI.
    let target = match params.get("redirect_uri").filter(|r| !r.is_empty()) {
        Some(requested) if requested != registered => {
            return error_page(
                "invalid_request",
                "The requested redirect didn't match the client settings.",
            )
        }
        Some(requested) => requested.to_owned(),
        None => registered.clone(),
    };
    // L splits the scope on spaces and refuses any name it does not know. With no scope at all
    // L grants its first configured scope (unknown for Exist); here the token then has none and
    // can read only the profile.
    let requested = params.get("scope").unwrap_or_default();
    if let Some(unknown) = requested
        .split_whitespace()
        .find(|s| !rules::is_known_scope(s))
    {
        return error_page(
            "invalid_request",
            &format!("'{unknown}' is not a valid scope."),
        );
    }
    let scopes: Scopes = requested.split_whitespace().collect();
    let state = params.get("state");
    let denied = std::mem::take(&mut shared.world().deny_next_authorization);
    if denied {
        // L sends the user who clicked "Cancel" to the registered URI with these three.
        let mut query = vec![
            ("error", "access_denied"),
            ("error_description", "The user denied the scope request."),
        ];
        if let Some(state) = state {
            query.push(("state", state));
        }
        return redirect_to(&registered, &query);
    }
    let code = shared
        .world()
        .tokens
        .new_code(&shared.options.client_id, scopes);
    // L's redirect view always writes `state` first, empty when the request had none, then
    // `code`, in place of any query the redirect URI had.
    redirect_to(
        &target,
        &[("state", state.unwrap_or_default()), ("code", &code)],
    )
}

fn redirect_to(target: &str, query: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(target) else {
        return error_page(
            "invalid_request",
            "The registered redirect URI is not a URL.",
        );
    };
    url.set_fragment(None);
    url.set_query(None);
    url.query_pairs_mut().extend_pairs(query);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // A serialized `Url` is always ASCII, so this is unreachable in practice.
        Err(_) => error_page(
            "invalid_request",
            "The redirect URI cannot be used in a Location header.",
        ),
    }
}

/// The page L renders for a refused authorization request: status 400, the error shown to the
/// user, no redirect.
fn error_page(error: &str, description: &str) -> Response {
    let page = format!(
        "<!doctype html><title>Authorisation error</title><h1>Authorisation error</h1>\
         <p class=\"error\">{}</p><p class=\"error-description\">{}</p>",
        escape(error),
        escape(description)
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// Text made safe for HTML: a scope name in an error page comes from the request.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// L answers a GET at the token endpoint with a 400.
async fn token_get() -> Response {
    oauth_error("invalid_request", Some("Only POST requests allowed."))
}

/// Exchanges a code or a refresh token for a new token pair, checking in L's order: a
/// `grant_type`, a supported one, the client's credentials (HTTP Basic first, then `client_id`
/// and `client_secret` in the form), then the grant. Every failure is a 400 with an OAuth
/// `error` (L; RFC 6749 section 5.2 allows 401 for `invalid_client`, L does not use it).
async fn access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Django fills `request.POST` only from form bodies: parameters sent as JSON are not seen.
    let form = if is_form(&headers) {
        Params::parse(&body)
    } else {
        Params::default()
    };
    let Some(grant_type) = form.get("grant_type") else {
        return oauth_error(
            "invalid_request",
            Some("No 'grant_type' included in the request."),
        );
    };
    // L also implements the password grant; Exist documents only these two.
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return oauth_error("unsupported_grant_type", None);
    }
    if !client_authenticated(&shared, &form, &headers) {
        return oauth_error("invalid_client", None);
    }
    let lifetime = shared.options.token_lifetime;
    let client_id = shared.options.client_id.as_str();
    let granted = if grant_type == "authorization_code" {
        let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
            return oauth_error("invalid_request", None);
        };
        shared.world().tokens.redeem_code(code, client_id, lifetime)
    } else {
        let Some(refresh_token) = form.get("refresh_token").filter(|t| !t.is_empty()) else {
            return oauth_error("invalid_request", None);
        };
        shared
            .world()
            .tokens
            .rotate(refresh_token, client_id, lifetime)
    };
    match granted {
        Ok(grant) => token_response(&grant),
        Err(InvalidGrant(why)) => oauth_error("invalid_grant", Some(why)),
    }
}

/// Whether the request carries the client's id and secret: in an `Authorization: Basic` header
/// (L's `BasicClientBackend`, tried first) or in the form body (D's way).
fn client_authenticated(shared: &Shared, form: &Params, headers: &HeaderMap) -> bool {
    let expected = (
        shared.options.client_id.as_str(),
        shared.options.client_secret.as_str(),
    );
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    if basic
        .as_ref()
        .is_some_and(|(id, secret)| (id.as_str(), secret.as_str()) == expected)
    {
        return true;
    }
    (form.get("client_id"), form.get("client_secret")) == (Some(expected.0), Some(expected.1))
}

/// The `id:secret` pair of a Basic header, read as L does: two words, the second base64, one
/// colon. L does not check the scheme's name; neither does this.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let mut words = value.split(' ');
    let (_scheme, encoded) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let mut parts = text.split(':');
    let (id, secret) = (parts.next()?, parts.next()?);
    parts
        .next()
        .is_none()
        .then(|| (id.to_owned(), secret.to_owned()))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// L's token response: the five fields D documents, never cached.
fn token_response(grant: &TokenGrant) -> Response {
    let body = json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "refresh_token": grant.refresh_token,
        "scope": grant.scope,
    });
    no_store(Json(body).into_response())
}

/// `{"error": ..., "error_description": ...}` with status 400, never cached.
fn oauth_error(error: &str, description: Option<&str>) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), error.into());
    if let Some(description) = description {
        body.insert("error_description".into(), description.into());
    }
    no_store((StatusCode::BAD_REQUEST, Json(Value::Object(body))).into_response())
}

/// L's OAuth views send `Cache-Control: no-store` and `Pragma: no-cache` on every answer.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_as_l_reads_them() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("id:secret");
        assert_eq!(
            basic_credentials(&format!("Basic {encoded}")),
            Some(("id".into(), "secret".into()))
        );
        let three = base64::engine::general_purpose::STANDARD.encode("a:b:c");
        assert_eq!(basic_credentials(&format!("Basic {three}")), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic"), None);
        assert_eq!(basic_credentials(&format!("Basic {encoded} x")), None);
    }

    #[test]
    fn error_pages_escape_what_the_request_sent() {
        assert_eq!(escape("<b>\"&"), "&lt;b&gt;&quot;&amp;");
    }
}
