//! The client against replies shaped as real exist.io answers them (the shapes recorded by a
//! public integration's tests and described in ../shared/reference/exist-fidelity.md; the bodies
//! here are written for this test): absolute `https://exist.io/...` `next` links, `202` with
//! mixed results, `success_objects` on create, failures without `name` or `date`, and days
//! without data listed as `null`. A loopback server replays them; nothing here reaches Exist.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use exist_api::auth::{App, Auth, LockFailure, RedirectUri, RefreshLock, SecretSource};
use exist_api::client::{BudgetRefusal, CreateItem, ExistClient, RequestBudget, UpdateItem};
use exist_api::secret::Secret;
use exist_api::tokens::{TokenPair, TokenStore};
use exist_api::types::{AttributeName, Group, Value, ValueType};
use serde_json::json;

#[derive(Default)]
struct Counted(AtomicUsize);

impl RequestBudget for Counted {
    fn spend(&self) -> Result<(), BudgetRefusal> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn exhausted(&self) {}
}

struct NoLock;

impl RefreshLock for NoLock {
    fn acquire(&self) -> Result<Box<dyn Send>, LockFailure> {
        Ok(Box::new(()))
    }
}

/// The queries the replay server saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

async fn owned(State(seen): State<Seen>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let query = query.unwrap_or_default();
    seen.lock().unwrap().push(format!("owned?{query}"));
    // Exist writes the next page as an absolute https URL on its own host, whatever host the
    // request came to.
    if query.contains("page=2") {
        Json(json!({
            "count": 2, "next": null, "previous": "https://exist.io/api/2/attributes/owned/?limit=1",
            "results": [{"name": "nango_bool_test", "label": "nango bool test", "group": {"name": "custom", "label": "Daily tags", "priority": 9}, "value_type": 7, "value_type_description": "Boolean", "manual": false, "active": true, "priority": 1, "template": null}]
        }))
    } else {
        Json(json!({
            "count": 2, "next": "https://exist.io/api/2/attributes/owned/?limit=1&page=2", "previous": null,
            "results": [{"name": "time_reading", "label": "Time reading", "group": {"name": "media", "label": "Media", "priority": 6}, "value_type": 3, "value_type_description": "Period (min)", "manual": false, "active": true, "priority": 2, "template": null}]
        }))
    }
}

async fn values(State(seen): State<Seen>, RawQuery(query): RawQuery) -> impl IntoResponse {
    seen.lock()
        .unwrap()
        .push(format!("values?{}", query.unwrap_or_default()));
    Json(json!({
        "count": 3, "next": null, "previous": null,
        "results": [
            {"date": "2026-10-07", "value": null},
            {"date": "2026-10-06", "value": 12348},
            {"date": "2026-10-05", "value": null}
        ]
    }))
}

async fn update() -> impl IntoResponse {
    // 202: some items failed. One failure names its item, one lacks its date (Exist may omit
    // fields of the item it could not read), one item is not mentioned at all.
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "success": [{"name": "steps", "date": "2026-10-06", "value": 12348}],
            "failed": [
                {"name": "mood", "date": "2026-10-06", "value": 12, "error_code": "validation", "error": "Value is out of range"},
                {"name": "steps", "value": 10, "error_code": "validation", "error": "Invalid date"}
            ]
        })),
    )
}

async fn create(RawQuery(query): RawQuery) -> impl IntoResponse {
    assert_eq!(query.as_deref(), Some("success_objects=1"));
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "success": [{"name": "totally_different_label", "label": "Totally different label", "group": {"name": "media", "label": "Media", "priority": 6}, "value_type": 3, "manual": false, "active": true}],
            "failed": [{"label": "Time reading", "group": "media", "value_type": 3, "error_code": "exists", "error": "Attribute with this label already exists"}]
        })),
    )
}

struct Replay {
    client: ExistClient,
    seen: Seen,
    budget: Arc<Counted>,
    _dir: tempfile::TempDir,
}

async fn replay() -> Replay {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/api/2/attributes/owned/", get(owned))
        .route("/api/2/attributes/values/", get(values))
        .route("/api/2/attributes/update/", post(update))
        .route("/api/2/attributes/create/", post(create))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::File {
        path: dir.path().join("tokens.json"),
    };
    store
        .save(&TokenPair {
            access_token: Secret::new("recorded-access".to_owned()),
            refresh_token: None,
            expires_at: None,
            scopes: vec!["activity_write".into(), "activity_read".into()],
        })
        .unwrap();
    let app = App {
        base_url: base.clone(),
        client_id: "replay".into(),
        client_secret: SecretSource::None,
        redirect_uri: RedirectUri::parse("http://localhost:8000/").unwrap(),
    };
    let auth = Arc::new(Auth::new(app, store, Arc::new(NoLock)));
    let budget = Arc::new(Counted::default());
    Replay {
        client: ExistClient::new(&base, auth, budget.clone()),
        seen,
        budget,
        _dir: dir,
    }
}

#[tokio::test]
async fn an_absolute_https_next_link_is_followed_on_the_configured_host() {
    let r = replay().await;
    let owned = r.client.owned().await.unwrap();
    let names: Vec<&str> = owned.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["time_reading", "nango_bool_test"]);
    assert_eq!(
        *r.seen.lock().unwrap(),
        ["owned?limit=100", "owned?limit=1&page=2"],
        "the second page is asked of this host with Exist's own query"
    );
    assert_eq!(r.budget.0.load(Ordering::SeqCst), 2, "each page counted");
}

#[tokio::test]
async fn days_without_data_are_listed_as_null() {
    let r = replay().await;
    let held = r
        .client
        .values(
            &AttributeName::new("steps").unwrap(),
            3,
            "2026-10-07".parse().unwrap(),
        )
        .await
        .unwrap();
    let values: Vec<Option<Value>> = held.into_iter().map(|d| d.value).collect();
    assert_eq!(values, [None, Some(Value::Int(12348)), None]);
}

#[tokio::test]
async fn a_202_acknowledges_only_what_success_lists() {
    let r = replay().await;
    let item = |name: &str, date: &str, v: i64| UpdateItem {
        name: AttributeName::new(name).unwrap(),
        date: date.parse().unwrap(),
        value: Value::Int(v),
    };
    let outcome = r
        .client
        .update(vec![
            item("steps", "2026-10-06", 12348),
            item("mood", "2026-10-06", 12),
            item("steps", "2026-10-07", 10),
            item("steps", "2026-10-05", 7),
        ])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    assert_eq!(
        outcome.failed.len(),
        1,
        "only the failure that names its item"
    );
    assert_eq!(outcome.failed[0].item.name.as_str(), "mood");
    let unaccounted: Vec<String> = outcome
        .unaccounted
        .iter()
        .map(|i| i.date.to_string())
        .collect();
    assert_eq!(
        unaccounted,
        ["2026-10-07", "2026-10-05"],
        "a failure without its date, and an item not mentioned: neither acknowledged"
    );
}

#[tokio::test]
async fn a_create_reply_gives_names_and_says_exists_for_a_known_label() {
    let r = replay().await;
    let item = |label: &str| CreateItem {
        label: label.into(),
        group: Group::Media,
        value_type: ValueType::Duration,
        manual: false,
    };
    let outcome = r
        .client
        .create(vec![item("Totally different label"), item("Time reading")])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    assert_eq!(
        outcome.succeeded[0].1.as_ref().unwrap()["name"],
        "totally_different_label"
    );
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].item.label, "Time reading");
    assert_eq!(outcome.failed[0].code.to_string(), "exists");
}
