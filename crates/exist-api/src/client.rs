//! The Exist API v2 client: typed requests, every write in batches of at most 35, results read
//! item by item (200 and 202 alike), 401 answered by one refresh, 429 surfaced at once, and 5xx
//! and network errors retried with a bounded backoff, except where a retry could count twice.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::auth::{Auth, AuthError};
use super::types::{AttributeName, Batch, Day, Group, Value, ValueType};
use crate::error_chain;

/// Why a call to Exist failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ExistError {
    /// No usable token.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Exist's hourly limit is spent: no more calls until the hour ends.
    #[error("Exist's rate limit (300 requests an hour) is reached; pending values are kept and sent after the hour ends")]
    RateLimited,
    /// Server errors or network failures outlasted the retries.
    #[error("Exist could not be reached at {endpoint}: {detail}; pending values are kept for the next run")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// What happened last.
        detail: String,
    },
    /// A call that must not be repeated failed in a way that leaves its fate unknown.
    #[error("the call to {endpoint} may or may not have reached Exist ({detail}); it is not repeated, because repeating it could count twice")]
    Ambiguous {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        detail: String,
    },
    /// Exist refused the call itself (not one item).
    #[error("Exist refused the call to {endpoint} with HTTP {status}: {body}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The status.
        status: u16,
        /// The start of the reply.
        body: String,
    },
}

/// Where the client counts its requests against Exist's hourly limit (300 per token): asked
/// before every request, so that no caller has to remember to count.
pub trait RequestBudget: Send + Sync {
    /// One more request is about to go out; refused when the hour's budget is spent.
    fn spend(&self) -> Result<(), BudgetRefusal>;
    /// Exist answered 429: nothing more until the hour ends.
    fn exhausted(&self);
}

/// Why the budget refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetRefusal {
    /// The hour's requests are spent (counted here, or Exist said 429).
    Spent,
    /// The count could not be kept (e.g. the disk is full): nothing is sent uncounted.
    Unavailable(String),
}

/// Exist's code for an item it refused. Codes this client does not know are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemErrorCode {
    /// A required field is missing.
    MissingField,
    /// The value or the item is not valid.
    Validation,
    /// The attribute belongs to another service.
    Unauthorised,
    /// No such attribute or template.
    NotFound,
    /// The token lacks the group's write scope.
    NotAllowed,
    /// The attribute (label or template) exists already.
    Exists,
    /// Any other code.
    Other(String),
}

impl ItemErrorCode {
    /// The code as Exist writes it.
    pub fn parse(code: &str) -> Self {
        match code {
            "missing_field" => Self::MissingField,
            "validation" => Self::Validation,
            "unauthorised" | "unauthorized" => Self::Unauthorised,
            "not_found" => Self::NotFound,
            "not_allowed" => Self::NotAllowed,
            "exists" | "already_exists" => Self::Exists,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as Exist writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::MissingField => "missing_field",
            Self::Validation => "validation",
            Self::Unauthorised => "unauthorised",
            Self::NotFound => "not_found",
            Self::NotAllowed => "not_allowed",
            Self::Exists => "exists",
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for ItemErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How 5xx and network failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Delay before the second try; doubled each time.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // An hourly agent needs no long backoff: a failing run keeps its data for the next one.
        Self {
            attempts: 3,
            base_delay: Duration::from_millis(500),
        }
    }
}

/// One value to write: the day's total of an attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateItem {
    /// The attribute.
    pub name: AttributeName,
    /// The day.
    pub date: Day,
    /// The total.
    pub value: Value,
}

/// A delta to add to a day's total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncrementItem {
    /// The attribute.
    pub name: AttributeName,
    /// The day.
    pub date: Day,
    /// What to add.
    pub value: Value,
}

impl WriteItem for IncrementItem {
    fn key(&self) -> String {
        format!("{}/{}", self.name, self.date)
    }
    fn key_of(reply: &serde_json::Value) -> Option<String> {
        UpdateItem::key_of(reply)
    }
}

/// An attribute to take ownership of.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AcquireItem {
    /// By template.
    Template {
        /// The template.
        template: String,
        /// Always false: values come from an integration.
        manual: bool,
    },
    /// By name.
    Name {
        /// The attribute's name.
        name: String,
        /// Always false: values come from an integration.
        manual: bool,
    },
}

/// An attribute to give up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseItem {
    /// Its name.
    pub name: AttributeName,
}

impl WriteItem for ReleaseItem {
    fn key(&self) -> String {
        self.name.to_string()
    }
    fn key_of(reply: &serde_json::Value) -> Option<String> {
        str_field(reply, "name").map(str::to_owned)
    }
}

/// A custom attribute to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateItem {
    /// Its label.
    pub label: String,
    /// Its group.
    pub group: Group,
    /// Its value type.
    pub value_type: ValueType,
    /// Always false (Exist's default is true, which would mark it as tracked by hand).
    pub manual: bool,
}

/// Something a write call carries, matched back to Exist's reply by a key.
pub trait WriteItem: Serialize + Clone {
    /// The item's key.
    fn key(&self) -> String;
    /// The key of an object in Exist's reply (which echoes the input).
    fn key_of(reply: &serde_json::Value) -> Option<String>;
}

fn str_field<'a>(v: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(serde_json::Value::as_str)
}

impl WriteItem for UpdateItem {
    fn key(&self) -> String {
        format!("{}/{}", self.name, self.date)
    }
    fn key_of(reply: &serde_json::Value) -> Option<String> {
        Some(format!(
            "{}/{}",
            str_field(reply, "name")?,
            str_field(reply, "date")?
        ))
    }
}

impl WriteItem for AcquireItem {
    fn key(&self) -> String {
        match self {
            Self::Template { template, .. } => template.clone(),
            Self::Name { name, .. } => name.clone(),
        }
    }
    fn key_of(reply: &serde_json::Value) -> Option<String> {
        str_field(reply, "template")
            .or_else(|| str_field(reply, "name"))
            .map(str::to_owned)
    }
}

/// Labels are matched without regard to case: Exist may store a tag's label lowercased.
impl WriteItem for CreateItem {
    fn key(&self) -> String {
        self.label.trim().to_lowercase()
    }
    fn key_of(reply: &serde_json::Value) -> Option<String> {
        str_field(reply, "label").map(|l| l.trim().to_lowercase())
    }
}

/// One item Exist refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFailure<T> {
    /// The item.
    pub item: T,
    /// Exist's code.
    pub code: ItemErrorCode,
    /// Exist's words.
    pub error: String,
}

impl<T> ItemFailure<T> {
    /// Whether Exist says another service owns the attribute: by its documented code, or by its
    /// documented words ("does not belong to this service") whatever the code, since Exist
    /// documents the code for `release` only.
    pub fn is_not_owner(&self) -> bool {
        self.code == ItemErrorCode::Unauthorised || {
            let words = self.error.to_ascii_lowercase();
            words.contains("does not belong to") || words.contains("not owned by")
        }
    }
}

/// The per-item result of write calls.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome<T> {
    /// Items Exist listed under `success`, with the object it returned for each.
    pub succeeded: Vec<(T, Option<serde_json::Value>)>,
    /// Items Exist listed under `failed`.
    pub failed: Vec<ItemFailure<T>>,
    /// Items the reply does not clearly account for (neither listed as a success, nor matched to
    /// a failure): never taken as acknowledged; the caller keeps them for another try.
    pub unaccounted: Vec<T>,
}

impl<T> Default for WriteOutcome<T> {
    fn default() -> Self {
        Self {
            succeeded: Vec::new(),
            failed: Vec::new(),
            unaccounted: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct WriteReply {
    #[serde(default)]
    success: Vec<serde_json::Value>,
    #[serde(default)]
    failed: Vec<serde_json::Value>,
}

/// The user's Exist profile, as far as the agent needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    /// The user name.
    pub username: String,
    /// The IANA timezone of the user's days.
    pub timezone: String,
}

/// The most pages of one list the client follows.
pub const MAX_PAGES: usize = 50;

/// What Exist holds for one day of an attribute (`attributes/values/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DayHeld {
    /// The day.
    pub date: Day,
    /// The value, `None` for a day without data.
    pub value: Option<Value>,
}

/// An attribute as listed by `attributes/owned/`.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnedInfo {
    /// Its name.
    pub name: String,
    /// Its label.
    #[serde(default)]
    pub label: String,
}

/// One page of a paged list.
#[derive(Deserialize)]
struct ListPage<T> {
    next: Option<String>,
    results: Vec<T>,
}

/// A client for one user's Exist account.
pub struct ExistClient {
    http: reqwest::Client,
    api: Url,
    auth: Arc<Auth>,
    budget: Arc<dyn RequestBudget>,
    retry: RetryPolicy,
}

impl ExistClient {
    /// A client for the API under `base_url` (`{base_url}/api/2/`), counting every request in
    /// `budget`.
    pub fn new(base_url: &Url, auth: Arc<Auth>, budget: Arc<dyn RequestBudget>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("exist-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        Self {
            http,
            api: base_url
                .join("api/2/")
                .expect("a base URL joins a relative path"),
            auth,
            budget,
            retry: RetryPolicy::default(),
        }
    }

    /// Uses `retry` for 5xx and network failures.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The user's profile.
    pub async fn profile(&self) -> Result<Profile, ExistError> {
        self.get_json("accounts/profile/").await
    }

    /// Every attribute this client owns.
    pub async fn owned(&self) -> Result<Vec<OwnedInfo>, ExistError> {
        self.all_pages("attributes/owned/?limit=100").await
    }

    /// What Exist holds for `attribute` on the `days` days up to `date_max`, newest first; a day
    /// without data is `None`. Needs the attribute group's read scope (without it, Exist says the
    /// attribute is not there).
    pub async fn values(
        &self,
        attribute: &AttributeName,
        days: u32,
        date_max: Day,
    ) -> Result<Vec<DayHeld>, ExistError> {
        let limit = days.clamp(1, 100);
        let path =
            format!("attributes/values/?attribute={attribute}&limit={limit}&date_max={date_max}");
        let mut held: Vec<DayHeld> = self.all_pages(&path).await?;
        held.retain(|d| d.date <= date_max);
        held.truncate(days as usize);
        Ok(held)
    }

    /// Every item of a paged list, following `next` (an absolute URL: only what follows the
    /// API's path is kept, whichever scheme and host Exist writes), at most [`MAX_PAGES`] pages.
    async fn all_pages<T: DeserializeOwned>(&self, first: &str) -> Result<Vec<T>, ExistError> {
        let endpoint = first.split('?').next().unwrap_or(first).to_owned();
        let mut out = Vec::new();
        let mut path = first.to_owned();
        for _ in 0..MAX_PAGES {
            let page: ListPage<T> = self.get_json(&path).await?;
            out.extend(page.results);
            let Some(next) = page.next else {
                return Ok(out);
            };
            path = Url::parse(&next)
                .ok()
                .and_then(|u| {
                    let rest = u.path().strip_prefix(self.api.path())?.to_owned();
                    Some(match u.query() {
                        Some(q) => format!("{rest}?{q}"),
                        None => rest,
                    })
                })
                .ok_or_else(|| ExistError::Refused {
                    endpoint: endpoint.clone(),
                    status: 200,
                    body: format!("unexpected next page {next}"),
                })?;
        }
        Err(ExistError::Refused {
            endpoint,
            status: 200,
            body: format!("the list went on past {MAX_PAGES} pages"),
        })
    }

    /// Takes ownership of attributes (templates are created if the user lacks them).
    pub async fn acquire(
        &self,
        items: Vec<AcquireItem>,
    ) -> Result<WriteOutcome<AcquireItem>, ExistError> {
        self.write("attributes/acquire/?success_objects=1", items, true)
            .await
    }

    /// Gives up ownership of attributes.
    pub async fn release(
        &self,
        names: Vec<AttributeName>,
    ) -> Result<WriteOutcome<ReleaseItem>, ExistError> {
        let items = names.into_iter().map(|name| ReleaseItem { name }).collect();
        self.write("attributes/release/", items, true).await
    }

    /// Creates custom attributes; the reply names them.
    pub async fn create(
        &self,
        items: Vec<CreateItem>,
    ) -> Result<WriteOutcome<CreateItem>, ExistError> {
        // A retried create whose first try landed would fail with "exists", which the caller
        // handles by acquiring: so creating is safe to retry.
        self.write("attributes/create/?success_objects=1", items, true)
            .await
    }

    /// Writes day totals (idempotent: a total overwrites).
    pub async fn update(
        &self,
        items: Vec<UpdateItem>,
    ) -> Result<WriteOutcome<UpdateItem>, ExistError> {
        self.write("attributes/update/", items, true).await
    }

    /// Adds deltas to day totals. Not idempotent: a call whose fate is unknown (a dropped
    /// connection, a 5xx) is never repeated, since repeating it could count twice. The reply's
    /// objects carry `current`, the new total.
    pub async fn increment(
        &self,
        items: Vec<IncrementItem>,
    ) -> Result<WriteOutcome<IncrementItem>, ExistError> {
        self.write("attributes/increment/", items, false).await
    }

    /// Sends `items` in batches of at most 35, collecting the per-item results. Stops at the
    /// first call that fails as a whole; the items of later batches are then not attempted.
    async fn write<T: WriteItem>(
        &self,
        path: &str,
        items: Vec<T>,
        idempotent: bool,
    ) -> Result<WriteOutcome<T>, ExistError> {
        let mut outcome = WriteOutcome::default();
        for batch in Batch::split(items) {
            let reply: WriteReply = self
                .call_json(Method::POST, path, Some(&batch), idempotent)
                .await?;
            merge_reply(batch, reply, &mut outcome);
        }
        Ok(outcome)
    }

    async fn get_json<R: DeserializeOwned>(&self, path: &str) -> Result<R, ExistError> {
        self.call_json::<(), R>(Method::GET, path, None, true).await
    }

    async fn call_json<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotent: bool,
    ) -> Result<R, ExistError> {
        let endpoint = path.split('?').next().unwrap_or(path).to_owned();
        let url = self.api.join(path).map_err(|e| ExistError::Refused {
            endpoint: endpoint.clone(),
            status: 0,
            body: e.to_string(),
        })?;
        let bytes = self.send(method, url, body, idempotent, &endpoint).await?;
        serde_json::from_slice(&bytes).map_err(|e| ExistError::Refused {
            endpoint,
            status: 200,
            body: format!("unreadable reply ({e})"),
        })
    }

    /// One call with the policies: refresh once on 401, stop on 429, retry 5xx and network
    /// errors when that cannot count twice.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        idempotent: bool,
        endpoint: &str,
    ) -> Result<Vec<u8>, ExistError> {
        let mut token = self.auth.access_token().await?;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            match self.budget.spend() {
                Ok(()) => {}
                Err(BudgetRefusal::Spent) => return Err(ExistError::RateLimited),
                Err(BudgetRefusal::Unavailable(detail)) => {
                    return Err(ExistError::Unavailable {
                        endpoint: endpoint.to_owned(),
                        detail: format!(
                            "the hour's request count cannot be kept ({detail}); nothing was sent"
                        ),
                    })
                }
            }
            let failure = match request.send().await {
                Ok(response) => match response.status() {
                    s if s.is_success() => {
                        return response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                            ExistError::Unavailable {
                                endpoint: endpoint.to_owned(),
                                detail: error_chain(&e),
                            }
                        })
                    }
                    StatusCode::UNAUTHORIZED if !refreshed => {
                        tracing::debug!(endpoint, "Exist answered 401; refreshing the token once");
                        token = self.auth.after_unauthorized(&token).await?;
                        refreshed = true;
                        attempt -= 1;
                        continue;
                    }
                    StatusCode::UNAUTHORIZED => {
                        return Err(AuthError::Refused("HTTP 401 after a refresh".into()).into());
                    }
                    StatusCode::TOO_MANY_REQUESTS => {
                        self.budget.exhausted();
                        return Err(ExistError::RateLimited);
                    }
                    s if s.is_server_error() => format!("HTTP {s}"),
                    s => {
                        let text = response.text().await.unwrap_or_default();
                        return Err(ExistError::Refused {
                            endpoint: endpoint.to_owned(),
                            status: s.as_u16(),
                            body: text.chars().take(300).collect(),
                        });
                    }
                },
                // A connection that never opened carried nothing: safe to retry even when
                // repeating could count twice.
                Err(e) if !idempotent && !e.is_connect() => {
                    return Err(ExistError::Ambiguous {
                        endpoint: endpoint.to_owned(),
                        detail: error_chain(&e),
                    })
                }
                Err(e) => error_chain(&e),
            };
            if !idempotent && failure.starts_with("HTTP") {
                return Err(ExistError::Ambiguous {
                    endpoint: endpoint.to_owned(),
                    detail: failure,
                });
            }
            if attempt >= self.retry.attempts {
                return Err(ExistError::Unavailable {
                    endpoint: endpoint.to_owned(),
                    detail: failure,
                });
            }
            let delay = self.retry.base_delay * 2u32.pow(attempt - 1);
            tracing::warn!(endpoint, %failure, ?delay, "Exist call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Splits a batch by Exist's reply: an item is a success only when `success` lists it, a
/// failure when a `failed` entry matches it; anything else is unaccounted, never acknowledged.
/// A `failed` entry that matches no item (its `name` or `date` missing or altered) makes every
/// item not listed as a success unaccounted too, since it may be about any of them.
fn merge_reply<T: WriteItem>(batch: Batch<T>, reply: WriteReply, outcome: &mut WriteOutcome<T>) {
    let mut failures: Vec<(Option<String>, ItemErrorCode, String)> = reply
        .failed
        .iter()
        .map(|f| {
            (
                T::key_of(f),
                ItemErrorCode::parse(str_field(f, "error_code").unwrap_or("unknown")),
                str_field(f, "error")
                    .unwrap_or("no reason given")
                    .to_owned(),
            )
        })
        .collect();
    let mut successes: Vec<(Option<String>, &serde_json::Value)> =
        reply.success.iter().map(|s| (T::key_of(s), s)).collect();
    let mut rest = Vec::new();
    for item in batch.into_items() {
        let key = Some(item.key());
        if let Some(pos) = failures.iter().position(|(k, _, _)| *k == key) {
            let (_, code, error) = failures.swap_remove(pos);
            outcome.failed.push(ItemFailure { item, code, error });
        } else if let Some(pos) = successes.iter().position(|(k, _)| *k == key) {
            let (_, object) = successes.swap_remove(pos);
            outcome.succeeded.push((item, Some(object.clone())));
        } else {
            rest.push(item);
        }
    }
    if !failures.is_empty() {
        tracing::warn!(
            unmatched = failures.len(),
            "Exist's reply lists failures that match no item sent; the items it does not list as successes stay pending"
        );
    }
    outcome.unaccounted.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(name: &str, date: &str, v: i64) -> UpdateItem {
        UpdateItem {
            name: AttributeName::new(name).unwrap(),
            date: date.parse().unwrap(),
            value: Value::Int(v),
        }
    }

    #[test]
    fn replies_are_read_item_by_item() {
        let batch = Batch::split(vec![
            item("steps", "2026-11-20", 1),
            item("steps", "2026-11-21", 2),
            item("mood", "2026-11-21", 12),
        ])
        .pop()
        .unwrap();
        let reply: WriteReply = serde_json::from_value(json!({
            "success": [{"name": "steps", "date": "2026-11-20", "value": 1}],
            "failed": [{"name": "mood", "date": "2026-11-21", "value": 12, "error_code": "validation", "error": "out of range"}]
        }))
        .unwrap();
        let mut outcome = WriteOutcome::default();
        merge_reply(batch, reply, &mut outcome);
        // Only what `success` lists is acknowledged (audit F4: an item the reply does not account
        // for was once taken as accepted, and so never sent again).
        assert_eq!(outcome.succeeded.len(), 1);
        assert_eq!(outcome.unaccounted.len(), 1, "not listed as a success");
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].code, ItemErrorCode::Validation);
        assert_eq!(outcome.failed[0].item.name.as_str(), "mood");
    }

    #[test]
    fn items_serialize_as_exist_expects() {
        assert_eq!(
            serde_json::to_value(item("steps", "2026-11-20", 5)).unwrap(),
            json!({"name": "steps", "date": "2026-11-20", "value": 5})
        );
        let create = CreateItem {
            label: "Espressos".into(),
            group: Group::Food,
            value_type: ValueType::Integer,
            manual: false,
        };
        assert_eq!(
            serde_json::to_value(create).unwrap(),
            json!({"label": "Espressos", "group": "food", "value_type": 0, "manual": false})
        );
        let acquire = AcquireItem::Template {
            template: "steps".into(),
            manual: false,
        };
        assert_eq!(
            serde_json::to_value(acquire).unwrap(),
            json!({"template": "steps", "manual": false})
        );
    }
}
