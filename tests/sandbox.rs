//! The sandbox server over real HTTP: OAuth, token rotation, the API's strictness, faults and
//! the controls. Each test starts its own sandbox on a free loopback port.

use std::time::Duration;

use chrono::Utc;
use exist_agent::sandbox::{Fault, Owner, Sandbox, SandboxOptions, TokenGrant};
use reqwest::{redirect, Client, StatusCode};
use serde_json::{json, Value};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:53682/callback";

struct Harness {
    sandbox: Sandbox,
    http: Client,
}

async fn start() -> Harness {
    start_with(SandboxOptions::default()).await
}

async fn start_with(options: SandboxOptions) -> Harness {
    let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("sandbox starts");
    let http = Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Harness { sandbox, http }
}

impl Harness {
    fn url(&self, path: &str) -> Url {
        self.sandbox.base_url().join(path).unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(&format!("api/2/{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("api/2/{path}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("oauth2/access_token"))
            .form(form)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "sandbox-client"),
            ("client_secret", "sandbox-secret"),
        ])
        .await
    }

    /// Runs the authorize step and returns the redirect's query parameters.
    async fn authorize(&self, params: &[(&str, &str)]) -> (StatusCode, Vec<(String, String)>) {
        let response = self
            .http
            .get(self.url("oauth2/authorize"))
            .query(params)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let query = response
            .headers()
            .get("location")
            .map(|l| Url::parse(l.to_str().unwrap()).unwrap())
            .map(|l| l.query_pairs().into_owned().collect())
            .unwrap_or_default();
        (status, query)
    }

    /// A token with `scopes` that owns the `templates`.
    async fn owner_of(&self, scopes: &[&str], templates: &[&str]) -> TokenGrant {
        let grant = self.sandbox.issue_tokens(scopes);
        let items: Vec<Value> = templates.iter().map(|t| json!({ "template": t })).collect();
        let (status, _) = self
            .post(&grant.access_token, "attributes/acquire/", json!(items))
            .await;
        assert_eq!(status, StatusCode::OK);
        grant
    }

    fn value(&self, name: &str, day: &str) -> Option<Value> {
        self.sandbox
            .values()
            .get(&(name.to_owned(), day.to_owned()))
            .cloned()
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn authorize_params<'a>(scope: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "sandbox-client"),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", state),
    ]
}

fn day(offset: u32) -> String {
    let first = chrono::NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    (first + chrono::Days::new(offset.into()))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test]
async fn the_code_flow_echoes_state_issues_tokens_and_codes_work_once() {
    let h = start().await;
    let (status, query) = h
        .authorize(&authorize_params("activity_write mood_write", "xyz123"))
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(param(&query, "state"), Some("xyz123"));
    let code = param(&query, "code").expect("a code").to_owned();

    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "sandbox-client"),
        ("client_secret", "sandbox-secret"),
        ("redirect_uri", REDIRECT),
    ];
    let (status, tokens) = h.token_request(&exchange).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 31_535_999);
    assert_eq!(tokens["scope"], "activity_write mood_write");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(access, refresh);

    let (status, profile) = h.get(&access, "accounts/profile/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["username"], "sandbox");
    assert_eq!(profile["timezone"], "UTC");

    let (status, again) = h.token_request(&exchange).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");

    // The log shows the exchange but never the secret, the code or the tokens.
    let log = h.sandbox.requests();
    let exchanges: Vec<_> = log
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("authorization_code"))
        .collect();
    assert_eq!(exchanges.len(), 2);
    assert_eq!(exchanges[0].status, 200);
    assert_eq!(exchanges[1].status, 400);
    let body = exchanges[0].body.as_ref().unwrap();
    assert_eq!(body["client_secret"], "***");
    assert_eq!(body["code"], "***");
    assert_eq!(body["client_id"], "sandbox-client");
    let everything = serde_json::to_string(&log).unwrap();
    for secret in [
        "sandbox-secret",
        code.as_str(),
        access.as_str(),
        refresh.as_str(),
    ] {
        assert!(!everything.contains(secret));
    }
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn authorize_refuses_bad_clients_redirects_scopes_and_response_types() {
    let h = start().await;
    let mut params = authorize_params("activity_write", "s1");
    params[1] = ("client_id", "someone-else");
    assert_eq!(h.authorize(&params).await.0, StatusCode::BAD_REQUEST);

    let mut params = authorize_params("activity_write", "s1");
    params[2] = ("redirect_uri", "http://example.com/callback");
    assert_eq!(h.authorize(&params).await.0, StatusCode::BAD_REQUEST);

    let (status, query) = h
        .authorize(&authorize_params("activity_write steps_write", "s2"))
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(param(&query, "error"), Some("invalid_scope"));
    assert_eq!(param(&query, "state"), Some("s2"));
    assert_eq!(param(&query, "code"), None);

    let mut params = authorize_params("activity_write", "s3");
    params[0] = ("response_type", "token");
    let (status, query) = h.authorize(&params).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(param(&query, "error"), Some("unsupported_response_type"));
}

#[tokio::test]
async fn the_token_endpoint_wants_the_secret_in_the_body_and_the_same_redirect() {
    let h = start().await;
    let code = |query: Vec<(String, String)>| param(&query, "code").unwrap().to_owned();
    let first = code(
        h.authorize(&authorize_params("activity_write", "s"))
            .await
            .1,
    );
    let (status, body) = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &first),
            ("client_id", "sandbox-client"),
            ("client_secret", "sandbox-secret"),
            ("redirect_uri", "http://127.0.0.1:53682/other"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let second = code(
        h.authorize(&authorize_params("activity_write", "s"))
            .await
            .1,
    );
    let (status, body) = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &second),
            ("client_id", "sandbox-client"),
            ("client_secret", "wrong"),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    // HTTP Basic, the default of many OAuth libraries, is not how Exist takes the secret.
    let third = code(
        h.authorize(&authorize_params("activity_write", "s"))
            .await
            .1,
    );
    let response = h
        .http
        .post(h.url("oauth2/access_token"))
        .basic_auth("sandbox-client", Some("sandbox-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", third.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_and_the_old_ones_die() {
    let h = start().await;
    let old = h.sandbox.issue_tokens(&["activity_write"]);
    let (status, new) = h.refresh(&old.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let new_access = new["access_token"].as_str().unwrap();
    let new_refresh = new["refresh_token"].as_str().unwrap();
    assert_ne!(new_access, old.access_token);
    assert_ne!(new_refresh, old.refresh_token);
    assert_eq!(new["scope"], "activity_write");

    assert_eq!(
        h.get(&old.access_token, "accounts/profile/").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get(new_access, "accounts/profile/").await.0,
        StatusCode::OK
    );
    let (status, body) = h.refresh(&old.refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(h.refresh(new_refresh).await.0, StatusCode::OK);

    // Fingerprints let a test see that the old refresh token was presented twice.
    let prints: Vec<String> = h
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .map(|r| r.refresh_token_fingerprint.clone().unwrap())
        .collect();
    assert_eq!(prints.len(), 3);
    assert_eq!(prints[0], prints[1]);
    assert_ne!(prints[0], prints[2]);
    assert_eq!(prints[0].len(), 8);
}

#[tokio::test]
async fn missing_unknown_expired_and_revoked_tokens_get_401() {
    let h = start().await;
    let response = h
        .http
        .get(h.url("api/2/accounts/profile/"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    assert_eq!(
        h.get("not-a-token", "accounts/profile/").await.0,
        StatusCode::UNAUTHORIZED
    );

    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    h.sandbox.expire_access_tokens();
    let (status, body) = h.get(&grant.access_token, "accounts/profile/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Token has expired.");
    // The refresh token outlives its access token.
    let (status, fresh) = h.refresh(&grant.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let fresh_access = fresh["access_token"].as_str().unwrap();
    let fresh_refresh = fresh["refresh_token"].as_str().unwrap();

    h.sandbox.revoke_tokens();
    assert_eq!(
        h.get(fresh_access, "accounts/profile/").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = h.refresh(fresh_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_short_token_lifetime_expires_on_its_own() {
    let h = start_with(SandboxOptions {
        token_lifetime: Duration::from_millis(200),
        ..SandboxOptions::default()
    })
    .await;
    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    assert_eq!(grant.expires_in, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn more_than_35_items_are_refused_whole_and_35_are_accepted() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    let items = |n: u32| -> Value {
        (0..n)
            .map(|i| json!({ "name": "steps", "date": day(i), "value": 1000 + i }))
            .collect()
    };
    let (status, body) = h
        .post(&grant.access_token, "attributes/update/", items(36))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("35"));
    assert!(h.sandbox.values().is_empty());

    let (status, body) = h
        .post(&grant.access_token, "attributes/update/", items(35))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"].as_array().unwrap().len(), 35);
    assert_eq!(body["failed"], json!([]));
    assert_eq!(h.sandbox.values().len(), 35);
    assert_eq!(h.value("steps", &day(34)), Some(json!(1034)));

    let writes: Vec<usize> = h
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/api/2/attributes/update/")
        .map(|r| r.items)
        .collect();
    assert_eq!(writes, [36, 35]);
}

#[tokio::test]
async fn write_bodies_must_be_json_arrays_of_objects() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    let one = json!({ "name": "steps", "date": day(0), "value": 1 });
    let (status, _) = h
        .post(&grant.access_token, "attributes/update/", one.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .post(&grant.access_token, "attributes/update/", json!([one, 5]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = h
        .http
        .post(h.url("api/2/attributes/update/"))
        .bearer_auth(&grant.access_token)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = h
        .http
        .post(h.url("api/2/attributes/update/"))
        .bearer_auth(&grant.access_token)
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(h.sandbox.values().is_empty());
}

#[tokio::test]
async fn a_partly_failed_batch_is_202_and_echoes_each_failure() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/update/",
            json!([
                { "name": "steps", "date": day(0), "value": 500 },
                { "name": "no_such_thing", "date": day(0), "value": 1 },
                { "name": "steps", "value": 7 },
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body["success"],
        json!([{ "name": "steps", "date": day(0), "value": 500 }])
    );
    let failed = body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["name"], "no_such_thing");
    assert_eq!(failed[0]["error_code"], "not_found");
    assert_eq!(failed[1]["value"], 7);
    assert_eq!(failed[1]["error_code"], "missing_field");
    assert!(failed[1]["error"].as_str().unwrap().contains("date"));
    assert_eq!(h.value("steps", &day(0)), Some(json!(500)));
    assert_eq!(h.sandbox.values().len(), 1);
}

#[tokio::test]
async fn ownership_can_pass_away_and_be_acquired_again() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    let steps = h.sandbox.attribute("steps").unwrap();
    assert_eq!(steps.owner, Owner::Client("sandbox-client".into()));
    assert!(!steps.manual);

    h.sandbox.give_to_other_service("steps");
    assert_eq!(
        h.sandbox.attribute("steps").unwrap().owner,
        Owner::OtherService
    );
    let write = json!([{ "name": "steps", "date": day(0), "value": 10 }]);
    let (status, body) = h
        .post(&grant.access_token, "attributes/update/", write.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["failed"][0]["error_code"], "unauthorised");
    assert_eq!(
        body["failed"][0]["error"],
        "Attribute 'steps' does not belong to this service"
    );
    assert_eq!(h.value("steps", &day(0)), None);

    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/acquire/",
            json!([{ "name": "steps" }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], json!([{ "name": "steps" }]));
    assert_eq!(
        h.post(&grant.access_token, "attributes/update/", write)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(h.value("steps", &day(0)), Some(json!(10)));

    // Releasing makes it nobody's; only the owner may release.
    let (status, _) = h
        .post(
            &grant.access_token,
            "attributes/release/",
            json!([{ "name": "steps" }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.sandbox.attribute("steps").unwrap().owner, Owner::Unowned);
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/release/",
            json!([{ "name": "steps" }]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["failed"][0]["error_code"], "unauthorised");
}

#[tokio::test]
async fn acquire_creates_missing_templates_but_not_unknown_names() {
    let h = start().await;
    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/acquire/?success_objects=1",
            json!([{ "template": "steps" }, { "name": "floors" }, { "template": "stepz" }, {}]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let full = &body["success"][0];
    assert_eq!(full["name"], "steps");
    assert_eq!(full["group"]["name"], "activity");
    assert_eq!(full["value_type"], 0);
    assert_eq!(full["service"]["name"], "sandbox-client");
    let codes: Vec<&str> = body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["error_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["not_found", "not_found", "missing_field"]);
    assert!(h.sandbox.attribute("floors").is_none());
}

#[tokio::test]
async fn create_defaults_to_manual_and_suffixes_names_already_taken() {
    let h = start().await;
    let grant = h.sandbox.issue_tokens(&["food_write"]);
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/create/",
            json!([
                { "label": "Espressos", "group": "food", "value_type": 0 },
                { "label": "Espressos!", "group": "food", "value_type": 0, "manual": false },
                { "label": "Coffees", "group": "food", "value_type": 0, "manual": false },
                { "label": "Tea", "group": "food" },
                { "label": "Tea", "group": "nowhere", "value_type": 0 },
                { "label": "Tea", "group": "food", "value_type": 6 },
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let success = body["success"].as_array().unwrap();
    assert_eq!(success[0]["name"], "espressos");
    assert_eq!(success[0]["manual"], true);
    assert_eq!(success[0]["group"], "food");
    assert_eq!(success[1]["name"], "espressos_2");
    assert_eq!(success[1]["manual"], false);
    // A label whose slug is a template's name does not take the template's name.
    assert_eq!(success[2]["name"], "coffees_2");
    let codes: Vec<&str> = body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["error_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["missing_field", "validation", "validation"]);

    let espressos = h.sandbox.attribute("espressos").unwrap();
    assert!(espressos.manual);
    assert_eq!(espressos.owner, Owner::Client("sandbox-client".into()));
    assert_eq!(espressos.label, "Espressos");
    let espressos_2 = h.sandbox.attribute("espressos_2").unwrap();
    assert!(!espressos_2.manual);

    // The creator owns what it created and can write it at once.
    let (status, _) = h
        .post(
            &grant.access_token,
            "attributes/update/",
            json!([{ "name": "espressos_2", "date": day(0), "value": 3 }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn writes_need_the_groups_write_scope_or_manual_write() {
    let h = start().await;
    let grant = h.sandbox.issue_tokens(&["activity_write", "mood_read"]);
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/acquire/",
            json!([{ "template": "mood" }, { "template": "steps" }]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["failed"][0]["template"], "mood");
    assert_eq!(body["failed"][0]["error_code"], "not_allowed");
    assert!(h.sandbox.attribute("mood").is_none());

    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/create/",
            json!([{ "label": "Focus", "group": "productivity", "value_type": 8, "manual": false }]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["failed"][0]["error_code"], "not_allowed");

    // Our client owns mood through another token that had mood_write; this one lacks the
    // scope, so ownership alone does not let it write.
    h.owner_of(&["mood_write"], &["mood"]).await;
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/update/",
            json!([{ "name": "mood", "date": day(0), "value": 7 }]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["failed"][0]["error_code"], "not_allowed");

    // manual_write is enough for manually tracked attributes, in any group.
    let manual = h.sandbox.issue_tokens(&["manual_write"]);
    let (status, body) = h
        .post(
            &manual.access_token,
            "attributes/create/",
            json!([{ "label": "Focus", "group": "productivity", "value_type": 8 }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.value("mood", &day(0)), None);
}

#[tokio::test]
async fn values_are_checked_against_the_attributes_type() {
    let h = start().await;
    let grant = h
        .owner_of(
            &["activity_write", "mood_write", "health_write"],
            &["steps", "mood", "body_fat", "mood_note"],
        )
        .await;
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/update/",
            json!([
                { "name": "steps", "date": day(0), "value": 1.5 },
                { "name": "steps", "date": day(1), "value": 1.0 },
                { "name": "steps", "date": day(2), "value": "12" },
                { "name": "steps", "date": day(3), "value": null },
                { "name": "steps", "date": day(4), "value": true },
                { "name": "mood", "date": day(0), "value": 10 },
                { "name": "body_fat", "date": day(0), "value": 1.5 },
                { "name": "mood_note", "date": day(0), "value": 3 },
                { "name": "mood_note", "date": day(1), "value": "x".repeat(1001) },
                { "name": "steps", "date": "2025-12-1", "value": 1 },
                { "name": "steps", "date": day(5), "value": 12000 },
                { "name": "mood", "date": day(0), "value": 9 },
                { "name": "body_fat", "date": day(0), "value": 0.21 },
                { "name": "mood_note", "date": day(0), "value": "fine" },
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let failed = body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 10);
    assert!(failed.iter().all(|f| f["error_code"] == "validation"));
    assert_eq!(body["success"].as_array().unwrap().len(), 4);
    assert_eq!(h.sandbox.values().len(), 4);
    assert_eq!(h.value("body_fat", &day(0)), Some(json!(0.21)));
    assert_eq!(h.value("mood_note", &day(0)), Some(json!("fine")));
}

#[tokio::test]
async fn the_rate_limit_refuses_past_the_budget_until_the_next_hour() {
    let h = start_with(SandboxOptions {
        rate_limit: 5,
        ..SandboxOptions::default()
    })
    .await;
    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    for _ in 0..5 {
        assert_eq!(
            h.get(&grant.access_token, "accounts/profile/").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (status, _) = h
        .post(
            &grant.access_token,
            "attributes/acquire/",
            json!([{ "template": "steps" }]),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.sandbox.attribute("steps").is_none());
    // Each token has its own budget.
    let other = h.sandbox.issue_tokens(&["activity_write"]);
    assert_eq!(
        h.get(&other.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );

    h.sandbox.next_hour();
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_status_fault_answers_before_processing_and_only_on_its_path() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    h.sandbox.inject(Fault::Status {
        status: 503,
        count: 2,
        path_prefix: Some("/api/2/attributes/update/".into()),
    });
    let write = json!([{ "name": "steps", "date": day(0), "value": 10 }]);
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );
    for _ in 0..2 {
        let (status, _) = h
            .post(&grant.access_token, "attributes/update/", write.clone())
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h.value("steps", &day(0)), None);
    }
    assert_eq!(
        h.post(&grant.access_token, "attributes/update/", write)
            .await
            .0,
        StatusCode::OK
    );
    let updates: Vec<(u16, bool)> = h
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/api/2/attributes/update/")
        .map(|r| (r.status, r.faulted))
        .collect();
    assert_eq!(updates, [(503, true), (503, true), (200, false)]);
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_an_answer() {
    let h = start().await;
    let grant = h.owner_of(&["activity_write"], &["steps"]).await;
    h.sandbox.inject(Fault::Drop {
        count: 1,
        path_prefix: None,
    });
    let result = h
        .http
        .post(h.url("api/2/attributes/update/"))
        .bearer_auth(&grant.access_token)
        .json(&json!([{ "name": "steps", "date": day(0), "value": 10 }]))
        .send()
        .await;
    let error = result.expect_err("no HTTP answer");
    assert!(!error.is_status());
    assert_eq!(h.value("steps", &day(0)), None);

    let last = h.sandbox.requests().pop().unwrap();
    assert_eq!(last.path, "/api/2/attributes/update/");
    assert_eq!(last.status, 0);
    assert!(last.faulted);
    // The next request gets through on a new connection.
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_retry_after_fault_sends_429_with_the_header() {
    let h = start().await;
    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    h.sandbox.inject(Fault::RetryAfter429 {
        count: 1,
        retry_after_secs: 42,
    });
    let response = h
        .http
        .get(h.url("api/2/accounts/profile/"))
        .bearer_auth(&grant.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "42");
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn increments_add_up_on_the_users_day_and_report_the_total() {
    let h = start().await;
    let grant = h
        .owner_of(
            &["productivity_write", "mood_write"],
            &["commits", "mood", "productive_min"],
        )
        .await;
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/increment/",
            json!([
                { "name": "commits", "date": day(0), "value": 2 },
                { "name": "commits", "date": day(0), "value": 3 },
                { "name": "mood", "date": day(0), "value": 1 },
                { "name": "commits", "date": day(0), "value": 0.5 },
                { "name": "productive_min", "date": day(0), "value": -9 },
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["success"][0]["current"], 2);
    assert_eq!(body["success"][1]["current"], 5);
    let failed = body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["name"], "mood");
    assert!(failed.iter().all(|f| f["error_code"] == "validation"));
    assert_eq!(h.value("commits", &day(0)), Some(json!(5)));

    // Without a date, the day is the user's today in the profile's timezone.
    h.sandbox.set_timezone("Pacific/Kiritimati");
    let today = || {
        Utc::now()
            .with_timezone(&chrono_tz::Pacific::Kiritimati)
            .format("%Y-%m-%d")
            .to_string()
    };
    let before = today();
    let (status, body) = h
        .post(
            &grant.access_token,
            "attributes/increment/",
            json!([{ "name": "commits", "value": 4 }]),
        )
        .await;
    let after = today();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"][0]["current"], 4);
    assert!(
        h.value("commits", &before) == Some(json!(4))
            || h.value("commits", &after) == Some(json!(4))
    );
}

#[tokio::test]
async fn owned_attributes_and_values_are_paged() {
    let h = start().await;
    let grant = h
        .owner_of(
            &["activity_write"],
            &["steps", "floors", "steps_active_min"],
        )
        .await;
    let (status, page) = h
        .get(&grant.access_token, "attributes/owned/?limit=2")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["count"], 3);
    assert_eq!(page["previous"], Value::Null);
    let names: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["floors", "steps"]);
    assert_eq!(page["results"][0]["group"]["name"], "activity");
    let next = Url::parse(page["next"].as_str().unwrap()).unwrap();
    let next_path = format!("attributes/owned/?{}", next.query().unwrap());
    let (_, second) = h.get(&grant.access_token, &next_path).await;
    assert_eq!(second["results"][0]["name"], "steps_active_min");
    assert_eq!(second["next"], Value::Null);
    assert!(second["previous"].is_string());

    h.sandbox.give_to_other_service("floors");
    let (_, page) = h.get(&grant.access_token, "attributes/owned/").await;
    assert_eq!(page["count"], 2);

    let items: Vec<Value> = (0..5)
        .map(|i| json!({ "name": "steps", "date": day(i), "value": i }))
        .collect();
    h.post(&grant.access_token, "attributes/update/", json!(items))
        .await;
    let (status, page) = h
        .get(
            &grant.access_token,
            "attributes/values/?attribute=steps&limit=2",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["count"], 5);
    assert_eq!(
        page["results"],
        json!([{ "date": day(4), "value": 4 }, { "date": day(3), "value": 3 }])
    );
    let (_, last) = h
        .get(
            &grant.access_token,
            "attributes/values/?attribute=steps&limit=2&page=3",
        )
        .await;
    assert_eq!(last["results"], json!([{ "date": day(0), "value": 0 }]));
    assert_eq!(last["next"], Value::Null);
    let (status, _) = h
        .get(
            &grant.access_token,
            "attributes/values/?attribute=steps&limit=2&page=4",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, capped) = h
        .get(
            &grant.access_token,
            &format!(
                "attributes/values/?attribute=steps&limit=1000&date_max={}",
                day(1)
            ),
        )
        .await;
    assert_eq!(capped["count"], 2);
    assert_eq!(capped["results"][0]["date"], day(1));
    let (status, _) = h
        .get(&grant.access_token, "attributes/values/?attribute=nothing")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_controls_are_served_over_http() {
    let h = start().await;
    let control = |path: &str| h.url(&format!("sandbox/{path}"));
    let grant: TokenGrant = h
        .http
        .post(control("tokens"))
        .json(&json!({ "scopes": ["activity_write"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = grant.access_token.as_str();
    h.post(
        token,
        "attributes/acquire/",
        json!([{ "template": "steps" }]),
    )
    .await;

    let response = h
        .http
        .post(control("faults"))
        .json(&json!({ "kind": "status", "status": 502, "count": 1, "path_prefix": "/api/2/accounts/" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.get(token, "accounts/profile/").await.0,
        StatusCode::BAD_GATEWAY
    );

    let post = |path: &'static str, body: Value| {
        let request = h.http.post(control(path)).json(&body);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        post("timezone", json!({ "timezone": "Europe/Berlin" })).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(token, "accounts/profile/").await.1["timezone"],
        "Europe/Berlin"
    );
    assert_eq!(
        post("timezone", json!({ "timezone": "Mars/Olympus" })).await,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        post("give-away", json!({ "name": "steps" })).await,
        StatusCode::NO_CONTENT
    );
    let (_, body) = h
        .post(
            token,
            "attributes/update/",
            json!([{ "name": "steps", "date": day(0), "value": 1 }]),
        )
        .await;
    assert_eq!(body["failed"][0]["error_code"], "unauthorised");
    h.post(
        token,
        "attributes/acquire/",
        json!([{ "template": "steps" }]),
    )
    .await;
    h.post(
        token,
        "attributes/update/",
        json!([{ "name": "steps", "date": day(0), "value": 1 }]),
    )
    .await;

    let values: Value = h
        .http
        .get(control("values"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(values, json!({ "steps": { day(0): 1 } }));
    let log: Value = h
        .http
        .get(control("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().all(|p| !p.starts_with("/sandbox/")));
    assert!(paths.contains(&"/api/2/attributes/update/"));

    for path in ["next-hour", "expire"] {
        assert_eq!(post(path, json!({})).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(
        h.get(token, "accounts/profile/").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post("revoke", json!({})).await, StatusCode::NO_CONTENT);
    assert_eq!(
        h.refresh(&grant.refresh_token).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let h = start().await;
    let grant = h.sandbox.issue_tokens(&["activity_write"]);
    assert_eq!(
        h.get(&grant.access_token, "accounts/profile/").await.0,
        StatusCode::OK
    );
    let addr = h.sandbox.addr();
    let started = std::time::Instant::now();
    h.sandbox.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
