//! API v2: bearer authentication and the hourly rate limit (as an extractor), the read
//! endpoints, the route table (the write endpoints live in `writes`), and the answers Django
//! gives to paths and methods it does not serve.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, RawQuery, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Days, NaiveDate, Utc};
use serde_json::{json, Value};

use super::observe::detail;
use super::params::Params;
use super::rules::{self, Template};
use super::state::{strict_day, AttributeInfo, Owner, Shared, World};
use super::tokens::Caller;
use super::writes;

/// Page size when a request gives no valid `limit` (D's read guide: "20 attributes to a page
/// by default").
const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page: D documents "max is 100" for values; Django REST framework cuts a larger
/// `limit` down to its maximum rather than refusing it. The same cap is used for every list.
const MAX_PAGE_SIZE: usize = 100;
/// The most days `attributes/with-values/` returns per attribute (D: "max 31, default 1").
const MAX_DAYS: u64 = 31;

/// The API's routes. Paths end in `/` as Exist's do (D).
const API_ROUTES: &[&str] = &[
    "/api/2/accounts/profile/",
    "/api/2/attributes/",
    "/api/2/attributes/templates/",
    "/api/2/attributes/owned/",
    "/api/2/attributes/with-values/",
    "/api/2/attributes/values/",
    "/api/2/attributes/acquire/",
    "/api/2/attributes/release/",
    "/api/2/attributes/create/",
    "/api/2/attributes/update/",
    "/api/2/attributes/increment/",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(API_ROUTES[0], get(profile))
        .route(API_ROUTES[1], get(attributes))
        .route(API_ROUTES[2], get(templates))
        .route(API_ROUTES[3], get(owned))
        .route(API_ROUTES[4], get(with_values))
        .route(API_ROUTES[5], get(values))
        .route(API_ROUTES[6], post(writes::acquire))
        .route(API_ROUTES[7], post(writes::release))
        .route(API_ROUTES[8], post(writes::create))
        .route(API_ROUTES[9], post(writes::update))
        .route(API_ROUTES[10], post(writes::increment))
}

/// A path the fake does not serve. Django's `APPEND_SLASH` first redirects a path that lacks
/// only its final `/` to the path with it (301, for any method: a POST then arrives as a GET
/// and is refused with 405); anything else gets Django's plain HTML 404.
pub(crate) async fn not_found(uri: Uri) -> Response {
    let slashed = format!("{}/", uri.path());
    if !uri.path().ends_with('/') && API_ROUTES.contains(&slashed.as_str()) {
        let location = match uri.query() {
            Some(query) => format!("{slashed}?{query}"),
            None => slashed,
        };
        if let Ok(location) = HeaderValue::from_str(&location) {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
    }
    let page = "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n\
                <body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n\
                </body>\n</html>\n";
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

/// A method a path does not take: Django REST framework's 405, with its `detail`.
pub(crate) async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let allowed = if uri.path().starts_with("/oauth2/") {
        "GET, POST, HEAD, OPTIONS"
    } else if API_ROUTES[6..].contains(&uri.path()) {
        "POST, OPTIONS"
    } else {
        "GET, HEAD, OPTIONS"
    };
    let mut response = detail(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{method}\" not allowed."),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// Every API call names its caller with `Authorization: Bearer <token>`; the token must be
/// current, and each call with a good token spends one request of its hourly budget.
///
/// The refusals are those of Django REST framework's OAuth2 authentication (inferred: Exist's
/// `allow` headers and `{"detail": ...}` bodies are DRF's): no credentials, a malformed bearer
/// header, or "Invalid token" for a token that is unknown, rotated out, revoked or expired
/// alike (D says only "HTTP 401 response containing an error message"). Each 401 carries
/// `WWW-Authenticate: Bearer realm="api"`.
impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let token = bearer_token(&parts.headers).map_err(unauthorized)?;
        let caller = shared
            .world()
            .tokens
            .authenticate(token)
            .ok_or_else(|| unauthorized("Invalid token"))?;
        if !shared.admit(&caller.token) {
            // D: "A rate-limited response has a status_code of 429 and no data"; it documents
            // no Retry-After, and none is sent: clients keep their own count.
            return Err(detail(
                StatusCode::TOO_MANY_REQUESTS,
                "Request was throttled.",
            ));
        }
        Ok(caller)
    }
}

/// The bearer token, or DRF's message for a header that does not carry one.
fn bearer_token(headers: &HeaderMap) -> Result<&str, &'static str> {
    const MISSING: &str = "Authentication credentials were not provided.";
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(MISSING)?;
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [scheme, token] if scheme.eq_ignore_ascii_case("bearer") => Ok(token),
        [scheme] if scheme.eq_ignore_ascii_case("bearer") => {
            Err("Invalid bearer header. No credentials provided.")
        }
        [scheme, ..] if scheme.eq_ignore_ascii_case("bearer") => {
            Err("Invalid bearer header. Token string should not contain spaces.")
        }
        // `Token ...` is Exist's simple-token scheme, which this fake does not issue.
        [scheme, _] if scheme.eq_ignore_ascii_case("token") => Err("Invalid token."),
        _ => Err(MISSING),
    }
}

fn unauthorized(text: &str) -> Response {
    let mut response = detail(StatusCode::UNAUTHORIZED, text);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

/// The user's profile; any token may read it (D). Fields as D documents them, plus
/// `weekly_email` and `yearly_email`, which the real reply also carries (N).
async fn profile(State(shared): State<Arc<Shared>>, _caller: Caller) -> Json<Value> {
    let timezone = shared.world().timezone;
    Json(json!({
        "username": shared.options.username,
        "first_name": "Sandbox",
        "last_name": "User",
        "avatar": "https://exist.io/media/avatars/default_avatar.png",
        "timezone": timezone.name(),
        // Python's isoformat, as recorded: microseconds and a `+03:00` offset.
        "local_time": Utc::now()
            .with_timezone(&timezone)
            .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string(),
        "imperial_distance": false,
        "imperial_weight": false,
        "imperial_energy": false,
        "imperial_liquid": false,
        "imperial_temperature": false,
        "trial": false,
        "delinquent": false,
        "weekly_email": true,
        "yearly_email": true,
    }))
}

/// The templates Exist supports, by group then priority; any token may read them (they are not
/// the user's data). Filter: `groups`. D's `include_low_priority` is accepted and has no effect:
/// every documented template is listed (the live list counted 79 of them, N).
async fn templates(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let groups = params.list("groups");
    let mut listed: Vec<&Template> = rules::TEMPLATES
        .iter()
        .filter(|t| groups.as_ref().is_none_or(|g| g.contains(&t.group)))
        .collect();
    listed.sort_by_key(|t| {
        let group = rules::group(t.group).map_or(u32::MAX, |g| g.priority);
        (group, t.group, t.priority())
    });
    let items = listed.into_iter().map(template_json).collect();
    paged(&shared, API_ROUTES[2], &params, items)
}

/// Which of the user's attributes a listing shows: those in the caller's read scopes (D:
/// "Results are limited to your read scopes"), active unless asked otherwise, filtered as the
/// parameters D documents say, sorted by group and priority (D's guide: "already grouped and
/// sorted by group and priority").
fn listed<'w>(world: &'w World, caller: &Caller, params: &Params) -> Vec<&'w AttributeInfo> {
    let groups = params.list("groups");
    let names = params.list("attributes");
    let templates = params.list("templates");
    let include_inactive = params.flag("include_inactive");
    let mut listed: Vec<&AttributeInfo> = world
        .attributes
        .values()
        .filter(|a| caller.scopes.may_read(&a.group, a.manual))
        .filter(|a| include_inactive || a.is_active())
        .filter(|a| {
            groups
                .as_ref()
                .is_none_or(|g| g.contains(&a.group.as_str()))
        })
        .filter(|a| names.as_ref().is_none_or(|n| n.contains(&a.name.as_str())))
        .filter(|a| {
            templates
                .as_ref()
                .is_none_or(|t| a.template.as_deref().is_some_and(|name| t.contains(&name)))
        })
        .filter(|a| !params.flag("exclude_custom") || a.template.is_some())
        .filter(|a| !params.flag("manual") || a.manual)
        .filter(|a| !params.flag("owned") || a.is_owned_by(&caller.client_id))
        .collect();
    listed.sort_by(|a, b| {
        (a.group_priority(), &a.group, a.priority, &a.name).cmp(&(
            b.group_priority(),
            &b.group,
            b.priority,
            &b.name,
        ))
    });
    listed
}

/// The user's attributes, without values (D "Get a user's attributes").
async fn attributes(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let items = {
        let world = shared.world();
        listed(&world, &caller, &params)
            .into_iter()
            .map(attribute_json)
            .collect()
    };
    paged(&shared, API_ROUTES[1], &params, items)
}

/// The attributes this client owns. D no longer documents this path (it points at
/// `attributes/?owned=true`), but it answers (N). Like the listing it shortcuts, it is limited
/// to the read scopes (a guess: a writer with write scopes only gets an empty list).
async fn owned(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let items = {
        let world = shared.world();
        listed(&world, &caller, &params)
            .into_iter()
            .filter(|a| a.is_owned_by(&caller.client_id))
            .map(attribute_json)
            .collect()
    };
    paged(&shared, API_ROUTES[3], &params, items)
}

/// The user's attributes with their last `days` values up to `date_max` (D "Get attributes
/// with values"): one entry per day, newest first, `null` where the day holds no value.
async fn with_values(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let days = params
        .get("days")
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|d| *d > 0)
        .map_or(1, |d| d.min(MAX_DAYS));
    let items = {
        let world = shared.world();
        let Ok(date_max) = date_max(&params, &world) else {
            return bad_date_max();
        };
        listed(&world, &caller, &params)
            .into_iter()
            .map(|attribute| {
                let values: Vec<Value> = (0..days)
                    .filter_map(|back| date_max.checked_sub_days(Days::new(back)))
                    .map(|day| day_value(&world, &attribute.name, day))
                    .collect();
                let mut object = attribute_json(attribute);
                object["values"] = Value::Array(values);
                object
            })
            .collect()
    };
    paged(&shared, API_ROUTES[4], &params, items)
}

/// One attribute's values, newest first, paged, up to `date_max` (D "Get a specific
/// attribute"). D: "you should expect to receive a list of results containing every single
/// day, rather than days without data being omitted", so every day from the attribute's first
/// (its creation, or an earlier day that holds a value) to `date_max` (default: the user's
/// today) is listed, `null` where there is no value. [`super::SandboxOptions`] can turn that
/// off: a real reply recorded in N omits a day (see the table in [`super`]).
///
/// An attribute outside the caller's read scopes is not found (404), like an unknown one; so
/// is an inactive (unowned) attribute (N2: "A 404 means the attribute is currently
/// inactive/unowned").
async fn values(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let Some(name) = params.get("attribute").filter(|n| !n.is_empty()) else {
        // D calls the parameter "non-optional"; the shape of the refusal is a guess in DRF's
        // style for a missing field.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "attribute": ["This field is required."] })),
        )
            .into_response();
    };
    let world = shared.world();
    let Ok(date_max) = date_max(&params, &world) else {
        return bad_date_max();
    };
    let Some(attribute) = world
        .attributes
        .get(name)
        .filter(|a| a.is_active() && caller.scopes.may_read(&a.group, a.manual))
    else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let stored = world
        .values
        .range((name.to_owned(), NaiveDate::MIN)..=(name.to_owned(), date_max));
    if !shared.options.list_days_without_data {
        let rows = stored
            .rev()
            .map(|((_, day), value)| json!({ "date": day.to_string(), "value": value }))
            .collect();
        return paged(&shared, API_ROUTES[5], &params, rows);
    }
    let first = stored
        .clone()
        .next()
        .map_or(attribute.created, |((_, day), _)| *day)
        .min(attribute.created);
    // Only the page asked for is built: a far `date_max` means many days, not much work.
    let count = usize::try_from((date_max - first).num_days() + 1).unwrap_or(0);
    let Some(page) = PageRequest::of(&params, count) else {
        return invalid_page();
    };
    let results = (page.skip()..count.min(page.skip() + page.size))
        .filter_map(|back| date_max.checked_sub_days(Days::new(u64::try_from(back).ok()?)))
        .map(|day| day_value(&world, name, day))
        .collect();
    drop(world);
    page_response(&shared, API_ROUTES[5], &params, count, &page, results)
}

/// `{"date", "value"}` for one day, `null` when it holds nothing.
fn day_value(world: &World, name: &str, day: NaiveDate) -> Value {
    let value = world
        .values
        .get(&(name.to_owned(), day))
        .cloned()
        .unwrap_or(Value::Null);
    json!({ "date": day.to_string(), "value": value })
}

/// `date_max` when given (it must be `YYYY-MM-DD`), otherwise the user's today.
fn date_max(params: &Params, world: &World) -> Result<NaiveDate, ()> {
    match params.get("date_max") {
        None | Some("") => Ok(world.today()),
        Some(text) => strict_day(text).ok_or(()),
    }
}

/// The refusal of a malformed `date_max`; its shape is a guess in DRF's style.
fn bad_date_max() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "date_max": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."] })),
    )
        .into_response()
}

/// The page a request asks for, once the number of items is known: `limit` items (20 when it
/// is not a positive number, at most 100) on page `page` (from 1).
struct PageRequest {
    number: usize,
    size: usize,
    pages: usize,
}

impl PageRequest {
    /// The page, or `None` for a `page` that is not a positive number or lies past the end
    /// (answered with [`invalid_page`]).
    fn of(params: &Params, count: usize) -> Option<Self> {
        let size = params
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .map_or(DEFAULT_PAGE_SIZE, |l| l.min(MAX_PAGE_SIZE));
        let number = match params.get("page") {
            None | Some("") => 1,
            Some(p) => p.parse::<usize>().ok().filter(|n| *n > 0)?,
        };
        let pages = count.div_ceil(size).max(1);
        (number <= pages).then_some(Self {
            number,
            size,
            pages,
        })
    }

    /// How many items come before this page.
    fn skip(&self) -> usize {
        (self.number - 1) * self.size
    }
}

/// One page of `items` (see [`page_response`]).
fn paged(shared: &Shared, path: &str, params: &Params, items: Vec<Value>) -> Response {
    let count = items.len();
    match PageRequest::of(params, count) {
        Some(page) => {
            let results = items
                .into_iter()
                .skip(page.skip())
                .take(page.size)
                .collect();
            page_response(shared, path, params, count, &page, results)
        }
        None => invalid_page(),
    }
}

/// Django REST framework's answer to a page that does not exist.
fn invalid_page() -> Response {
    detail(StatusCode::NOT_FOUND, "Invalid page.")
}

/// A page in Django REST framework's shape, `{count, next, previous, results}`, with absolute
/// `next`/`previous` links built as DRF builds them (N records
/// `https://exist.io/api/2/attributes/values/?attribute=steps&limit=2&page=2`).
fn page_response(
    shared: &Shared,
    path: &str,
    params: &Params,
    count: usize,
    page: &PageRequest,
    results: Vec<Value>,
) -> Response {
    let link = |number: usize| {
        let mut url = shared.base_url.clone();
        url.set_path(path);
        // DRF drops `page` from the link to the first page.
        let number = number.to_string();
        let query = params.replaced("page", (number != "1").then_some(number.as_str()));
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        url.to_string()
    };
    Json(json!({
        "count": count,
        "next": (page.number < page.pages).then(|| link(page.number + 1)),
        "previous": (page.number > 1).then(|| link(page.number - 1)),
        "results": results,
    }))
    .into_response()
}

/// A group as Exist writes it inside attribute objects.
fn group_json(name: &str) -> Value {
    let (label, priority) = rules::group(name).map_or((name, u32::MAX), |g| (g.label, g.priority));
    json!({ "name": name, "label": label, "priority": priority })
}

/// An attribute as Exist describes it in listings and in `success_objects` replies, with the
/// fields of N's recordings: `subgroup` (always `null` here) and `available_services` (always
/// empty here) included; `service` is `null` for an unowned attribute, whose `active` is false.
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
        "subgroup": null,
        "group": group_json(&attribute.group),
        "service": service,
        "active": attribute.is_active(),
        "priority": attribute.priority,
        "manual": attribute.manual,
        "value_type": attribute.value_type.code(),
        "value_type_description": attribute.value_type.description(),
        "available_services": [],
    })
}

/// A template as `attributes/templates/` lists it (N).
fn template_json(template: &Template) -> Value {
    json!({
        "name": template.name,
        "label": template.label,
        "group": group_json(template.group),
        "priority": template.priority(),
        "value_type": template.value_type.code(),
        "value_type_description": template.value_type.description(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn bearer_headers_are_read_as_drf_reads_them() {
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err("Authentication credentials were not provided.")
        );
        assert_eq!(bearer_token(&headers("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(&headers("Token abc")), Err("Invalid token."));
        assert_eq!(
            bearer_token(&headers("Bearer")),
            Err("Invalid bearer header. No credentials provided.")
        );
        assert_eq!(
            bearer_token(&headers("Bearer a b")),
            Err("Invalid bearer header. Token string should not contain spaces.")
        );
        assert_eq!(
            bearer_token(&headers("Basic abc")),
            Err("Authentication credentials were not provided.")
        );
    }

    #[test]
    fn groups_are_written_with_the_label_exist_shows() {
        assert_eq!(
            group_json("custom"),
            json!({"name": "custom", "label": "Daily tags", "priority": 3})
        );
    }
}
