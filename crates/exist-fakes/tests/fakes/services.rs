//! The service fakes driven over loopback, as the agent will drive them: auth refused and
//! accepted, parameters checked, paging walked to the end, faults. No test leaves the machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client without TLS roots to load builds")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a valid test timestamp")
        .with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a valid test date")
}

/// The local day of an RFC 3339 timestamp in `tz`.
fn local_day(ts: &str, tz: Tz) -> NaiveDate {
    utc(ts).with_timezone(&tz).date_naive()
}

async fn get_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

mod oura {
    use super::*;
    use exist_fakes::services::oura::{self, OuraFake, TEST_TOKEN};
    use exist_fakes::services::AuthScheme;

    async fn fake() -> (OuraFake, reqwest::Client, url::Url) {
        let fake = OuraFake::start(loopback()).await.expect("the fake starts");
        oura::sample_week(&fake);
        let base = fake
            .url()
            .join("v2/usercollection/")
            .expect("a relative path joins");
        (fake, client(), base)
    }

    #[tokio::test]
    async fn refuses_a_missing_or_wrong_token_and_accepts_the_test_token() {
        let (fake, http, base) = fake().await;
        let url = base
            .join("daily_activity?start_date=2026-11-16&end_date=2026-11-16")
            .unwrap();
        let (status, body) = get_json(http.get(url.clone())).await;
        assert_eq!(status, 401);
        assert_eq!(body["status"], 401);
        assert!(body["title"].is_string());
        let (status, _) = get_json(http.get(url.clone()).bearer_auth("nope")).await;
        assert_eq!(status, 401);
        let (status, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["steps"], 8123);
        assert_eq!(body["data"][0]["contributors"]["stay_active"], 75);
        let auth: Vec<AuthScheme> = fake.requests().into_iter().map(|r| r.auth).collect();
        assert_eq!(
            auth,
            [AuthScheme::None, AuthScheme::Bearer, AuthScheme::Bearer]
        );

        fake.revoke_token(TEST_TOKEN);
        let url = base.join("daily_sleep").unwrap();
        assert_eq!(get_json(http.get(url).bearer_auth(TEST_TOKEN)).await.0, 401);
    }

    #[tokio::test]
    async fn bad_dates_are_400() {
        let (_fake, http, base) = fake().await;
        for query in [
            "start_date=16-11-2026&end_date=2026-11-20",
            "start_date=2026-11-16&end_date=2026-13-01",
            "start_date=2026-11-20&end_date=2026-11-16",
        ] {
            let url = base.join(&format!("daily_activity?{query}")).unwrap();
            let (status, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["status"], 400);
        }
    }

    #[tokio::test]
    async fn next_token_pages_are_walked_to_the_end() {
        let (fake, http, base) = fake().await;
        fake.set_page_size(3);
        let mut url = base
            .join("daily_activity?start_date=2026-11-16&end_date=2026-11-22")
            .unwrap();
        let mut steps = Vec::new();
        let mut pages = 0;
        loop {
            let (status, body) = get_json(http.get(url.clone()).bearer_auth(TEST_TOKEN)).await;
            assert_eq!(status, 200);
            pages += 1;
            for record in body["data"].as_array().unwrap() {
                steps.push((
                    record["day"].as_str().unwrap().to_owned(),
                    record["steps"].as_i64().unwrap(),
                ));
            }
            match body["next_token"].as_str() {
                Some(token) => {
                    url = base.join("daily_activity").unwrap();
                    url.query_pairs_mut()
                        .append_pair("start_date", "2026-11-16")
                        .append_pair("end_date", "2026-11-22")
                        .append_pair("next_token", token);
                }
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let values: Vec<i64> = steps.iter().map(|(_, s)| *s).collect();
        assert_eq!(values, [8123, 10456, 4302, 12001, 7777, 9050, 6100]);
        assert_eq!(steps[0].0, "2026-11-16");
        let requests = fake.requests();
        assert_eq!(requests.len(), 3);
        assert!(requests[0].query_value("next_token").is_none());
        assert!(requests[2].query_value("next_token").is_some());

        // A token is tied to its collection, and made-up tokens are refused.
        let token = {
            let url = base
                .join("daily_activity?start_date=2026-11-16&end_date=2026-11-22")
                .unwrap();
            get_json(http.get(url).bearer_auth(TEST_TOKEN)).await.1["next_token"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let mut other = base.join("daily_sleep").unwrap();
        other.query_pairs_mut().append_pair("next_token", &token);
        assert_eq!(
            get_json(http.get(other).bearer_auth(TEST_TOKEN)).await.0,
            400
        );
        let made_up = base.join("daily_activity?next_token=abc").unwrap();
        assert_eq!(
            get_json(http.get(made_up).bearer_auth(TEST_TOKEN)).await.0,
            400
        );
    }

    #[tokio::test]
    async fn sleep_periods_give_the_documented_minutes() {
        let (_fake, http, base) = fake().await;
        let url = base
            .join("sleep?start_date=2026-11-16&end_date=2026-11-22")
            .unwrap();
        let (status, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(status, 200);
        let periods = body["data"].as_array().unwrap();
        assert_eq!(periods.len(), 8, "seven nights and a nap");
        let mut minutes: BTreeMap<String, i64> = BTreeMap::new();
        for p in periods.iter().filter(|p| p["type"] == "long_sleep") {
            *minutes
                .entry(p["day"].as_str().unwrap().to_owned())
                .or_default() += p["total_sleep_duration"].as_i64().unwrap() / 60;
        }
        assert_eq!(
            minutes.values().copied().collect::<Vec<_>>(),
            [441, 402, 465, 388, 420, 452, 396]
        );
        assert!(periods
            .iter()
            .any(|p| p["type"] == "late_nap" && p["day"] == "2026-11-20"));
    }

    #[tokio::test]
    async fn end_date_defaults_to_today_by_the_clock() {
        let (fake, http, base) = fake().await;
        fake.clock().set(utc("2026-11-19T12:00:00Z"));
        let (_, body) = get_json(
            http.get(base.join("daily_activity").unwrap())
                .bearer_auth(TEST_TOKEN),
        )
        .await;
        let days: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["day"].as_str().unwrap())
            .collect();
        assert_eq!(days, ["2026-11-18", "2026-11-19"]);
    }

    #[tokio::test]
    async fn faults_answer_in_oura_shape_then_clear() {
        let (fake, http, base) = fake().await;
        fake.faults().rate_limit_next(1, 30);
        fake.faults()
            .fail_next(1, reqwest::StatusCode::SERVICE_UNAVAILABLE);
        let url = base.join("daily_activity").unwrap();
        let response = http
            .get(url.clone())
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "30");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(
            get_json(http.get(url.clone()).bearer_auth(TEST_TOKEN))
                .await
                .0,
            503
        );
        assert_eq!(get_json(http.get(url).bearer_auth(TEST_TOKEN)).await.0, 200);
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 503, 200]);
    }
}

mod wakatime {
    use super::*;
    use base64::Engine as _;
    use exist_fakes::services::wakatime::{self, WakaTimeFake, TEST_API_KEY};
    use exist_fakes::services::AuthScheme;

    async fn fake() -> (WakaTimeFake, reqwest::Client, url::Url) {
        let fake = WakaTimeFake::start(loopback())
            .await
            .expect("the fake starts");
        wakatime::sample_week(&fake);
        let url = fake.url().join("api/v1/users/current/summaries").unwrap();
        (fake, client(), url)
    }

    fn basic(value: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }

    fn with(url: &url::Url, query: &str) -> url::Url {
        let mut url = url.clone();
        url.set_query(Some(query));
        url
    }

    #[tokio::test]
    async fn auth_by_basic_key_query_key_or_nothing() {
        let (fake, http, url) = fake().await;
        let url = with(&url, "start=2026-11-16&end=2026-11-16");
        let (status, body) = get_json(http.get(url.clone())).await;
        assert_eq!(status, 401);
        assert!(body["error"].is_string());
        assert_eq!(
            get_json(
                http.get(url.clone())
                    .header("Authorization", basic("waka_wrong"))
            )
            .await
            .0,
            401
        );
        assert_eq!(
            get_json(
                http.get(url.clone())
                    .header("Authorization", basic(TEST_API_KEY))
            )
            .await
            .0,
            200
        );
        let with_colon = basic(&format!("{TEST_API_KEY}:"));
        assert_eq!(
            get_json(http.get(url.clone()).header("Authorization", with_colon))
                .await
                .0,
            200
        );
        let mut keyed = url.clone();
        keyed.query_pairs_mut().append_pair("api_key", TEST_API_KEY);
        assert_eq!(get_json(http.get(keyed)).await.0, 200);

        let requests = fake.requests();
        assert_eq!(requests[2].auth, AuthScheme::Basic);
        assert_eq!(requests[4].auth, AuthScheme::QueryParam("api_key".into()));
        assert_eq!(
            requests[4].query_value("api_key"),
            Some("***"),
            "the key is never recorded"
        );
    }

    #[tokio::test]
    async fn every_day_of_the_range_with_seconds_per_project() {
        let (_fake, http, url) = fake().await;
        let url = with(
            &url,
            "start=2026-11-16&end=2026-11-22&timezone=Europe/Berlin",
        );
        let (status, body) =
            get_json(http.get(url).header("Authorization", basic(TEST_API_KEY))).await;
        assert_eq!(status, 200);
        let days = body["data"].as_array().unwrap();
        let minutes: Vec<i64> = days
            .iter()
            .map(|d| (d["grand_total"]["total_seconds"].as_f64().unwrap() / 60.0).round() as i64)
            .collect();
        assert_eq!(minutes, [195, 0, 263, 72, 0, 30, 148]);
        assert_eq!(days[0]["range"]["date"], "2026-11-16");
        assert_eq!(days[0]["range"]["start"], "2026-11-15T23:00:00Z");
        assert_eq!(days[0]["range"]["timezone"], "Europe/Berlin");
        assert_eq!(days[0]["projects"][0]["name"], "exist-agent");
        assert_eq!(days[0]["projects"][0]["total_seconds"], 9000.0);
        assert_eq!(body["cumulative_total"]["seconds"], 42480.0);
        assert_eq!(body["daily_average"]["days_including_holidays"], 7);
    }

    #[tokio::test]
    async fn project_narrows_the_totals() {
        let (_fake, http, url) = fake().await;
        let url = with(&url, "start=2026-11-16&end=2026-11-16&project=dotfiles");
        let (_, body) = get_json(http.get(url).header("Authorization", basic(TEST_API_KEY))).await;
        assert_eq!(body["data"][0]["grand_total"]["total_seconds"], 2700.0);
        assert!(body["data"][0]["branches"].is_array());
    }

    #[tokio::test]
    async fn parameters_are_checked_and_range_is_an_alternative() {
        let (fake, http, url) = fake().await;
        let auth = basic(TEST_API_KEY);
        for query in [
            "end=2026-11-16",
            "start=2026-11-16",
            "start=2026-11-20&end=2026-11-16",
            "start=x&end=y",
            "range=Forever",
            "start=2026-11-16&end=2026-11-16&timezone=Mars/Base",
            "start=0001-01-01&end=9999-12-31",
        ] {
            let (status, body) =
                get_json(http.get(with(&url, query)).header("Authorization", &auth)).await;
            assert_eq!(status, 400, "{query}");
            assert!(body["errors"].is_array(), "{query}");
        }
        fake.clock().set(utc("2026-11-22T12:00:00Z"));
        let (status, body) = get_json(
            http.get(with(&url, "range=Last%207%20Days"))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!(status, 200);
        let days = body["data"].as_array().unwrap();
        assert_eq!(days.len(), 7);
        assert_eq!(days[0]["range"]["date"], "2026-11-16");
        assert_eq!(days[6]["range"]["date"], "2026-11-22");
        let (_, body) = get_json(
            http.get(with(&url, "start=yesterday&end=today"))
                .header("Authorization", &auth),
        )
        .await;
        assert_eq!(body["data"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after() {
        let (fake, http, url) = fake().await;
        fake.faults().rate_limit_next(1, 60);
        let response = http
            .get(with(&url, "start=2026-11-16&end=2026-11-16"))
            .header("Authorization", basic(TEST_API_KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "60");
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }
}

mod toggl {
    use super::*;
    use exist_fakes::services::toggl::{self, TimeEntry, TogglFake, TEST_API_TOKEN};

    async fn fake() -> (TogglFake, reqwest::Client, url::Url) {
        let fake = TogglFake::start(loopback()).await.expect("the fake starts");
        fake.clock().set(utc("2026-11-21T12:00:00Z"));
        toggl::sample_entries(&fake);
        let url = fake.url().join("api/v9/me/time_entries").unwrap();
        (fake, client(), url)
    }

    fn with(url: &url::Url, query: &str) -> url::Url {
        let mut url = url.clone();
        url.set_query(Some(query));
        url
    }

    fn authed(http: &reqwest::Client, url: url::Url) -> reqwest::RequestBuilder {
        http.get(url).basic_auth(TEST_API_TOKEN, Some("api_token"))
    }

    #[tokio::test]
    async fn basic_auth_with_the_token_or_an_account_else_403() {
        let (fake, http, url) = fake().await;
        assert_eq!(get_json(http.get(url.clone())).await.0, 403);
        assert_eq!(
            get_json(
                http.get(url.clone())
                    .basic_auth(TEST_API_TOKEN, Some("wrong"))
            )
            .await
            .0,
            403
        );
        assert_eq!(
            get_json(http.get(url.clone()).bearer_auth(TEST_API_TOKEN))
                .await
                .0,
            403
        );
        assert_eq!(get_json(authed(&http, url.clone())).await.0, 200);
        fake.add_account("me@example.com", "secret");
        assert_eq!(
            get_json(http.get(url).basic_auth("me@example.com", Some("secret")))
                .await
                .0,
            200
        );
    }

    #[tokio::test]
    async fn a_date_window_gives_the_documented_focused_minutes() {
        let (_fake, http, url) = fake().await;
        let (status, body) = get_json(authed(
            &http,
            with(&url, "start_date=2026-11-18&end_date=2026-11-21"),
        ))
        .await;
        assert_eq!(status, 200);
        let entries = body.as_array().unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[0]["id"], 200, "latest first");
        assert_eq!(entries[0]["duration"], -1);
        assert!(entries[0]["stop"].is_null());
        let focused = |tz: Tz| {
            let mut by_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
            for e in entries {
                let deep = e["tags"].as_array().unwrap().iter().any(|t| t == "deep");
                let seconds = e["duration"].as_i64().unwrap();
                if deep && seconds >= 0 {
                    *by_day
                        .entry(local_day(e["start"].as_str().unwrap(), tz))
                        .or_default() += seconds / 60;
                }
            }
            by_day
        };
        let berlin = focused("Europe/Berlin".parse().unwrap());
        assert_eq!(berlin.get(&day("2026-11-18")), Some(&90));
        assert_eq!(berlin.get(&day("2026-11-19")), Some(&150));
        assert_eq!(berlin.get(&day("2026-11-20")), None);
        let in_utc = focused(Tz::UTC);
        assert_eq!(in_utc.get(&day("2026-11-18")), Some(&150));
        assert_eq!(in_utc.get(&day("2026-11-19")), Some(&90));

        // end_date is exclusive: the 19th's entries are not in 18..19.
        let (_, body) = get_json(authed(
            &http,
            with(&url, "start_date=2026-11-18&end_date=2026-11-19"),
        ))
        .await;
        assert_eq!(body.as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn dates_are_checked() {
        let (_fake, http, url) = fake().await;
        for query in [
            "start_date=2026-11-18",
            "end_date=2026-11-18",
            "start_date=2026-11-20&end_date=2026-11-18",
            "start_date=18.11.2026&end_date=2026-11-20",
            "start_date=2026-01-01&end_date=2026-11-20",
            "since=yesterday",
        ] {
            let (status, body) = get_json(authed(&http, with(&url, query))).await;
            assert_eq!(status, 400, "{query}");
            assert!(body.is_string(), "{query}");
        }
    }

    #[tokio::test]
    async fn since_reports_changes_including_deletions() {
        let (fake, http, url) = fake().await;
        fake.clock().set(utc("2026-11-21T13:00:00Z"));
        fake.delete_entry(101);
        fake.stop_entry(200, utc("2026-11-20T10:15:00Z"));
        let since = utc("2026-11-21T12:30:00Z").timestamp();
        let (_, body) = get_json(authed(&http, with(&url, &format!("since={since}")))).await;
        let changed: Vec<(i64, bool)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_i64().unwrap(),
                    e["server_deleted_at"].is_string(),
                )
            })
            .collect();
        assert_eq!(changed, [(200, false), (101, true)]);
        let (_, body) = get_json(authed(
            &http,
            with(&url, "start_date=2026-11-18&end_date=2026-11-21"),
        ))
        .await;
        assert!(body.as_array().unwrap().iter().all(|e| e["id"] != 101));
        assert!(body
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == 200 && e["duration"] == 7200));
    }

    #[tokio::test]
    async fn the_hourly_quota_answers_402_until_the_hour_passes() {
        let (fake, http, url) = fake().await;
        fake.set_hourly_quota(Some(2));
        let response = authed(&http, url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-toggl-quota-remaining"], "1");
        assert_eq!(get_json(authed(&http, url.clone())).await.0, 200);
        let response = authed(&http, url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 402);
        assert_eq!(response.headers()["x-toggl-quota-remaining"], "0");
        assert_eq!(response.headers()["x-toggl-quota-resets-in"], "3600");
        fake.clock().advance(chrono::Duration::minutes(61));
        assert_eq!(get_json(authed(&http, url)).await.0, 200);
    }

    #[tokio::test]
    async fn faults_and_a_new_entry() {
        let (fake, http, url) = fake().await;
        fake.faults().rate_limit_next(1, 1);
        let response = authed(&http, url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        fake.add_entry(TimeEntry::new(300, utc("2026-11-21T09:00:00Z"), 600, "New").in_project(9));
        let (_, body) = get_json(authed(&http, url)).await;
        assert_eq!(body[0]["id"], 300);
        assert_eq!(body[0]["project_id"], 9);
        assert_eq!(body[0]["at"], "2026-11-21T09:10:00Z");
    }
}

mod home_assistant {
    use super::*;
    use exist_fakes::services::home_assistant::{self, HomeAssistantFake, TEST_TOKEN};

    async fn fake() -> (HomeAssistantFake, reqwest::Client, url::Url) {
        let fake = HomeAssistantFake::start(loopback())
            .await
            .expect("the fake starts");
        home_assistant::sample_history(&fake);
        let base = fake.url();
        (fake, client(), base)
    }

    const PERIOD: &str = "api/history/period/2026-11-19T00:00:00+01:00";
    const END: &str = "end_time=2026-11-21T00%3A00%3A00%2B01%3A00";

    #[tokio::test]
    async fn a_long_lived_token_is_required() {
        let (_fake, http, base) = fake().await;
        let response = http.get(base.join("api/").unwrap()).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.text().await.unwrap(), "401: Unauthorized");
        let (status, body) =
            get_json(http.get(base.join("api/").unwrap()).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body["message"], "API running.");
    }

    #[tokio::test]
    async fn parameters_are_checked() {
        let (_fake, http, base) = fake().await;
        let cases = [
            (format!("{PERIOD}?{END}"), "filter_entity_id is missing"),
            (
                format!("{PERIOD}?filter_entity_id=Front%20Door"),
                "Invalid filter_entity_id",
            ),
            (
                "api/history/period/yesterday?filter_entity_id=sensor.x".to_owned(),
                "Invalid datetime",
            ),
            (
                format!("{PERIOD}?filter_entity_id=sensor.x&end_time=tomorrow"),
                "Invalid end_time",
            ),
            // A bare + reads as a space.
            (
                format!("{PERIOD}?filter_entity_id=sensor.x&end_time=2026-11-21T00:00:00+01:00"),
                "Invalid end_time",
            ),
        ];
        for (path, message) in cases {
            let (status, body) =
                get_json(http.get(base.join(&path).unwrap()).bearer_auth(TEST_TOKEN)).await;
            assert_eq!(status, 400, "{path}");
            assert_eq!(body["message"], message, "{path}");
        }
    }

    #[tokio::test]
    async fn history_gives_the_documented_openings() {
        let (_fake, http, base) = fake().await;
        let url = base
            .join(&format!(
                "{PERIOD}?filter_entity_id=binary_sensor.front_door,sensor.desk_plug_power&{END}"
            ))
            .unwrap();
        let (status, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(status, 200);
        let entities = body.as_array().unwrap();
        assert_eq!(entities.len(), 2);
        let door = entities[0].as_array().unwrap();
        assert_eq!(door[0]["state"], "off", "the state in effect at the start");
        assert_eq!(door[0]["last_changed"], "2026-11-18T23:00:00+00:00");
        assert_eq!(door[0]["attributes"]["friendly_name"], "Front door");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let mut openings: BTreeMap<NaiveDate, u32> = BTreeMap::new();
        for s in door.iter().filter(|s| s["state"] == "on") {
            *openings
                .entry(local_day(s["last_changed"].as_str().unwrap(), berlin))
                .or_default() += 1;
        }
        assert_eq!(openings.get(&day("2026-11-19")), Some(&3));
        assert_eq!(openings.get(&day("2026-11-20")), Some(&2));
        assert!(door.iter().any(|s| s["state"] == "unavailable"));
        assert!(door.iter().any(|s| s["state"] == "unknown"));

        let plug = entities[1].as_array().unwrap();
        let watts: Vec<f64> = plug
            .iter()
            .filter(|s| local_day(s["last_changed"].as_str().unwrap(), berlin) == day("2026-11-19"))
            .filter_map(|s| s["state"].as_str().unwrap().parse().ok())
            .collect();
        assert_eq!(watts.iter().sum::<f64>() / watts.len() as f64, 61.25);
    }

    #[tokio::test]
    async fn minimal_response_and_no_attributes() {
        let (_fake, http, base) = fake().await;
        let url = base.join(&format!("{PERIOD}?filter_entity_id=binary_sensor.front_door&{END}&minimal_response&no_attributes")).unwrap();
        let (_, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
        let door = body[0].as_array().unwrap();
        let last = door.len() - 1;
        assert_eq!(door[0]["attributes"], serde_json::json!({}));
        assert!(door[0]["entity_id"].is_string());
        assert!(door[1].get("entity_id").is_none());
        assert_eq!(
            door[1].as_object().unwrap().len(),
            2,
            "state and last_changed only"
        );
        assert!(door[last]["last_updated"].is_string());
    }

    #[tokio::test]
    async fn an_attribute_change_keeps_last_changed() {
        let (fake, http, base) = fake().await;
        fake.record_state(
            "sensor.temp",
            "21.5",
            utc("2026-11-19T10:00:00Z"),
            serde_json::json!({"battery": 90}),
        );
        fake.record_state(
            "sensor.temp",
            "21.5",
            utc("2026-11-19T11:00:00Z"),
            serde_json::json!({"battery": 89}),
        );
        let url = base.join("api/history/period/2026-11-19T09:00:00Z?filter_entity_id=sensor.temp,sensor.nothing").unwrap();
        let (_, body) = get_json(http.get(url).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(
            body.as_array().unwrap().len(),
            1,
            "entities without history are left out"
        );
        assert_eq!(body[0][1]["last_changed"], "2026-11-19T10:00:00+00:00");
        assert_eq!(body[0][1]["last_updated"], "2026-11-19T11:00:00+00:00");
    }

    #[tokio::test]
    async fn a_server_error_fault() {
        let (fake, http, base) = fake().await;
        fake.faults().fail_next(1, reqwest::StatusCode::BAD_GATEWAY);
        let (status, body) =
            get_json(http.get(base.join("api/").unwrap()).bearer_auth(TEST_TOKEN)).await;
        assert_eq!(status, 502);
        assert!(body["message"].is_string());
    }
}

mod activitywatch {
    use super::*;
    use exist_fakes::services::activitywatch::{self, ActivityWatchFake};
    use exist_fakes::services::AuthScheme;

    async fn fake() -> (ActivityWatchFake, reqwest::Client, String, String) {
        let fake = ActivityWatchFake::start(loopback())
            .await
            .expect("the fake starts");
        let (afk, window) = activitywatch::sample_laptop(&fake);
        (fake, client(), afk, window)
    }

    fn events_url(fake: &ActivityWatchFake, bucket: &str, query: &str) -> url::Url {
        let mut url = fake
            .url()
            .join(&format!("api/0/buckets/{bucket}/events"))
            .unwrap();
        url.set_query(Some(query).filter(|q| !q.is_empty()));
        url
    }

    #[tokio::test]
    async fn buckets_are_a_dict_and_unknown_ones_404() {
        let (fake, http, afk, _) = fake().await;
        let (status, body) = get_json(http.get(fake.url().join("api/0/buckets/").unwrap())).await;
        assert_eq!(status, 200);
        assert_eq!(body[&afk]["type"], "afkstatus");
        assert_eq!(body["aw-watcher-window_laptop"]["type"], "currentwindow");
        assert_eq!(body[&afk]["hostname"], "laptop");
        let (status, body) = get_json(http.get(events_url(&fake, "aw-watcher-nope", ""))).await;
        assert_eq!(status, 404);
        assert!(body["message"].is_string());
        assert!(fake.requests().iter().all(|r| r.auth == AuthScheme::None));
    }

    #[tokio::test]
    async fn events_newest_first_clipped_and_limited() {
        let (fake, http, afk, _) = fake().await;
        let (_, body) = get_json(http.get(events_url(&fake, &afk, ""))).await;
        let all = body.as_array().unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all[0]["timestamp"], "2026-11-20T10:05:00+00:00");
        assert_eq!(all[0]["data"]["status"], "not-afk");
        let (_, body) = get_json(http.get(events_url(&fake, &afk, "limit=2"))).await;
        assert_eq!(body.as_array().unwrap().len(), 2);
        // A window cutting the first event in half: its start and duration are clipped.
        let (_, body) = get_json(http.get(events_url(
            &fake,
            &afk,
            "start=2026-11-19T08:45:00Z&end=2026-11-19T09:45:00Z",
        )))
        .await;
        let clipped = body.as_array().unwrap();
        assert_eq!(clipped.len(), 2);
        assert_eq!(clipped[1]["timestamp"], "2026-11-19T08:45:00+00:00");
        assert_eq!(clipped[1]["duration"], 2700.0);
        assert_eq!(clipped[0]["duration"], 900.0);
        let (status, _) = get_json(http.get(events_url(&fake, &afk, "start=yesterday"))).await;
        assert_eq!(status, 400);
        let (status, body) = get_json(http.get(events_url(
            &fake,
            &afk,
            "start=2026-11-20T00:00:00Z&end=2026-11-19T00:00:00Z",
        )))
        .await;
        assert_eq!((status, body), (200, serde_json::json!([])));
    }

    #[tokio::test]
    async fn day_windows_give_the_documented_minutes() {
        let (fake, http, afk, window) = fake().await;
        let mut active = Vec::new();
        let mut terminal = Vec::new();
        for d in ["2026-11-19", "2026-11-20"] {
            let query = format!("start={d}T00:00:00Z&end={d}T23:59:59Z");
            let (_, body) = get_json(http.get(events_url(&fake, &afk, &query))).await;
            let secs: f64 = body
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["data"]["status"] == "not-afk")
                .map(|e| e["duration"].as_f64().unwrap())
                .sum();
            active.push(secs / 60.0);
            let (_, body) = get_json(http.get(events_url(&fake, &window, &query))).await;
            let secs: f64 = body
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| ["Alacritty", "kitty"].contains(&e["data"]["app"].as_str().unwrap()))
                .map(|e| e["duration"].as_f64().unwrap())
                .sum();
            terminal.push(secs / 60.0);
        }
        assert_eq!(active, [190.0, 95.0]);
        assert_eq!(terminal, [75.0, 40.0]);
    }
}

mod withings {
    use super::*;
    use exist_fakes::services::withings::{
        self, WithingsFake, TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_REDIRECT_URI,
    };

    async fn fake() -> (WithingsFake, reqwest::Client) {
        let fake = WithingsFake::start(loopback())
            .await
            .expect("the fake starts");
        fake.clock().set(utc("2026-11-21T08:00:00Z"));
        (fake, client())
    }

    fn authorize_url(fake: &WithingsFake, redirect_uri: &str) -> url::Url {
        let mut url = fake.url().join("oauth2_user/authorize2").unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", TEST_CLIENT_ID)
            .append_pair("state", "xyz")
            .append_pair("scope", "user.metrics")
            .append_pair("redirect_uri", redirect_uri);
        url
    }

    /// Follows the authorization redirect by hand and returns the query it carries.
    async fn authorize(fake: &WithingsFake, http: &reqwest::Client) -> BTreeMap<String, String> {
        let response = http
            .get(authorize_url(fake, TEST_REDIRECT_URI))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(TEST_REDIRECT_URI));
        location.query_pairs().into_owned().collect()
    }

    async fn token(fake: &WithingsFake, http: &reqwest::Client, form: &[(&str, &str)]) -> Value {
        let mut all = vec![
            ("action", "requesttoken"),
            ("client_id", TEST_CLIENT_ID),
            ("client_secret", TEST_CLIENT_SECRET),
        ];
        all.extend_from_slice(form);
        let (status, body) =
            get_json(http.post(fake.url().join("v2/oauth2").unwrap()).form(&all)).await;
        assert_eq!(status, 200, "Withings answers errors with HTTP 200");
        body
    }

    async fn getmeas(
        fake: &WithingsFake,
        http: &reqwest::Client,
        token: &str,
        query: &str,
    ) -> Value {
        let mut url = fake.url().join("measure").unwrap();
        url.set_query(Some(&format!("action=getmeas&{query}")));
        let (status, body) = get_json(http.get(url).bearer_auth(token)).await;
        assert_eq!(status, 200);
        body
    }

    #[tokio::test]
    async fn the_oauth_flow_with_single_use_short_lived_codes() {
        let (fake, http) = fake().await;
        let query = authorize(&fake, &http).await;
        assert_eq!(query["state"], "xyz");
        let code = &query["code"];
        let body = token(
            &fake,
            &http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", TEST_REDIRECT_URI),
            ],
        )
        .await;
        assert_eq!(body["status"], 0);
        assert_eq!(body["body"]["token_type"], "Bearer");
        assert_eq!(body["body"]["expires_in"], 10800);
        assert_eq!(body["body"]["userid"], withings::TEST_USER_ID);
        assert!(
            body["body"]["access_token"].is_string() && body["body"]["refresh_token"].is_string()
        );
        // Used once already.
        let again = token(
            &fake,
            &http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", TEST_REDIRECT_URI),
            ],
        )
        .await;
        assert_eq!(again["status"], 503);
        // Too late.
        let code = authorize(&fake, &http).await["code"].clone();
        fake.clock().advance(chrono::Duration::seconds(31));
        let late = token(
            &fake,
            &http,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", TEST_REDIRECT_URI),
            ],
        )
        .await;
        assert_eq!(late["status"], 503);
        // Another redirect_uri than the authorization's.
        let code = authorize(&fake, &http).await["code"].clone();
        let other = token(
            &fake,
            &http,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://localhost:9/"),
            ],
        )
        .await;
        assert_eq!(other["status"], 503);
        // A wrong secret.
        let (_, body) = get_json(http.post(fake.url().join("v2/oauth2").unwrap()).form(&[
            ("action", "requesttoken"),
            ("grant_type", "refresh_token"),
            ("client_id", TEST_CLIENT_ID),
            ("client_secret", "nope"),
            ("refresh_token", "x"),
        ]))
        .await;
        assert_eq!(body["status"], 503);

        // Secrets never reach the request log.
        let token_requests: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v2/oauth2")
            .collect();
        assert!(token_requests
            .iter()
            .all(|r| r.form_value("client_secret") == Some("***")));
        assert_eq!(token_requests[0].form_value("code"), Some("***"));
        assert_eq!(
            token_requests[0].form_value("grant_type"),
            Some("authorization_code")
        );
    }

    #[tokio::test]
    async fn authorization_refuses_unregistered_callbacks_and_can_be_denied() {
        let (fake, http) = fake().await;
        let response = http
            .get(authorize_url(&fake, "https://evil.example/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let mut missing = fake.url().join("oauth2_user/authorize2").unwrap();
        missing.set_query(Some("response_type=code"));
        assert_eq!(http.get(missing).send().await.unwrap().status(), 400);
        fake.deny_next_authorization();
        let query = authorize(&fake, &http).await;
        assert_eq!(query["error"], "access_denied");
        assert!(!query.contains_key("code"));
    }

    #[tokio::test]
    async fn access_tokens_expire_and_refresh_rotates() {
        let (fake, http) = fake().await;
        withings::sample_weighins(&fake);
        fake.set_access_token_lifetime(chrono::Duration::seconds(600));
        let (access, refresh) = fake.issue_tokens();
        assert_eq!(getmeas(&fake, &http, &access, "").await["status"], 0);
        assert_eq!(getmeas(&fake, &http, "made-up", "").await["status"], 401);
        fake.clock().advance(chrono::Duration::seconds(601));
        let expired = getmeas(&fake, &http, &access, "").await;
        assert_eq!(expired["status"], 401);
        assert!(expired["error"].as_str().unwrap().contains("invalid_token"));

        let rotated = token(
            &fake,
            &http,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(rotated["status"], 0);
        let new_access = rotated["body"]["access_token"].as_str().unwrap().to_owned();
        let new_refresh = rotated["body"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(new_refresh, refresh);
        // The old refresh token still works until the new access token is used...
        let again = token(
            &fake,
            &http,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(again["status"], 0);
        let latest_access = again["body"]["access_token"].as_str().unwrap().to_owned();
        assert_eq!(getmeas(&fake, &http, &latest_access, "").await["status"], 0);
        // ...and not after.
        let dead = token(
            &fake,
            &http,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(dead["status"], 503);
        assert_eq!(getmeas(&fake, &http, &new_access, "").await["status"], 0);

        // The user unlinks the app.
        fake.revoke_all();
        let revoked = token(
            &fake,
            &http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &new_refresh),
            ],
        )
        .await;
        assert_eq!(revoked["status"], 503);
        assert_eq!(getmeas(&fake, &http, &new_access, "").await["status"], 401);
    }

    #[tokio::test]
    async fn getmeas_pages_with_more_and_offset() {
        let (fake, http) = fake().await;
        withings::sample_weighins(&fake);
        fake.set_page_size(2);
        let (access, _) = fake.issue_tokens();
        let mut offset = 0;
        let mut groups = Vec::new();
        let mut pages = 0;
        loop {
            let body = getmeas(
                &fake,
                &http,
                &access,
                &format!("meastypes=1,6&category=1&offset={offset}"),
            )
            .await;
            assert_eq!(body["status"], 0);
            pages += 1;
            groups.extend(
                body["body"]["measuregrps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .cloned(),
            );
            if body["body"]["more"] == 1 {
                offset = body["body"]["offset"].as_u64().unwrap();
            } else {
                assert_eq!(body["body"]["offset"], 0);
                break;
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(groups.len(), 4, "the objective (category 2) is left out");
        // The day's last weigh-in, in the user's timezone.
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let mut last: BTreeMap<NaiveDate, (i64, f64)> = BTreeMap::new();
        for g in &groups {
            let date = g["date"].as_i64().unwrap();
            let weight = g["measures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["type"] == 1)
                .unwrap();
            let kg = weight["value"].as_f64().unwrap()
                * 10f64.powi(weight["unit"].as_i64().unwrap() as i32);
            let local = DateTime::from_timestamp(date, 0)
                .unwrap()
                .with_timezone(&paris)
                .date_naive();
            let entry = last.entry(local).or_insert((date, kg));
            if date > entry.0 {
                *entry = (date, kg);
            }
        }
        let kgs: Vec<f64> = last
            .values()
            .map(|(_, kg)| (kg * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(kgs, [72.35, 72.1, 71.95]);

        // Only the requested types come back, and bad parameters are status 503.
        let body = getmeas(&fake, &http, &access, "meastype=6&startdate=1795500000").await;
        assert!(body["body"]["measuregrps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["measures"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["type"] == 6)));
        assert_eq!(
            getmeas(&fake, &http, &access, "meastypes=weight").await["status"],
            503
        );
        let mut url = fake.url().join("measure").unwrap();
        url.set_query(Some("action=getactivity"));
        assert_eq!(
            get_json(http.get(url).bearer_auth(&access)).await.1["status"],
            503
        );
    }

    #[tokio::test]
    async fn post_forms_throttling_and_http_faults() {
        let (fake, http) = fake().await;
        withings::sample_weighins(&fake);
        let (access, _) = fake.issue_tokens();
        let url = fake.url().join("measure").unwrap();
        let (status, body) = get_json(
            http.post(url.clone())
                .bearer_auth(&access)
                .form(&[("action", "getmeas"), ("meastype", "1")]),
        )
        .await;
        assert_eq!(
            (status, body["status"].clone()),
            (200, serde_json::json!(0))
        );
        assert_eq!(body["body"]["measuregrps"].as_array().unwrap().len(), 5);
        fake.throttle_next(1);
        let (_, body) = get_json(
            http.post(url.clone())
                .bearer_auth(&access)
                .form(&[("action", "getmeas")]),
        )
        .await;
        assert_eq!(body["status"], 601);
        fake.faults().rate_limit_next(1, 5);
        let response = http
            .post(url)
            .bearer_auth(&access)
            .form(&[("action", "getmeas")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "5");
    }
}

mod health_auto_export {
    use super::*;
    use exist_fakes::services::health_auto_export::{fixtures, metric, DATE_FORMAT};

    /// Day values from the posted JSON: `sum` or `last` per local day.
    fn by_day(body: &Value, name: &str, tz: Tz, last: bool) -> Vec<(NaiveDate, f64)> {
        let metric = body["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap();
        let mut days: BTreeMap<NaiveDate, (DateTime<Utc>, f64)> = BTreeMap::new();
        for point in metric["data"].as_array().unwrap() {
            let at = DateTime::parse_from_str(point["date"].as_str().unwrap(), DATE_FORMAT)
                .unwrap()
                .with_timezone(&Utc);
            let qty = point["qty"].as_f64().unwrap();
            let entry = days
                .entry(at.with_timezone(&tz).date_naive())
                .or_insert((at, 0.0));
            if last {
                if at >= entry.0 {
                    *entry = (at, qty);
                }
            } else {
                entry.1 += qty;
            }
        }
        days.into_iter()
            .map(|(d, (_, v))| (d, (v * 100.0).round() / 100.0))
            .collect()
    }

    fn values(days: &[(NaiveDate, f64)]) -> Vec<f64> {
        days.iter().map(|(_, v)| *v).collect()
    }

    #[test]
    fn the_travel_week_gives_the_documented_days_in_both_timezones() {
        let body = fixtures::travel_week().to_json();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            values(&by_day(&body, metric::STEP_COUNT, berlin, false)),
            [7000.0, 4500.0, 6200.0, 11000.0]
        );
        assert_eq!(
            values(&by_day(&body, metric::STEP_COUNT, new_york, false)),
            [7500.0, 4200.0, 6000.0, 11000.0]
        );
        assert_eq!(
            values(&by_day(&body, metric::ACTIVE_ENERGY, berlin, false)),
            [350.5, 280.25, 460.0, 420.0]
        );
        assert_eq!(
            values(&by_day(&body, metric::ACTIVE_ENERGY, new_york, false)),
            [350.5, 330.25, 410.0, 420.0]
        );
        let weight = by_day(&body, metric::WEIGHT_BODY_MASS, berlin, true);
        assert_eq!(
            weight
                .iter()
                .map(|(d, _)| d.to_string())
                .collect::<Vec<_>>(),
            ["2026-11-16", "2026-11-18", "2026-11-19"]
        );
        assert_eq!(values(&weight), [80.2, 79.9, 79.7]);
        assert_eq!(
            values(&by_day(&body, metric::WEIGHT_BODY_MASS, new_york, true)),
            [80.2, 80.0, 79.9, 79.7]
        );
    }

    #[test]
    fn pounds_say_so_in_units() {
        let body = fixtures::weight_in_pounds().to_json();
        assert_eq!(body["data"]["metrics"][0]["units"], "lb");
        assert_eq!(
            body["data"]["metrics"][0]["data"][1]["date"],
            "2026-11-18 07:30:00 +0100"
        );
    }
}

mod gadgetbridge {
    use super::*;
    use exist_fakes::services::gadgetbridge;
    use rusqlite::{Connection, OpenFlags};

    #[test]
    fn the_database_reads_back_as_the_documented_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Gadgetbridge");
        let device = gadgetbridge::sample_two_days(&path).unwrap();
        // Opened read-only, as the agent's sqlite source will.
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT s.TIMESTAMP, s.STEPS FROM MI_BAND_ACTIVITY_SAMPLE s JOIN DEVICE d ON d._id = s.DEVICE_ID
                 WHERE d.IDENTIFIER = 'C8:0F:10:AA:BB:CC' AND s.STEPS > 0",
            )
            .unwrap();
        let rows: Vec<(i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let per_day = |tz: Tz| {
            let mut days: BTreeMap<NaiveDate, i64> = BTreeMap::new();
            for (ts, steps) in &rows {
                *days
                    .entry(
                        DateTime::from_timestamp(*ts, 0)
                            .unwrap()
                            .with_timezone(&tz)
                            .date_naive(),
                    )
                    .or_default() += steps;
            }
            days.into_values().collect::<Vec<_>>()
        };
        assert_eq!(per_day(Tz::UTC), [6600, 4800]);
        assert_eq!(per_day("Europe/Berlin".parse().unwrap()), [6000, 5400]);
        let (heart_rates, quiet): (i64, i64) = conn
            .query_row(
                "SELECT SUM(HEART_RATE = 255), SUM(STEPS = 0) FROM MI_BAND_ACTIVITY_SAMPLE WHERE DEVICE_ID = ?1",
                [device],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(heart_rates > 0, "some minutes have no heart-rate reading");
        assert_eq!(quiet, 60, "an hour asleep");
        let metadata_rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM android_metadata", [], |r| r.get(0))
            .unwrap();
        assert_eq!(metadata_rows, 1, "Android's metadata table is there");
    }
}
