//! The health-data fake over real HTTP: the conventions of `reference/source-sync.md`
//! (`updated_since` in `YYYYMMDDTHHmmssZ`, 31-day windows, the last 24 hours without a cursor,
//! `limit` up to 500, `Link` and `X-Total-Count`), its authentication and its faults.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use exist_fakes::health::{format_query_time, parse_query_time, HealthSandbox, COLLECTION_PATH};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use url::Url;

async fn start() -> HealthSandbox {
    HealthSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the fake starts")
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `n` records `{prefix}-000`, ... updated `age` ago, each with a second more.
fn seed(sandbox: &HealthSandbox, prefix: &str, n: usize, age: TimeDelta) {
    let base = Utc::now() - age;
    for i in 0..n {
        let updated = base + TimeDelta::seconds(i64::try_from(i).unwrap());
        sandbox.upsert(json!({
            "id": format!("{prefix}-{i:03}"),
            "startTime": "2026-11-20T08:00:00.000Z",
            "tzOffset": "-08:00",
            "steps": 100 + i,
            "source": "fitbit",
            "updatedAt": iso(updated),
        }));
    }
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn get(url: &str, token: Option<&str>) -> Page {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    Page {
        status,
        headers,
        body,
    }
}

/// The `rel="next"` target of the `Link` headers, resolved against `base`: a small reader for
/// the shapes this fake writes (several headers or one, quoted or bare `rel`, titles holding
/// commas and semicolons), not a general RFC 8288 parser.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all("link") {
        let mut rest = value.to_str().unwrap();
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>')? + open;
            let target = &rest[open + 1..close];
            // The parameters run to the next `<` outside quotes.
            let mut in_quotes = false;
            let mut end = rest.len();
            for (i, c) in rest[close..].char_indices() {
                match c {
                    '"' => in_quotes = !in_quotes,
                    '<' if !in_quotes => {
                        end = close + i;
                        break;
                    }
                    _ => {}
                }
            }
            let params = &rest[close + 1..end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p == "rel=next" || p == "rel=\"next\""
            });
            if is_next {
                return base.join(target).ok();
            }
            rest = &rest[end..];
        }
    }
    None
}

fn ids(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_carry_the_total_and_link_headers_in_every_style() {
    let sandbox = start().await;
    seed(&sandbox, "r", 23, TimeDelta::hours(2));
    let since = format_query_time(Utc::now() - TimeDelta::days(1));
    let mut url = format!("{}?updated_since={since}&limit=5", sandbox.url());
    let mut seen = Vec::new();
    let mut styles = BTreeSet::new();
    for _ in 0..10 {
        let page = get(&url, None).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.headers["x-total-count"], "23");
        let links: Vec<&str> = page
            .headers
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        styles.insert((
            links.len() > 1,
            links.iter().any(|l| l.contains("<http://")),
            links.iter().any(|l| l.contains("rel=first")),
        ));
        seen.extend(ids(&page.body));
        match next_link(&page.headers, &sandbox.url()) {
            Some(next) => {
                // The next page keeps the query and moves the offset.
                assert!(next.as_str().contains(&format!("updated_since={since}")));
                url = next.to_string();
            }
            None => break,
        }
    }
    // Oldest update first, every record once.
    let expected: Vec<String> = (0..23).map(|i| format!("r-{i:03}")).collect();
    assert_eq!(seen, expected);
    // Several headers and one, absolute and relative targets, quoted and bare `rel`.
    assert!(styles.contains(&(true, false, true)), "{styles:?}");
    assert!(styles.iter().any(|s| s.1), "{styles:?}");
    assert!(styles.iter().any(|s| !s.0), "{styles:?}");
}

#[tokio::test]
async fn without_link_headers_only_the_total_is_sent() {
    let sandbox = start().await;
    seed(&sandbox, "r", 7, TimeDelta::hours(2));
    sandbox.set_link_headers(false);
    let page = get(&format!("{}?limit=5", sandbox.url()), None).await;
    assert!(page.headers.get("link").is_none());
    assert_eq!(page.headers["x-total-count"], "7");
    let rest = get(&format!("{}?limit=5&offset=5", sandbox.url()), None).await;
    assert_eq!(ids(&rest.body), ["r-005", "r-006"]);
}

#[tokio::test]
async fn the_fake_refuses_what_the_real_api_refuses() {
    let sandbox = start().await;
    let query = |q: &str| format!("{}?{q}", sandbox.url());
    let page = get(
        &query("updated_since=20260101T000000Z&updated_before=20260210T000000Z"),
        None,
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(page.body["error"].as_str().unwrap().contains("31 days"));
    for bad in [
        "updated_since=2026-01-01",
        "updated_since=2026-01-01T00:00:00Z",
        "updated_before=20260101T000000",
        "limit=501",
        "limit=0",
        "offset=-1",
    ] {
        assert_eq!(get(&query(bad), None).await.status, 400, "{bad}");
    }
    assert_eq!(
        get(
            &query("updated_since=20260101T000000Z&updated_before=20260201T000000Z"),
            None
        )
        .await
        .status,
        200
    );
    // Without updated_since, only the last 24 hours.
    seed(&sandbox, "old", 3, TimeDelta::hours(30));
    seed(&sandbox, "new", 2, TimeDelta::hours(1));
    let page = get(sandbox.url().as_str(), None).await;
    assert_eq!(ids(&page.body), ["new-000", "new-001"]);
    // A window selects by update time, `updated_before` excluded.
    let since = format_query_time(Utc::now() - TimeDelta::hours(31));
    let before = format_query_time(Utc::now() - TimeDelta::hours(2));
    let page = get(
        &query(&format!("updated_since={since}&updated_before={before}")),
        None,
    )
    .await;
    assert_eq!(ids(&page.body), ["old-000", "old-001", "old-002"]);
    // The source filter.
    sandbox.upsert(json!({ "id": "g", "source": "garmin", "startTime": "2026-11-20" }));
    let page = get(&query("source=garmin"), None).await;
    assert_eq!(ids(&page.body), ["g"]);
}

#[tokio::test]
async fn upserts_replace_by_id_keep_created_at_and_removes_delete() {
    let sandbox = start().await;
    let id = sandbox.upsert(json!({ "startTime": "2026-11-20", "steps": 1 }));
    assert_eq!(id.len(), 24);
    let first = get(sandbox.url().as_str(), None).await.body[0].clone();
    assert_eq!(first["id"], id.as_str());
    let created = first["createdAt"].as_str().unwrap().to_owned();
    assert!(first["updatedAt"].is_string());

    assert_eq!(
        sandbox.upsert(json!({ "id": id.clone(), "startTime": "2026-11-20", "steps": 2 })),
        id
    );
    let page = get(sandbox.url().as_str(), None).await;
    assert_eq!(page.body.as_array().unwrap().len(), 1);
    assert_eq!(page.body[0]["steps"], 2);
    assert_eq!(page.body[0]["createdAt"], created.as_str());
    // Numeric ids are kept as strings.
    assert_eq!(
        sandbox.upsert(json!({ "id": 7, "startTime": "2026-11-21" })),
        "7"
    );

    assert!(sandbox.remove(&id));
    assert!(!sandbox.remove(&id));
    assert_eq!(ids(&get(sandbox.url().as_str(), None).await.body), ["7"]);
}

#[tokio::test]
async fn a_token_is_required_once_set() {
    let sandbox = start().await;
    seed(&sandbox, "r", 1, TimeDelta::hours(1));
    sandbox.set_token(Some("tok-s3cret".into()));
    let url = sandbox.url();
    assert_eq!(get(url.as_str(), None).await.status, 401);
    assert_eq!(get(url.as_str(), Some("wrong")).await.status, 401);
    assert_eq!(get(url.as_str(), Some("tok-s3cret")).await.status, 200);
    sandbox.set_token(None);
    assert_eq!(get(url.as_str(), None).await.status, 200);
}

#[tokio::test]
async fn faults_answer_429_with_retry_after_then_errors_then_pages() {
    let sandbox = start().await;
    sandbox.inject_429(1, 7);
    sandbox.inject_error(2, 503);
    let url = sandbox.url();
    let page = get(url.as_str(), None).await;
    assert_eq!(page.status, 429);
    assert_eq!(page.headers["retry-after"], "7");
    assert_eq!(get(url.as_str(), None).await.status, 503);
    assert_eq!(get(url.as_str(), None).await.status, 503);
    assert_eq!(get(url.as_str(), None).await.status, 200);
    let log = sandbox.requests();
    let statuses: Vec<u16> = log.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [429, 503, 503, 200]);
    assert!(log
        .iter()
        .all(|(path, _)| path.starts_with(COLLECTION_PATH)));
}

#[test]
fn query_times_round_trip() {
    let at = DateTime::parse_from_rfc3339("2014-01-10T12:34:56Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(format_query_time(at), "20140110T123456Z");
    assert_eq!(parse_query_time(&format_query_time(at)), Some(at));
}
