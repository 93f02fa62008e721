//! OAuth2, authorization-code flow, as Exist runs it: `/oauth2/authorize` (auto-approved here,
//! as if the user clicked "Allow") and `/oauth2/access_token` for codes and refresh tokens.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use url::{Host, Url};

use super::params::Params;
use super::state::{Shared, TokenGrant};
use super::tokens::{is_known_scope, InvalidGrant, Scopes};

/// The OAuth routes. Exist documents them without a trailing slash while its API paths end in
/// one; both spellings are served so that neither reading of the documentation breaks here.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/authorize/", get(authorize))
        .route("/oauth2/access_token", post(access_token))
        .route("/oauth2/access_token/", post(access_token))
}

/// Approves at once. A bad client or redirect URI gets an error page (redirecting to an
/// unchecked URI would make the sandbox an open redirector); other errors go back to the client
/// as `?error=..`, as RFC 6749 section 4.1.2.1 says.
async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    if params.get("client_id") != Some(shared.options.client_id.as_str()) {
        return error_page("Unknown or missing client_id.");
    }
    let Some(raw_redirect) = params.get("redirect_uri") else {
        return error_page("Missing redirect_uri.");
    };
    let Some(redirect) = loopback_url(raw_redirect) else {
        return error_page("redirect_uri must be an http or https URL on a loopback host (localhost, 127.0.0.1, [::1]), without a fragment.");
    };
    let state = params.get("state");
    if params.get("response_type") != Some("code") {
        return redirect_to(redirect, ("error", "unsupported_response_type"), state);
    }
    let Some(scopes) = requested_scopes(params.get("scope").unwrap_or_default()) else {
        return redirect_to(redirect, ("error", "invalid_scope"), state);
    };
    let code = shared
        .world()
        .tokens
        .new_code(&shared.options.client_id, raw_redirect, scopes);
    redirect_to(redirect, ("code", &code), state)
}

/// The scopes asked for, if there is at least one and Exist knows every one.
fn requested_scopes(scope: &str) -> Option<Scopes> {
    let requested: Vec<&str> = scope.split_whitespace().collect();
    let valid = !requested.is_empty() && requested.iter().all(|s| is_known_scope(s));
    valid.then(|| requested.into_iter().collect())
}

/// `raw` as a URL, if it is http(s) on a loopback host: what a local tool can listen on.
fn loopback_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    let loopback = match url.host()? {
        Host::Domain(domain) => domain == "localhost",
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    let web = matches!(url.scheme(), "http" | "https");
    (loopback && web && url.fragment().is_none()).then_some(url)
}

fn redirect_to(mut target: Url, (key, value): (&str, &str), state: Option<&str>) -> Response {
    {
        let mut query = target.query_pairs_mut();
        query.append_pair(key, value);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    match HeaderValue::from_str(target.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // A serialized `Url` is always ASCII, so this is unreachable in practice.
        Err(_) => error_page("redirect_uri cannot be used in a Location header."),
    }
}

fn error_page(message: &str) -> Response {
    let page = format!(
        "<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{message}</p>"
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// Exchanges a code or a refresh token for a new token pair. The client authenticates with
/// `client_id` and `client_secret` in the form body, as Exist requires; HTTP Basic is refused so
/// that a client configured for Basic (the default of many OAuth libraries) fails here first.
async fn access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        );
    }
    let form = Params::parse(&body);
    if let Err(why) = authenticate_client(&shared, &form, &headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
    }
    let lifetime = shared.options.token_lifetime;
    let client_id = shared.options.client_id.as_str();
    let granted = match form.get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri"))
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code and redirect_uri are required",
                );
            };
            shared
                .world()
                .tokens
                .redeem_code(code, client_id, redirect_uri, lifetime)
        }
        Some("refresh_token") => {
            let Some(refresh_token) = form.get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            shared
                .world()
                .tokens
                .rotate(refresh_token, client_id, lifetime)
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            )
        }
    };
    match granted {
        Ok(grant) => token_response(&grant),
        Err(InvalidGrant(why)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
    }
}

/// Checks the client's credentials; the error says what is wrong with them.
fn authenticate_client(
    shared: &Shared,
    form: &Params,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    let id_ok = form.get("client_id") == Some(shared.options.client_id.as_str());
    let secret_ok = form.get("client_secret") == Some(shared.options.client_secret.as_str());
    if id_ok && secret_ok {
        return Ok(());
    }
    let why = if form.get("client_secret").is_none() && headers.contains_key(header::AUTHORIZATION)
    {
        "send client_id and client_secret in the form body, not in an Authorization header"
    } else {
        "unknown client_id or wrong client_secret"
    };
    Err(why)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn token_response(grant: &TokenGrant) -> Response {
    let body = json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "refresh_token": grant.refresh_token,
        "scope": grant.scope,
    });
    // Token responses must not be cached (RFC 6749 section 5.1).
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_web_urls_are_redirect_targets() {
        assert!(loopback_url("http://localhost:8000/").is_some());
        assert!(loopback_url("http://127.0.0.1:53682/callback").is_some());
        assert!(loopback_url("https://[::1]:9/cb").is_some());
        assert!(loopback_url("http://example.com/").is_none());
        assert!(loopback_url("ftp://127.0.0.1/").is_none());
        assert!(loopback_url("http://127.0.0.1/#frag").is_none());
        assert!(loopback_url("not a url").is_none());
    }

    #[test]
    fn scopes_must_be_known_and_present() {
        assert!(requested_scopes("activity_write mood_write").is_some());
        assert!(requested_scopes("").is_none());
        assert!(requested_scopes("activity_write bogus_write").is_none());
    }
}
