//! API v2: bearer authentication and the hourly rate limit (as an extractor), the read
//! endpoints a writer uses, and the route table (the write endpoints live in `writes`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use crate::exist::types::{Group, ValueType};

use super::observe::detail;
use super::params::Params;
use super::state::{label_of, strict_day, AttributeInfo, Owner, Shared};
use super::tokens::{AuthFailure, Caller};
use super::writes;

/// Page size when a request gives no valid `limit`.
const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page Exist serves; larger `limit`s are cut to this, as Django REST framework does.
const MAX_PAGE_SIZE: usize = 100;

/// The API routes. Paths end in `/` as Exist's do; without it they are 404, like a typo.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/2/accounts/profile/", get(profile))
        .route("/api/2/attributes/owned/", get(owned))
        .route("/api/2/attributes/values/", get(values))
        .route("/api/2/attributes/acquire/", post(writes::acquire))
        .route("/api/2/attributes/release/", post(writes::release))
        .route("/api/2/attributes/create/", post(writes::create))
        .route("/api/2/attributes/update/", post(writes::update))
        .route("/api/2/attributes/increment/", post(writes::increment))
}

/// The answer to a path the sandbox does not serve.
pub(crate) async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not found.")
}

/// Every API call names its caller with `Authorization: Bearer <token>`; the token must be
/// current, and each call with a good token spends one request of its hourly budget.
impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("Authentication credentials were not provided."))?;
        let caller =
            shared
                .world()
                .tokens
                .authenticate(token)
                .map_err(|failure| match failure {
                    AuthFailure::Invalid => unauthorized("Invalid token."),
                    AuthFailure::Expired => unauthorized("Token has expired."),
                })?;
        if !shared.admit(&caller.token) {
            // Exist documents no Retry-After here, so none is sent: clients must keep count.
            return Err(detail(
                StatusCode::TOO_MANY_REQUESTS,
                "Request was throttled.",
            ));
        }
        Ok(caller)
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(text: &str) -> Response {
    let mut response = detail(StatusCode::UNAUTHORIZED, text);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

/// The user's profile; any scope may read it. Agents take the user's timezone from here.
async fn profile(State(shared): State<Arc<Shared>>, _caller: Caller) -> Json<Value> {
    let timezone = shared.world().timezone;
    Json(json!({
        "username": shared.options.username,
        "first_name": "Sandbox",
        "last_name": "User",
        "avatar": null,
        "timezone": timezone.name(),
        "local_time": Utc::now().with_timezone(&timezone).to_rfc3339(),
        "imperial_distance": false,
        "imperial_weight": false,
        "imperial_energy": false,
        "imperial_liquid": false,
        "imperial_temperature": false,
        "trial": false,
        "delinquent": false,
    }))
}

/// The attributes this client owns, by name, paged.
async fn owned(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let owned: Vec<Value> = shared
        .world()
        .attributes
        .values()
        .filter(|a| a.is_owned_by(&caller.client_id))
        .map(attribute_json)
        .collect();
    paged(&shared, "api/2/attributes/owned/", &params, owned)
}

/// One attribute's values, newest first, paged, up to `date_max` when given. Only days that
/// hold a value are listed. Read scopes are not checked: the sandbox lets a writer verify what
/// it wrote with write scopes alone.
async fn values(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let Some(name) = params.get("attribute") else {
        return detail(
            StatusCode::BAD_REQUEST,
            "The attribute parameter is required.",
        );
    };
    let date_max = match params.get("date_max").map(strict_day) {
        None => None,
        Some(Some(day)) => Some(day),
        Some(None) => return detail(StatusCode::BAD_REQUEST, "date_max must be YYYY-MM-DD."),
    };
    let rows: Vec<Value> = {
        let world = shared.world();
        if !world.attributes.contains_key(name) {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        }
        world
            .values
            .iter()
            .filter(|((n, day), _)| n == name && date_max.is_none_or(|max| *day <= max))
            .rev()
            .map(|((_, day), value)| json!({ "date": day.to_string(), "value": value }))
            .collect()
    };
    paged(&shared, "api/2/attributes/values/", &params, rows)
}

/// One page of `items` in Exist's shape, `{count, next, previous, results}`, with absolute
/// `next`/`previous` links. A page past the end is 404, as in Django REST framework.
fn paged(shared: &Shared, path: &str, params: &Params, items: Vec<Value>) -> Response {
    let size = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .map_or(DEFAULT_PAGE_SIZE, |l| l.min(MAX_PAGE_SIZE));
    let number = match params.get("page") {
        None => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return detail(StatusCode::NOT_FOUND, "Invalid page."),
        },
    };
    let count = items.len();
    let pages = count.div_ceil(size).max(1);
    if number > pages {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let link = |page: usize| {
        let mut url = shared.base_url.clone();
        url.set_path(path);
        url.set_query(Some(&params.with("page", &page.to_string())));
        url.to_string()
    };
    let results: Vec<Value> = items
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .collect();
    Json(json!({
        "count": count,
        "next": (number < pages).then(|| link(number + 1)),
        "previous": (number > 1).then(|| link(number - 1)),
        "results": results,
    }))
    .into_response()
}

/// An attribute as Exist describes it in listings and in `success_objects` replies.
pub(crate) fn attribute_json(attribute: &AttributeInfo) -> Value {
    let service = match &attribute.owner {
        Owner::Client(id) => json!({ "name": id, "label": id }),
        Owner::OtherService => json!({ "name": "other_service", "label": "Another service" }),
        Owner::Unowned => Value::Null,
    };
    json!({
        "template": attribute.template,
        "name": attribute.name,
        "label": attribute.label,
        "group": group_json(attribute.group),
        "manual": attribute.manual,
        "active": true,
        "value_type": attribute.value_type.code(),
        "value_type_description": value_type_description(attribute.value_type),
        "service": service,
    })
}

fn group_json(group: Group) -> Value {
    json!({ "name": group.as_str(), "label": label_of(group.as_str()) })
}

/// The descriptions Exist gives value types.
fn value_type_description(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Integer => "Integer",
        ValueType::Float => "Decimal",
        ValueType::String => "String",
        ValueType::Duration => "Period (min)",
        ValueType::TimeOfDay => "Time of day (min from midnight)",
        ValueType::Percentage => "Percentage",
        ValueType::TimeOfDayFromMidday => "Time of day (min from midday)",
        ValueType::Boolean => "Boolean",
        ValueType::Scale => "Scale (1-9)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_never_empty() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Token abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn group_labels_are_capitalised() {
        assert_eq!(
            group_json(Group::Mood),
            json!({"name": "mood", "label": "Mood"})
        );
    }
}
