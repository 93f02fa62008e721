//! The `http` source: a health-data style API (see `reference/source-sync.md`).
//!
//! Every query carries `updated_since` (and `updated_before` for closed windows of at most
//! `window_days`), pages are walked through the `Link` header's `next` (or `offset`, bounded by
//! `X-Total-Count`, where there is no `Link`), 429 is waited out when the wait is short, and 5xx
//! and network errors are retried a bounded number of times.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use reqwest::header::{HeaderMap, ACCEPT, LINK, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{Map, Value};
use url::Url;

use super::link::next_link;
use super::record::{Malformed, RecordParser, Unparsed};
use super::{emit, excerpt, PullEvent, PullPlan, PullSummary, Sink, Source, SourceError};
use crate::config::{HttpAuth, HttpSourceConfig, SourceConfig};
use crate::error::error_chain;
use exist_api::Secret;

/// How far an open-ended pull's cursor stays behind its start: clock skew between the source
/// and this machine must not lose records; de-duplication by id makes the overlap harmless.
pub const OVERLAP: TimeDelta = TimeDelta::minutes(5);

/// How much shorter than `window_days` a window is kept: a source whose clock runs ahead of this
/// machine's would otherwise see a window of exactly 31 days as a little longer, and refuse it.
pub const WINDOW_MARGIN: TimeDelta = TimeDelta::hours(1);

/// Empty pages in a row, each linking to another, after which a query is stopped: a source's
/// paging gone wrong, not data.
const MAX_EMPTY_PAGES: usize = 3;

/// The format of `updated_since` and `updated_before`: UTC, `YYYYMMDDTHHmmssZ`.
const QUERY_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Writes a time the way `updated_since` and `updated_before` take it (`20140110T000000Z`).
pub fn format_query_time(at: DateTime<Utc>) -> String {
    at.format(QUERY_TIME_FORMAT).to_string()
}

/// How an HTTP source retries and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
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

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5 * 60),
            max_rate_limited: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first).
    fn backoff(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
    }
}

/// A health-data API collection, pulled with `updated_since` cursors.
#[derive(Debug)]
pub struct HttpSource {
    name: String,
    config: HttpSourceConfig,
    parser: RecordParser,
    client: reqwest::Client,
    retry: RetryPolicy,
    /// The OAuth2 tokens of a source with `auth.oauth2`.
    oauth: Option<std::sync::Arc<super::oauth2::SourceAuth>>,
}

/// The credentials of one pull, read from the environment when the pull starts.
enum Credentials {
    None,
    Bearer(Secret),
    BasicUser(Secret),
}

/// One query: a window of change times and the cursor that is safe once it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Query {
    since: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
    cursor: DateTime<Utc>,
}

/// A successful response.
struct Page {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl HttpSource {
    /// The source a `kind = "http"` `[[source]]` describes, with the default [`RetryPolicy`].
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
            ),
            client,
            retry: RetryPolicy::default(),
            oauth: match &http.auth {
                HttpAuth::OAuth2(o) => {
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
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn credentials(&self) -> Result<Credentials, SourceError> {
        let read = |var: &String| match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            _ => Err(SourceError::MissingEnv {
                source_name: self.name.clone(),
                var: var.clone(),
            }),
        };
        Ok(match &self.config.auth {
            HttpAuth::None => Credentials::None,
            HttpAuth::BearerEnv(var) => Credentials::Bearer(read(var)?),
            HttpAuth::BasicUserEnv(var) => Credentials::BasicUser(read(var)?),
            HttpAuth::OAuth2(_) => match &self.oauth {
                Some(auth) => Credentials::Bearer(auth.access_token().await?),
                None => Credentials::None,
            },
        })
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
        let mut url = first.clone();
        let mut visited = HashSet::from([first.clone()]);
        let mut offset = 0u64;
        let mut empty_in_a_row = 0;
        for page_number in 1.. {
            let page = self.fetch(&url, credentials, summary).await?;
            let total = header_number(&page.headers, "x-total-count");
            if let (1, Some(total)) = (page_number, total) {
                emit(&self.name, sink, PullEvent::Total(total))?;
            }
            let count = self.deliver_page(&url, &page.body, page_number, sink, summary)?;
            summary.pages += 1;
            let next = if page.headers.contains_key(LINK) {
                next_link(&page.headers, &url)
            } else {
                // No Link header: step the offset, bounded by the total (or by a short page).
                offset += u64::from(self.config.page_limit);
                let more = count > 0
                    && total.map_or(count >= self.config.page_limit as usize, |t| offset < t);
                more.then(|| with_offset(&first, offset))
            };
            let Some(next) = next else { break };
            empty_in_a_row = if count == 0 { empty_in_a_row + 1 } else { 0 };
            if empty_in_a_row >= MAX_EMPTY_PAGES {
                return Err(self.unbounded(
                    format!("the source kept sending empty pages that link to another one ({MAX_EMPTY_PAGES} in a row, at {url})"),
                    "this is the source's paging going wrong; check the source's url and params, or report it to the service",
                ));
            }
            if page_number >= self.config.max_pages as usize {
                return Err(self.unbounded(
                    format!("one query went past {} pages (max_pages) and the source still links to more", self.config.max_pages),
                    "raise max_pages for this source if it really holds that much, or narrow the query with params",
                ));
            }
            self.check_next(&url, &next, &mut visited)?;
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

    /// The query's first page: the configured URL and `params`, the window, and `limit`.
    fn first_url(&self, query: &Query) -> Url {
        let mut url = self.config.url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in &self.config.params {
                pairs.append_pair(key, value);
            }
            pairs.append_pair("updated_since", &format_query_time(query.since));
            if let Some(before) = query.before {
                pairs.append_pair("updated_before", &format_query_time(before));
            }
            pairs.append_pair("limit", &self.config.page_limit.to_string());
        }
        url
    }

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

    fn unbounded(&self, what: String, fix: &str) -> SourceError {
        SourceError::Unbounded {
            source_name: self.name.clone(),
            what,
            fix: fix.to_owned(),
        }
    }

    /// Refuses a `next` link that would send the credentials elsewhere or walk in a circle.
    fn check_next(
        &self,
        url: &Url,
        next: &Url,
        visited: &mut HashSet<Url>,
    ) -> Result<(), SourceError> {
        let problem = if next.origin() != self.config.url.origin() {
            format!("the next-page link points to another site ({next}); the source's credentials are not sent there")
        } else if !visited.insert(next.clone()) {
            format!("the next-page link goes back to {next}: the pagination loops")
        } else {
            return Ok(());
        };
        Err(SourceError::BadResponse {
            source_name: self.name.clone(),
            url: url.to_string(),
            problem,
        })
    }

    /// Parses one page's records and hands them over; returns how many items the page had.
    fn deliver_page(
        &self,
        url: &Url,
        body: &[u8],
        page_number: usize,
        sink: &mut Sink<'_>,
        summary: &mut PullSummary,
    ) -> Result<usize, SourceError> {
        let items = page_items(body).map_err(|problem| SourceError::BadResponse {
            source_name: self.name.clone(),
            url: url.to_string(),
            problem,
        })?;
        let count = items.len();
        let mut records = Vec::with_capacity(count);
        let mut malformed = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let at = |id: Option<&str>| match id {
                Some(id) => format!("id {id}"),
                None => format!("page {page_number}, item {}", index + 1),
            };
            let result = match item {
                Value::Object(fields) => self.parser.parse(fields, at),
                other => Err(Unparsed {
                    location: at(None),
                    reason: format!("{} is not a JSON object", excerpt(&other.to_string(), 40)),
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
        Ok(count)
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

    /// One request for the first page of the last day's changes, without retries: whether the
    /// source answers and takes its credentials (`exist-agent doctor`).
    pub async fn probe(&self) -> Result<(), SourceError> {
        let credentials = self.credentials().await?;
        let now = Utc::now();
        let url = self.first_url(&Query {
            since: now - TimeDelta::days(1),
            before: None,
            cursor: now,
        });
        match self.send(&url, &credentials).await {
            Ok((status, _)) if status.is_success() => Ok(()),
            Ok((status, page)) => Err(SourceError::Status {
                source_name: self.name.clone(),
                url: url.to_string(),
                status: status.as_u16(),
                body: excerpt(&String::from_utf8_lossy(&page.body), 200),
            }),
            Err(e) => Err(SourceError::Network {
                source_name: self.name.clone(),
                url: url.to_string(),
                detail: error_chain(&e),
            }),
        }
    }

    async fn send(
        &self,
        url: &Url,
        credentials: &Credentials,
    ) -> Result<(StatusCode, Page), reqwest::Error> {
        let request = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json");
        // reqwest marks both Authorization headers sensitive, so they never show in its logs.
        let request = match credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::BasicUser(key) => request.basic_auth(key.expose(), Some("")),
        };
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Vec::from(response.bytes().await?);
        Ok((status, Page { headers, body }))
    }
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Pulls what `plan` asks, query by query; each query ends with its
    /// [`PullEvent::WindowDone`]. An incremental pull is one open-ended query (preceded by
    /// closed windows when the cursor is older than `window_days`), whose cursor is the pull's
    /// start minus [`OVERLAP`].
    async fn pull(&self, plan: &PullPlan, sink: &mut Sink<'_>) -> Result<PullSummary, SourceError> {
        let mut credentials = self.credentials().await?;
        let window = TimeDelta::days(i64::from(self.config.window_days)) - WINDOW_MARGIN;
        let mut summary = PullSummary::default();
        let mut refreshed = false;
        for query in plan_queries(plan, Utc::now(), window) {
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

/// The queries of a pull, in order, started at `now`.
///
/// Times are whole seconds (the query format has no fractions) and windows are contiguous.
/// A cursor is never later than `now - OVERLAP`: a record changed just before `now` may carry a
/// slightly earlier time from the source's clock.
fn plan_queries(plan: &PullPlan, now: DateTime<Utc>, window: TimeDelta) -> Vec<Query> {
    let settled = now - OVERLAP;
    match *plan {
        PullPlan::Incremental { since } => {
            let since = whole_seconds(since.unwrap_or(now - window));
            let mut queries = closed_windows(since, whole_seconds(now - window), window, settled);
            let open_since = queries.last().and_then(|q| q.before).unwrap_or(since);
            queries.push(Query {
                since: open_since,
                before: None,
                cursor: settled,
            });
            queries
        }
        PullPlan::Windows { from, to } => {
            closed_windows(whole_seconds(from), whole_seconds(to), window, settled)
        }
    }
}

/// Consecutive windows of at most `window` covering `from..to`.
fn closed_windows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    window: TimeDelta,
    settled: DateTime<Utc>,
) -> Vec<Query> {
    let mut queries = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + window).min(to);
        queries.push(Query {
            since: start,
            before: Some(end),
            cursor: end.min(settled),
        });
        start = end;
    }
    queries
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

/// `url` with its `offset` parameter set to `offset`.
fn with_offset(url: &Url, offset: u64) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "offset")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("offset", &offset.to_string());
    next
}

/// The items of a page: a JSON array, or an object with a `data`, `results` or `items` array.
fn page_items(body: &[u8]) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}): {:?}",
            excerpt(&String::from_utf8_lossy(body), 100)
        )
    })?;
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut envelope) => ["data", "results", "items"]
            .into_iter()
            .find_map(|key| match envelope.remove(key) {
                Some(Value::Array(items)) => Some(items),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "the answer is an object without a `data`, `results` or `items` list (keys: {})",
                    keys(&envelope)
                )
            }),
        other => Err(format!(
            "the answer is {}, not a list of records",
            excerpt(&other.to_string(), 40)
        )),
    }
}

fn keys(object: &Map<String, Value>) -> String {
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

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn query_times_are_written_as_the_api_wants() {
        let at = t("2014-01-10T00:00:00Z");
        assert_eq!(format_query_time(at), "20140110T000000Z");
    }

    #[test]
    fn incremental_pulls_are_one_open_query() {
        let now = t("2026-11-20T12:00:00.750Z");
        let day = TimeDelta::days(1);
        let queries = plan_queries(
            &PullPlan::Incremental {
                since: Some(t("2026-11-20T10:00:00.5Z")),
            },
            now,
            TimeDelta::days(31),
        );
        assert_eq!(
            queries,
            vec![Query {
                since: t("2026-11-20T10:00:00Z"),
                before: None,
                cursor: now - OVERLAP
            }]
        );
        // No cursor yet: the last window.
        let first = plan_queries(&PullPlan::Incremental { since: None }, now, day * 3);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].since, t("2026-11-17T12:00:00Z"));
    }

    #[test]
    fn an_old_cursor_is_caught_up_in_windows() {
        let now = t("2026-11-20T12:00:00Z");
        let queries = plan_queries(
            &PullPlan::Incremental {
                since: Some(t("2026-09-01T00:00:00Z")),
            },
            now,
            TimeDelta::days(31),
        );
        let spans: Vec<_> = queries.iter().map(|q| (q.since, q.before)).collect();
        assert_eq!(
            spans,
            vec![
                (t("2026-09-01T00:00:00Z"), Some(t("2026-10-02T00:00:00Z"))),
                (t("2026-10-02T00:00:00Z"), Some(t("2026-10-20T12:00:00Z"))),
                (t("2026-10-20T12:00:00Z"), None),
            ]
        );
    }

    #[test]
    fn windows_are_contiguous_bounded_and_their_cursors_settled() {
        let now = t("2026-11-20T12:00:00Z");
        let queries = plan_queries(
            &PullPlan::Windows {
                from: now - TimeDelta::days(100),
                to: now,
            },
            now,
            TimeDelta::days(31),
        );
        assert_eq!(queries.len(), 4);
        assert_eq!(queries[0].since, now - TimeDelta::days(100));
        for pair in queries.windows(2) {
            assert_eq!(pair[0].before, Some(pair[1].since));
            assert_eq!(pair[0].cursor, pair[1].since);
        }
        assert!(queries
            .iter()
            .all(|q| q.before.unwrap() - q.since <= TimeDelta::days(31)));
        let last = queries.last().unwrap();
        assert_eq!(last.before, Some(now));
        assert_eq!(last.cursor, now - OVERLAP);
        let empty = PullPlan::Windows { from: now, to: now };
        assert!(plan_queries(&empty, now, TimeDelta::days(31)).is_empty());
    }

    #[test]
    fn pages_are_arrays_or_envelopes() {
        assert_eq!(page_items(b"[{\"a\":1}]").unwrap().len(), 1);
        for key in ["data", "results", "items"] {
            let body = format!("{{\"meta\":{{}},\"{key}\":[{{}},{{}}]}}");
            assert_eq!(page_items(body.as_bytes()).unwrap().len(), 2, "{key}");
        }
        assert!(page_items(b"{\"meta\":1}")
            .unwrap_err()
            .contains("keys: meta"));
        assert!(page_items(b"<html>").unwrap_err().contains("not JSON"));
        assert!(page_items(b"42").unwrap_err().contains("not a list"));
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
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        let waits: Vec<_> = (1..=3).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400]);
    }

    #[test]
    fn the_offset_fallback_replaces_the_offset() {
        let url = Url::parse("https://h/a?x=1&offset=5&limit=50").unwrap();
        assert_eq!(
            with_offset(&url, 100).as_str(),
            "https://h/a?x=1&limit=50&offset=100"
        );
    }
}
