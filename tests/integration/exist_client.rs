//! Talking to Exist like its best citizen, proven by the sandbox's request log: login through the
//! loopback listener, acquire once, refresh only on expiry and only once, batches of 35, and
//! 202, ownership loss and 429 handled without losing anything.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{write_lines, World};
use exist_api::tokens::TokenPair;
use exist_fakes::exist::{Fault, SandboxOptions};
use predicates::prelude::*;

/// A CSV with one row per day for `days` days ending today (UTC), `per_day` rows each.
pub(crate) fn coffee_csv(world: &World, days: i64, per_day: usize) -> std::path::PathBuf {
    let today = crate::common::today_utc();
    let mut lines = vec!["date,cups".to_owned()];
    for d in 0..days {
        for _ in 0..per_day {
            lines.push(format!("{},1", today - chrono::Duration::days(d)));
        }
    }
    write_lines(&world.path("coffee.csv"), &lines)
}

pub(crate) fn file_source(path: &std::path::Path) -> String {
    format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n",
        path.display()
    )
}

pub(crate) fn custom(label: &str) -> String {
    format!("[[attribute]]\nlabel = \"{label}\"\ngroup = \"food\"\nvalue_type = \"integer\"\nsource = \"coffee\"\naggregate = \"count\"\n\n")
}

fn template(name: &str) -> String {
    format!("[[attribute]]\ntemplate = \"{name}\"\nsource = \"coffee\"\naggregate = \"count\"\n\n")
}

const ALL_SCOPES: &[&str] = &[
    "activity_write",
    "productivity_write",
    "food_write",
    "finance_write",
    "health_write",
    "sleep_write",
    "workouts_write",
    "events_write",
    "location_write",
    "media_write",
    "social_write",
    "mood_write",
];

#[test]
fn login_through_the_loopback_listener() {
    let world = World::new(&format!(
        "{}{}",
        file_source(&unused_csv()),
        template("steps")
    ));
    let mut child = world
        .std_cmd()
        .args(["login", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = read_authorize_url(&mut stdout);
    assert!(
        url.contains("scope=activity_write"),
        "asks for exactly the scopes the config needs: {url}"
    );
    assert!(url.contains("state="), "sends state: {url}");
    // The "browser": follow Exist's redirect to the agent's listener.
    let page = world.rt.block_on(reqwest::get(&url)).unwrap();
    assert!(page.status().is_success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "login failed: {rest}");
    assert!(rest.contains("Logged in"), "{rest}");

    assert_eq!(world.count("/oauth2/authorize"), 1);
    let token_calls = world.calls("/oauth2/access_token");
    assert_eq!(token_calls.len(), 1);
    assert_eq!(
        token_calls[0].grant_type.as_deref(),
        Some("authorization_code")
    );
    let pair = world.token_store().load().unwrap().expect("tokens stored");
    assert!(pair.refresh_token.is_some());
    assert_eq!(pair.scopes, ["activity_write"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(world.state_dir.join("tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A file source path for tests that never pull.
fn unused_csv() -> std::path::PathBuf {
    std::env::temp_dir().join("exist-agent-unused.csv")
}

pub(crate) fn read_authorize_url(stdout: &mut impl BufRead) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "login printed no URL"
        );
        if let Some(url) = line.trim().strip_prefix("http") {
            return format!("http{url}");
        }
    }
}

#[test]
fn login_refuses_a_reply_with_another_state() {
    let world = World::new(&format!(
        "{}{}",
        file_source(&unused_csv()),
        template("steps")
    ));
    let mut child = world
        .std_cmd()
        .args(["login", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = read_authorize_url(&mut stdout);
    let redirect = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    let forged = format!("{redirect}?code=stolen&state=not-the-one-sent");
    let _ = world.rt.block_on(reqwest::get(forged));
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        world.count("/oauth2/access_token"),
        0,
        "no code exchange after a state mismatch"
    );
    assert!(world.token_store().load().unwrap().is_none());
}

#[test]
fn login_with_a_given_token_stores_it() {
    let world = World::new(&format!(
        "{}{}",
        file_source(&unused_csv()),
        template("steps")
    ));
    world
        .cmd()
        .args(["login", "--token", "personal-token-123"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Token stored in"));
    let pair = world.token_store().load().unwrap().unwrap();
    assert_eq!(pair.access_token.expose(), "personal-token-123");
    assert_eq!(world.sandbox.requests().len(), 0);
}

/// The 36 integer, duration and float templates: counts fit all of them.
fn many_templates() -> Vec<&'static str> {
    use exist_api::types::ValueType as V;
    exist_api::templates::TEMPLATES
        .iter()
        .filter(|t| matches!(t.value_type, V::Integer | V::Duration | V::Float))
        .map(|t| t.name)
        .take(36)
        .collect()
}

#[test]
fn first_run_acquires_and_creates_in_batches_then_never_again() {
    let world = World::new("");
    let csv = coffee_csv(&world, 2, 1);
    let templates = many_templates();
    assert_eq!(templates.len(), 36);
    let mut config = file_source(&csv);
    for t in &templates {
        config.push_str(&template(t));
    }
    config.push_str(&custom("Espressos"));
    config.push_str(&custom("Flat whites"));
    world.write_config(&config);
    world.login_with(ALL_SCOPES);

    world.cmd().args(["run", "--once"]).assert().success();
    let acquires = world.calls("/api/2/attributes/acquire/");
    assert_eq!(acquires.len(), 2, "36 templates: ceil(36/35) acquire calls");
    assert_eq!(
        acquires.iter().map(|r| r.items).collect::<Vec<_>>(),
        [35, 1]
    );
    assert!(acquires.iter().all(|r| r
        .body
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["manual"] == false)));
    let creates = world.calls("/api/2/attributes/create/");
    assert_eq!(creates.len(), 1, "two custom attributes in one create call");
    assert_eq!(creates[0].items, 2);
    let espressos = world.sandbox.attribute("espressos").expect("created");
    assert!(!espressos.manual, "created with manual: false");
    assert!(world.sandbox.attribute("flat_whites").is_some());
    // 38 attributes x 2 days = 76 values in ceil(76/35) = 3 update calls.
    assert_eq!(world.count("/api/2/attributes/update/"), 3);
    assert_eq!(
        world.value("espressos", &crate::common::today_utc().to_string()),
        Some(1.into())
    );

    let before = world.sandbox.requests().len();
    world.cmd().args(["run", "--once"]).assert().success();
    let later: Vec<_> = world.sandbox.requests().into_iter().skip(before).collect();
    assert!(
        later
            .iter()
            .all(|r| !r.path.contains("acquire") && !r.path.contains("create")),
        "no acquire on later runs: {later:?}"
    );
    assert!(
        later.iter().all(|r| !r.path.starts_with("/oauth2/")),
        "no token call on later runs"
    );
    assert!(
        later.iter().all(|r| !r.path.contains("update")),
        "nothing changed, nothing written"
    );
}

#[test]
fn a_hundred_values_go_out_in_three_update_calls() {
    let world = World::new("");
    let csv = coffee_csv(&world, 100, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(&["food_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    let updates = world.calls("/api/2/attributes/update/");
    assert_eq!(
        updates.iter().map(|r| r.items).collect::<Vec<_>>(),
        [35, 35, 30]
    );
    assert_eq!(world.sandbox.values().len(), 100);
}

/// Makes the stored token look as if it expires in an hour.
fn expire_soon(world: &World) -> TokenPair {
    let store = world.token_store();
    let mut pair = store.load().unwrap().unwrap();
    pair.expires_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    store.save(&pair).unwrap();
    pair
}

#[test]
fn a_token_expiring_within_a_day_is_refreshed_once_and_the_old_refresh_token_never_reused() {
    let world = World::new("");
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(&["food_write"]);
    let old = expire_soon(&world);

    world.cmd().args(["run", "--once"]).assert().success();
    let refreshes = world.calls("/oauth2/access_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].grant_type.as_deref(), Some("refresh_token"));
    let new = world.token_store().load().unwrap().unwrap();
    assert_ne!(new.access_token, old.access_token, "the new pair is stored");
    assert_ne!(new.refresh_token, old.refresh_token);

    // Exist expires the token early: a 401, one refresh with the NEW refresh token, a retry.
    world.sandbox.expire_access_tokens();
    std::fs::write(
        &csv,
        "date,cups\n".to_owned()
            + &format!(
                "{},1\n{},1\n",
                crate::common::today_utc(),
                crate::common::today_utc()
            ),
    )
    .unwrap();
    world.cmd().args(["run", "--once"]).assert().success();
    let refreshes = world.calls("/oauth2/access_token");
    assert_eq!(refreshes.len(), 2);
    assert_ne!(
        refreshes[1].refresh_token_fingerprint, refreshes[0].refresh_token_fingerprint,
        "an old refresh token is never sent again"
    );
    assert_eq!(
        world.value("espressos", &crate::common::today_utc().to_string()),
        Some(2.into())
    );

    // Valid for a year now: later runs make no token call.
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/oauth2/access_token"), 2);
}

#[test]
fn two_processes_racing_on_an_expired_token_refresh_once() {
    use exist_api::auth::Auth;
    use exist_api::tokens::TokenStore;
    let world = World::new("");
    world.write_config(&format!(
        "{}{}",
        file_source(&unused_csv()),
        custom("Espressos")
    ));
    world.login_with(&["food_write"]);
    expire_soon(&world);
    let config = exist_agent::config::Config::load(&world.config_path).unwrap();
    // Two independent token managers, as two processes would have, on the same state directory.
    let tokens: Vec<_> = world.rt.block_on(async {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let auth = Auth::new(
                    config.exist.app(),
                    TokenStore::File {
                        path: world.state_dir.join("tokens.json"),
                    },
                    std::sync::Arc::new(exist_agent::exist::TokenLock::in_dir(&world.state_dir)),
                );
                tokio::spawn(async move { auth.access_token().await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    assert_eq!(
        world.count("/oauth2/access_token"),
        1,
        "one refresh for both"
    );
    assert_eq!(tokens[0], tokens[1], "both use the one new token");
}

#[test]
fn a_revoked_token_asks_for_login_with_exit_3() {
    let world = World::new("");
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(&["food_write"]);
    world.sandbox.revoke_tokens();
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("run `exist-agent login`"));
}

#[test]
fn no_token_asks_for_login_with_exit_3() {
    let world = World::new("");
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("run `exist-agent login`"));
    assert_eq!(world.sandbox.requests().len(), 0);
}

#[test]
fn a_202_with_mixed_results_keeps_the_refused_value_aside() {
    let world = World::new("");
    let today = crate::common::today_utc();
    let csv = write_lines(
        &world.path("mood.csv"),
        &[
            "date,score".into(),
            format!("{today},7.5"),
            format!("{},", today - chrono::Duration::days(1)),
        ],
    );
    // The user declared `mood` as a float: 7.5 passes the local check, and Exist, which checks
    // values by type only (a float for its integer scale), refuses it. Exist does not check ranges
    // (audit F12), so a refusal has to come from a type.
    let config = format!(
        "[[source]]\nname = \"moods\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"moods\"\naggregate = \"count\"\n\n[[attribute]]\nname = \"mood\"\ngroup = \"mood\"\nvalue_type = \"float\"\nsource = \"moods\"\nfield = \"score\"\naggregate = \"last\"\n",
        csv.display()
    );
    world.write_config(&config);
    world.login_with(&["activity_write", "mood_write"]);
    // `mood` must exist before it can be acquired by name: acquire the template as another client would.
    world.rt.block_on(async {
        let grant = world.sandbox.issue_tokens(&["mood_write"]);
        reqwest::Client::new()
            .post(
                world
                    .sandbox
                    .base_url()
                    .join("api/2/attributes/acquire/")
                    .unwrap(),
            )
            .bearer_auth(grant.access_token)
            .json(&serde_json::json!([{"template": "mood"}]))
            .send()
            .await
            .unwrap();
    });
    world.cmd().args(["run", "--once"]).assert().success();
    let update = world.calls("/api/2/attributes/update/");
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].status, 202);
    assert_eq!(world.value("mood", &today.to_string()), None);
    assert_eq!(world.value("steps", &today.to_string()), Some(1.into()));

    let status = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);
    let rejected = status["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["attribute"], "mood");
    assert_eq!(rejected[0]["error_code"], "validation");

    // Not retried forever: the next run does not send it again.
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/update/"), 1);
}

#[test]
fn ownership_lost_to_another_service_is_reacquired_once_and_the_value_lands() {
    let world = World::new("");
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), template("coffees")));
    world.login_with(&["food_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/acquire/"), 1);

    world.sandbox.give_to_other_service("coffees");
    coffee_csv(&world, 1, 3);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        world.count("/api/2/attributes/acquire/"),
        2,
        "one re-acquire"
    );
    let updates = world.calls("/api/2/attributes/update/");
    assert_eq!(updates.len(), 3, "first run, the refused write, the retry");
    assert_eq!(updates[1].status, 202);
    assert_eq!(
        world.value("coffees", &crate::common::today_utc().to_string()),
        Some(3.into())
    );
}

#[test]
fn a_429_stops_writing_keeps_everything_pending_and_the_next_hour_completes() {
    let world = World::with_options(
        SandboxOptions {
            rate_limit: 4,
            ..SandboxOptions::default()
        },
        "",
    );
    let csv = coffee_csv(&world, 100, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(&["food_write"]);
    // profile + create + 2 updates = 4 requests; the third update gets 429.
    world
        .cmd()
        .args(["run", "--once"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("hourly request limit is reached"));
    assert_eq!(world.sandbox.values().len(), 70);
    let status: serde_json::Value = serde_json::from_slice(
        &world
            .cmd()
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["pending"].as_array().unwrap().len(), 30);
    assert_eq!(status["rate_limited"], true);

    // Within the same hour, the agent does not even try.
    let before = world.sandbox.requests().len();
    world.cmd().args(["run", "--once"]).assert().code(75);
    assert!(world
        .sandbox
        .requests()
        .iter()
        .skip(before)
        .all(|r| !r.path.contains("update")));

    world.sandbox.next_hour();
    force_next_hour(&world);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.sandbox.values().len(), 100, "nothing lost");
}

/// Moves the agent's own hour budget along, as the clock would: its count is per UTC hour and
/// a test cannot wait an hour.
fn force_next_hour(world: &World) {
    let db = rusqlite::Connection::open(world.state_dir.join("state.db")).unwrap();
    db.execute("DELETE FROM rate_budget", []).unwrap();
}

#[test]
fn increments_count_once_and_an_uncertain_one_is_never_retried() {
    let world = World::new("");
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), template("coffees")));
    world.login_with(&["food_write"]);
    let day = "2026-11-01";
    let push = || {
        world
            .cmd()
            .args(["push", "coffees", "1", "--increment", "--date", day])
            .assert()
    };
    push()
        .success()
        .stdout(predicate::str::contains("coffees 2026-11-01: +1 = 1."));
    push().success().stdout(predicate::str::contains("+1 = 2."));
    assert_eq!(world.value("coffees", day), Some(2.into()));

    for fault in [
        Fault::Drop {
            count: 1,
            path_prefix: Some("/api/2/attributes/increment/".into()),
        },
        Fault::Status {
            status: 503,
            count: 1,
            path_prefix: Some("/api/2/attributes/increment/".into()),
        },
    ] {
        let before = world.count("/api/2/attributes/increment/");
        world.sandbox.inject(fault);
        push().code(1).stderr(predicate::str::contains(
            "may or may not have reached Exist",
        ));
        assert_eq!(
            world.count("/api/2/attributes/increment/"),
            before + 1,
            "not repeated"
        );
    }
    assert_eq!(
        world.value("coffees", day),
        Some(2.into()),
        "nothing counted twice"
    );
}

#[test]
fn logs_are_json_lines_on_request_and_never_contain_tokens() {
    let world = World::new("");
    let csv = coffee_csv(&world, 3, 2);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    let pair = world.login_with(&["food_write"]);
    expire_soon(&world);
    let out = world
        .cmd()
        .args(["-vv", "--log-format", "json", "run", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() > 5, "trace output: {stderr}");
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some());
    }
    let new = world.token_store().load().unwrap().unwrap();
    for secret in [
        pair.access_token.expose(),
        pair.refresh_token.as_ref().unwrap().expose(),
        new.access_token.expose(),
        new.refresh_token.as_ref().unwrap().expose(),
        "sandbox-secret",
    ] {
        assert!(!stderr.contains(secret), "a secret reached the log");
    }
}

#[test]
fn push_without_a_date_writes_today_in_the_profiles_timezone() {
    let world = World::with_options(
        SandboxOptions {
            timezone: "Pacific/Kiritimati".into(),
            ..SandboxOptions::default()
        },
        "",
    );
    let csv = coffee_csv(&world, 1, 1);
    world.write_config(&format!("{}{}", file_source(&csv), template("coffees")));
    world.login_with(&["food_write"]);
    world
        .cmd()
        .args(["push", "coffees", "4"])
        .assert()
        .success();
    let tz: chrono_tz::Tz = "Pacific/Kiritimati".parse().unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .to_string();
    assert_eq!(
        world.value("coffees", &today),
        Some(4.into()),
        "today is the user's day (UTC+14), not the machine's"
    );
}

#[test]
fn every_request_counts_toward_the_hour_even_when_nothing_is_sent() {
    let world = World::new("");
    let csv = write_lines(&world.path("coffee.csv"), &["date,cups".to_owned()]);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(&["food_write"]);
    let requests = |world: &World| -> u64 {
        let out = world.cmd().args(["status", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["requests_this_hour"]
            .as_u64()
            .unwrap()
    };
    world
        .cmd()
        .args(["run", "--once", "--dry-run"])
        .assert()
        .success();
    assert_eq!(
        requests(&world),
        world.sandbox.requests().len() as u64,
        "a dry run's profile call counts"
    );
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(
        world.count("/api/2/attributes/update/"),
        0,
        "an empty log sends nothing"
    );
    assert_eq!(
        requests(&world),
        world.sandbox.requests().len() as u64,
        "the create call counts though nothing was sent"
    );
    world.cmd().args(["logout", "--release"]).assert().success();
    assert_eq!(
        requests(&world),
        world.sandbox.requests().len() as u64,
        "the release call counts"
    );
}

#[test]
fn values_out_of_their_types_range_are_kept_aside_locally_and_never_sent() {
    // Exist checks values by type only (audit F12): the range of a scale is the agent's to check.
    let world = World::new("");
    let today = crate::common::today_utc();
    let csv = write_lines(
        &world.path("mood.csv"),
        &["date,score".into(), format!("{today},12")],
    );
    world.write_config(&format!(
        "[[source]]\nname = \"moods\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"mood\"\nsource = \"moods\"\nfield = \"score\"\naggregate = \"last\"\n",
        csv.display()
    ));
    world.login_with(&["mood_write"]);
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/update/"), 0, "nothing sent");
    assert_eq!(world.value("mood", &today.to_string()), None);
    let status = world.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let rejected = status["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["error_code"], "local");
    assert!(rejected[0]["error"]
        .as_str()
        .unwrap()
        .contains("out of range"));
}
