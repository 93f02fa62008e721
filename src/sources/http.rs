//! The `http` source: an API's JSON pages, in the dialect its `[[source]]` describes.
//!
//! A pull is a list of queries ([`window`]: change times since a cursor, as the health-data
//! conventions have it, or spans of the user's days written as dates or instants), each walked
//! page by page ([`paging`]: `Link` headers, offsets, page numbers, next URLs or cursors in the
//! body) with the credentials [`auth`] reads when the pull starts. Records are found in each
//! reply at `records` (a JSON Pointer), or by the health-data conventions.
//!
//! Every loop is bounded: a query stops after `max_pages` pages, a pull after `max_requests`
//! requests, pages that go in a circle stop it with [`SourceError::PagingLoops`], 429 is waited
//! out when the wait is short, and 5xx and network errors are retried a bounded number of times.

mod auth;
mod body;
mod paging;
mod window;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::value::RawValue;
use url::Url;

use super::record::{Malformed, Origin, RecordParser, Unparsed};
use super::{emit, excerpt, PullEvent, PullPlan, PullSummary, Sink, Source, SourceError};
use crate::config::{HttpSourceConfig, JsonPointer, SourceConfig};
use crate::error::error_chain;
use auth::Credentials;
use paging::{first_page_params, PageStop, Pager, Reply};
use window::{Place, Query};

pub use window::{format_query_time, OVERLAP};

/// Empty pages in a row, each linking to another, after which a query is stopped: a source's
/// paging gone wrong, not data.
const MAX_EMPTY_PAGES: usize = 3;

/// How an HTTP source retries and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRetry {
    /// Tries of one request on network errors and 5xx, the first included.
    pub attempts: u32,
    /// The wait before the first retry; it doubles with each retry.
    pub base_delay: Duration,
    /// The longest `Retry-After` a pull sleeps through; a longer one ends the pull with
    /// [`SourceError::RateLimited`] so the run can finish and the next one resume.
    pub max_retry_after: Duration,
    /// How many 429 answers in a row one request accepts before giving up.
    pub max_rate_limited: u32,
}

impl Default for PullRetry {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5 * 60),
            max_rate_limited: 5,
        }
    }
}

impl PullRetry {
    /// The wait before retry number `retry` (1 for the first).
    fn backoff(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
    }
}

/// An HTTP API's collection, pulled in the dialect of its configuration.
#[derive(Debug)]
pub struct HttpSource {
    name: String,
    config: HttpSourceConfig,
    parser: RecordParser,
    client: reqwest::Client,
    retry: PullRetry,
    /// The user's timezone: windows of days are the user's days.
    tz: Tz,
    /// The OAuth2 tokens of a source with `auth.oauth2`.
    oauth: Option<std::sync::Arc<super::oauth2::SourceAuth>>,
}

/// A successful response.
struct Page {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What `doctor` learns from one request: the source answers, takes its credentials, and has
/// records where `records` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The request's URL (a secret sent as a query parameter is not in it).
    pub url: Url,
    /// Records on the first page.
    pub records: usize,
    /// Where they were found, as a JSON Pointer.
    pub at: String,
}

/// Where a reply's records are.
#[derive(Debug)]
struct Found<'a> {
    /// The pointer to them.
    at: String,
    /// Each record, unparsed.
    items: Vec<&'a RawValue>,
}

impl HttpSource {
    /// The same source, its records keeping only the fields `reads` names (beyond its own).
    pub fn reading(self, reads: &super::Projection) -> Self {
        Self {
            parser: self.parser.reading(reads),
            ..self
        }
    }

    /// The source a `kind = "http"` `[[source]]` describes, with the default [`PullRetry`],
    /// for a user in UTC until [`HttpSource::in_timezone`] says otherwise.
    pub fn new(source: &SourceConfig, http: &HttpSourceConfig) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("exist-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SourceError::Client {
                source_name: source.name.clone(),
                detail: error_chain(&e),
            })?;
        Ok(Self {
            name: source.name.clone(),
            config: http.clone(),
            parser: RecordParser::new(
                &source.date_field,
                source.tz_offset_field.as_deref(),
                Some(&http.id_field),
                Some(&http.updated_field),
            )
            .keeping_raw(),
            client,
            retry: PullRetry::default(),
            tz: chrono_tz::UTC,
            oauth: match &http.auth {
                crate::config::HttpAuth::OAuth2(o) => {
                    let store = super::oauth2::source_token_store(
                        o.token_store,
                        &o.state_dir,
                        &source.name,
                        o,
                    )
                    .map_err(super::oauth2::SourceAuthError::from)?;
                    Some(std::sync::Arc::new(super::oauth2::SourceAuth::new(
                        &source.name,
                        o,
                        store,
                        &o.state_dir,
                    )))
                }
                _ => None,
            },
        })
    }

    /// The same source with another retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: PullRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The same source for a user in `tz`, whose days its windows of days are.
    pub fn in_timezone(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// Reads every page of one query, then reports its cursor.
    async fn run_query(
        &self,
        query: &Query,
        credentials: &Credentials,
        sink: &mut Sink<'_>,
        summary: &mut PullSummary,
    ) -> Result<(), SourceError> {
        let first = self.first_url(query);
        let mut pager = Pager::new(&self.config.paging, self.config.page_limit, first.clone());
        let mut url = first;
        let mut empty_in_a_row = 0;
        for page_number in 1.. {
            let page = self.fetch(&url, credentials, summary).await?;
            let total = header_number(&page.headers, "x-total-count");
            if let (1, Some(total)) = (page_number, total) {
                emit(&self.name, sink, PullEvent::Total(total))?;
            }
            let bad = |problem| SourceError::BadResponse {
                source_name: self.name.clone(),
                url: url.to_string(),
                problem,
            };
            let body = body::parse(&page.body).map_err(bad)?;
            let found = find_records(self.config.records.as_ref(), body).map_err(bad)?;
            let next = pager
                .next(&Reply {
                    url: &url,
                    headers: &page.headers,
                    body,
                    raw: &page.body,
                    records: found.items.len(),
                    total,
                })
                .map_err(|stop| self.stopped(&url, stop));
            // The page is handed over even when its next one cannot be followed: its records
            // are good, only the cursor stays behind.
            let count = found.items.len();
            self.deliver_page(found.items, page_number, sink, summary)?;
            summary.pages += 1;
            let next = next?;
            let Some(next) = next else { break };
            empty_in_a_row = if count == 0 { empty_in_a_row + 1 } else { 0 };
            if empty_in_a_row >= MAX_EMPTY_PAGES {
                return Err(self.unbounded(
                    format!("the source kept sending empty pages that lead to another one ({MAX_EMPTY_PAGES} in a row, at {url})"),
                    "this is the source's paging going wrong; check the source's url, params and paging, or report it to the service",
                ));
            }
            if page_number >= self.config.max_pages as usize {
                return Err(self.unbounded(
                    format!("one query went past {} pages (max_pages) and the source still leads to more", self.config.max_pages),
                    "raise max_pages for this source if it really holds that much, or narrow the query with params",
                ));
            }
            url = next;
        }
        emit(
            &self.name,
            sink,
            PullEvent::WindowDone {
                cursor: query.cursor,
            },
        )
    }

    /// The query's first page: the configured URL (its `{start}` and `{end}` filled in) and
    /// `params`, the window's parameters, and the paging's first-page parameters.
    fn first_url(&self, query: &Query) -> Url {
        let mut url = self.config.url.clone();
        let bounds = window::bounds(&self.config.window, &query.span, self.tz);
        let mut path = url.path().to_owned();
        let mut pairs: Vec<(String, String)> = self
            .config
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (place, value) in bounds {
            match place {
                Place::Path(placeholder) => path = path.replace(placeholder, &value),
                Place::Param(name) => pairs.push((name, value)),
            }
        }
        url.set_path(&path);
        pairs.extend(first_page_params(
            &self.config.paging,
            self.config.page_limit,
        ));
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    fn unbounded(&self, what: String, fix: &str) -> SourceError {
        SourceError::Unbounded {
            source_name: self.name.clone(),
            what,
            fix: fix.to_owned(),
        }
    }

    fn stopped(&self, url: &Url, stop: PageStop) -> SourceError {
        match stop {
            PageStop::Loops(problem) => SourceError::PagingLoops {
                source_name: self.name.clone(),
                url: url.to_string(),
                problem,
            },
            PageStop::BadNext(problem) => SourceError::BadResponse {
                source_name: self.name.clone(),
                url: url.to_string(),
                problem,
            },
        }
    }

    /// Parses one page's records and hands them over.
    fn deliver_page(
        &self,
        items: Vec<&RawValue>,
        page_number: usize,
        sink: &mut Sink<'_>,
        summary: &mut PullSummary,
    ) -> Result<(), SourceError> {
        let mut records = Vec::with_capacity(items.len());
        let mut malformed = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let origin = Origin::PageItem {
                page: page_number,
                item: index + 1,
            };
            let result = match body::kind(item) {
                body::Kind::Object => self.parser.parse_json(item.get().as_bytes(), origin),
                _ => Err(Unparsed {
                    location: origin.describe(None),
                    reason: format!("{} is not a JSON object", excerpt(item.get(), 40)),
                }),
            };
            match result {
                Ok(record) => records.push(record),
                Err(Unparsed { location, reason }) => malformed.push(Malformed {
                    source: self.name.clone(),
                    location,
                    reason,
                }),
            }
        }
        summary.records += records.len();
        summary.malformed += malformed.len();
        if !records.is_empty() {
            emit(&self.name, sink, PullEvent::Records(records))?;
        }
        for report in malformed {
            emit(&self.name, sink, PullEvent::Malformed(report))?;
        }
        Ok(())
    }

    /// One GET, with retries: 5xx and network errors back off exponentially, 429 waits for
    /// `Retry-After` when that is short enough.
    async fn fetch(
        &self,
        url: &Url,
        credentials: &Credentials,
        summary: &mut PullSummary,
    ) -> Result<Page, SourceError> {
        let (mut failures, mut limited) = (0, 0);
        loop {
            if summary.requests >= self.config.max_requests as usize {
                return Err(self.unbounded(
                    format!("the pull went past {} requests (max_requests)", self.config.max_requests),
                    "raise max_requests for this source if a pull really needs that many, or pull less at once (window_days, params)",
                ));
            }
            summary.requests += 1;
            tracing::debug!(source = %self.name, %url, "GET");
            let wait = match self.send(url, credentials).await {
                Ok((status, page)) if status.is_success() => return Ok(page),
                Ok((StatusCode::TOO_MANY_REQUESTS, page)) => {
                    limited += 1;
                    let wait = retry_after(&page.headers, Utc::now())
                        .unwrap_or_else(|| self.retry.backoff(limited));
                    if wait > self.retry.max_retry_after || limited > self.retry.max_rate_limited {
                        return Err(SourceError::RateLimited {
                            source_name: self.name.clone(),
                            retry_after: wait,
                        });
                    }
                    wait
                }
                Ok((status, page)) => {
                    failures += 1;
                    if !status.is_server_error() || failures >= self.retry.attempts {
                        return Err(SourceError::Status {
                            source_name: self.name.clone(),
                            url: url.to_string(),
                            status: status.as_u16(),
                            body: excerpt(&String::from_utf8_lossy(&page.body), 200),
                        });
                    }
                    self.retry.backoff(failures)
                }
                Err(e) => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Err(SourceError::Network {
                            source_name: self.name.clone(),
                            url: url.to_string(),
                            detail: error_chain(&e),
                        });
                    }
                    self.retry.backoff(failures)
                }
            };
            tracing::warn!(source = %self.name, %url, wait = %humantime::format_duration(wait), "the source is busy or unreachable; waiting, then trying again");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request for the first page of the most recent query, without retries: whether the
    /// source answers, takes its credentials, and has records where `records` says
    /// (`exist-agent doctor`).
    pub async fn probe(&self) -> Result<Probe, SourceError> {
        let credentials =
            Credentials::resolve(&self.name, &self.config.auth, self.oauth.as_deref()).await?;
        let now = Utc::now();
        let plan = PullPlan::Incremental {
            since: Some(now - TimeDelta::days(1)),
        };
        let queries = window::plan(
            &self.config.window,
            &plan,
            now,
            self.tz,
            self.config.window_days,
        );
        let Some(query) = queries.last() else {
            return Err(self.unbounded(
                "there is no query to make".into(),
                "check the source's window",
            ));
        };
        let url = self.first_url(query);
        let page = match self.send(&url, &credentials).await {
            Ok((status, page)) if status.is_success() => page,
            Ok((status, page)) => {
                return Err(SourceError::Status {
                    source_name: self.name.clone(),
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: excerpt(&String::from_utf8_lossy(&page.body), 200),
                })
            }
            Err(e) => {
                return Err(SourceError::Network {
                    source_name: self.name.clone(),
                    url: url.to_string(),
                    detail: error_chain(&e),
                })
            }
        };
        let found = body::parse(&page.body)
            .and_then(|body| find_records(self.config.records.as_ref(), body))
            .map_err(|problem| SourceError::BadResponse {
                source_name: self.name.clone(),
                url: url.to_string(),
                problem,
            })?;
        Ok(Probe {
            url,
            records: found.items.len(),
            at: found.at,
        })
    }

    /// One GET. Its errors carry no URL: a secret sent as a query parameter would be in it.
    async fn send(
        &self,
        url: &Url,
        credentials: &Credentials,
    ) -> Result<(StatusCode, Page), reqwest::Error> {
        let request = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json");
        let response = credentials
            .apply(request)
            .send()
            .await
            .map_err(reqwest::Error::without_url)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Vec::from(
            response
                .bytes()
                .await
                .map_err(reqwest::Error::without_url)?,
        );
        let status = match &self.config.body_status {
            Some(pointer) if status.is_success() => {
                status_in_body(&body, pointer).unwrap_or(status)
            }
            _ => status,
        };
        Ok((status, Page { headers, body }))
    }
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Pulls what `plan` asks, query by query; each query ends with its
    /// [`PullEvent::WindowDone`].
    async fn pull(&self, plan: &PullPlan, sink: &mut Sink<'_>) -> Result<PullSummary, SourceError> {
        let credentials =
            Credentials::resolve(&self.name, &self.config.auth, self.oauth.as_deref()).await?;
        let mut summary = PullSummary::default();
        let queries = window::plan(
            &self.config.window,
            plan,
            Utc::now(),
            self.tz,
            self.config.window_days,
        );
        let mut credentials = credentials;
        let mut refreshed = false;
        for query in queries {
            match self
                .run_query(&query, &credentials, sink, &mut summary)
                .await
            {
                // An OAuth2 token the provider no longer takes is refreshed once, and the query
                // asked again (records it handed over already replace themselves by id).
                Err(e @ SourceError::Status { status: 401, .. }) if !refreshed => {
                    let (Some(auth), Credentials::Bearer(rejected)) = (&self.oauth, &credentials)
                    else {
                        return Err(e);
                    };
                    refreshed = true;
                    credentials = Credentials::Bearer(auth.after_unauthorized(rejected).await?);
                    self.run_query(&query, &credentials, sink, &mut summary)
                        .await
                        .map_err(|e| self.unauthorized_again(e))?;
                }
                Err(e) if refreshed => return Err(self.unauthorized_again(e)),
                other => other?,
            }
        }
        Ok(summary)
    }
}

impl HttpSource {
    /// A 401 to a freshly refreshed OAuth2 token: the authorization is gone (revoked).
    fn unauthorized_again(&self, e: SourceError) -> SourceError {
        match e {
            SourceError::Status {
                status: 401, body, ..
            } if self.oauth.is_some() => {
                SourceError::Auth(super::oauth2::SourceAuthError::Refused {
                    source_name: self.name.clone(),
                    detail: format!("401 to a refreshed token: {body}"),
                })
            }
            other => other,
        }
    }
}

/// The status a service writes in a 200 reply's body (Withings: `{"status": 401, "body": {}}`),
/// when it is not 0: an HTTP status as it is, 601 (Withings' "too many requests") as 429, any
/// other code as 400 (the query was refused).
fn status_in_body(body: &[u8], pointer: &crate::config::JsonPointer) -> Option<StatusCode> {
    let code = body::value_at(body::parse(body).ok()?, pointer.as_str())?.as_i64()?;
    match code {
        0 => None,
        601 => Some(StatusCode::TOO_MANY_REQUESTS),
        _ => Some(
            u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.is_client_error() || c.is_server_error())
                .unwrap_or(StatusCode::BAD_REQUEST),
        ),
    }
}

/// Where a reply's records are: at `records` (an array; an object is one record; `null`, or
/// an index past the end of an array, is none), or, by the health-data conventions, the reply
/// itself or its `data`, `results` or `items` array.
fn find_records<'a>(
    records: Option<&JsonPointer>,
    reply: &'a RawValue,
) -> Result<Found<'a>, String> {
    let found = |at: String, items: Vec<&'a RawValue>| Found { at, items };
    let Some(pointer) = records else {
        return match body::kind(reply) {
            body::Kind::Array => Ok(found(String::new(), body::items(reply))),
            body::Kind::Object => {
                let envelope = body::members(reply);
                ["data", "results", "items"]
                    .into_iter()
                    .find_map(|key| {
                        let list = envelope.get(key).filter(|v| body::kind(v) == body::Kind::Array)?;
                        Some(found(format!("/{key}"), body::items(list)))
                    })
                    .ok_or_else(|| {
                        format!(
                            "the answer is an object without a `data`, `results` or `items` list (keys: {}); set `records` to where its list is",
                            keys(&envelope)
                        )
                    })
            }
            body::Kind::Null | body::Kind::Other => Err(format!(
                "the answer is {}, not a list of records",
                excerpt(reply.get(), 40)
            )),
        };
    };
    let at = pointer.as_str().to_owned();
    match body::pointer(reply, &at) {
        Some(list) => match body::kind(list) {
            body::Kind::Array => Ok(found(at, body::items(list))),
            body::Kind::Object => Ok(found(at, vec![list])),
            body::Kind::Null => Ok(found(at, Vec::new())),
            body::Kind::Other => Err(format!(
                "`{at}` holds {}, not a list of records",
                excerpt(list.get(), 40)
            )),
        },
        None => {
            let parent = &at[..at.rfind('/').unwrap_or(0)];
            match body::pointer(reply, parent) {
                // An index past the end: an empty list of lists (Home Assistant's reply
                // without history).
                Some(p) if body::kind(p) == body::Kind::Array => Ok(found(at, Vec::new())),
                Some(p) if body::kind(p) == body::Kind::Object => Err(format!(
                    "the answer has nothing at `{at}` (keys there: {})",
                    keys(&body::members(p))
                )),
                _ => Err(format!("the answer has nothing at `{at}`")),
            }
        }
    }
}

fn keys(object: &std::collections::BTreeMap<String, &RawValue>) -> String {
    object
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` as a wait: seconds, or an HTTP date (a date in the past means now).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn found(records: Option<&str>, body: serde_json::Value) -> Result<(String, usize), String> {
        let pointer = records.map(|p| JsonPointer::parse(p).unwrap());
        let text = body.to_string();
        let raw = body::parse(text.as_bytes()).unwrap();
        find_records(pointer.as_ref(), raw).map(|f| (f.at, f.items.len()))
    }

    #[test]
    fn pages_are_arrays_or_envelopes() {
        assert_eq!(found(None, json!([{"a": 1}])), Ok((String::new(), 1)));
        for key in ["data", "results", "items"] {
            let body = json!({"meta": {}, key: [{}, {}]});
            assert_eq!(found(None, body), Ok((format!("/{key}"), 2)), "{key}");
        }
        assert!(found(None, json!({"meta": 1}))
            .unwrap_err()
            .contains("keys: meta"));
        assert!(body::parse(b"<html>").unwrap_err().contains("not JSON"));
        assert!(found(None, json!(42)).unwrap_err().contains("not a list"));
    }

    #[test]
    fn records_are_found_at_their_pointer() {
        let body = json!({"body": {"measuregrps": [{}, {}, {}], "more": 0}, "status": 0});
        assert_eq!(
            found(Some("/body/measuregrps"), body.clone()),
            Ok(("/body/measuregrps".into(), 3))
        );
        assert!(found(Some("/body/groups"), body.clone())
            .unwrap_err()
            .contains("nothing at `/body/groups` (keys there: measuregrps, more)"));
        assert!(found(Some("/status"), body)
            .unwrap_err()
            .contains("`/status` holds 0, not a list"));
        // The first of a list of lists, absent when the list is empty.
        assert_eq!(found(Some("/0"), json!([[{}, {}]])), Ok(("/0".into(), 2)));
        assert_eq!(found(Some("/0"), json!([])), Ok(("/0".into(), 0)));
        assert_eq!(found(Some(""), json!([{}])), Ok((String::new(), 1)));
        assert_eq!(
            found(Some("/data"), json!({"data": null})),
            Ok(("/data".into(), 0))
        );
        // An object is one record; escaped tokens are read as RFC 6901 says.
        let text = json!({"a/b": {"c~d": {"steps": 3}}}).to_string();
        let pointer = JsonPointer::parse("/a~1b/c~0d").unwrap();
        let f = find_records(Some(&pointer), body::parse(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(f.items.len(), 1);
        assert_eq!(f.items[0].get(), r#"{"steps":3}"#);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = t("2026-11-20T12:00:00Z");
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 20 Nov 2026 12:01:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 20 Nov 2026 11:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn backoff_doubles() {
        let policy = PullRetry {
            base_delay: Duration::from_millis(100),
            ..PullRetry::default()
        };
        let waits: Vec<_> = (1..=3).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400]);
    }
}
