//! Sources that need OAuth2, against the Withings fake (its documented flow: `authorize2`,
//! `action=requesttoken`, replies inside `{status, body}`, rotating refresh tokens): `login
//! --source` through the loopback listener into the source's own token entry, refresh only on
//! expiry, once across processes, and a lost authorization said as "log in again".

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{free_port, World};
use exist_agent::config::{Config, HttpAuth, OAuth2Config, SourceKind};
use exist_agent::sources::oauth2::{source_token_store, SourceAuth};
use exist_api::tokens::TokenPair;
use exist_api::Secret;
use exist_fakes::services::withings::{WithingsFake, TEST_CLIENT_ID, TEST_CLIENT_SECRET};

struct Provider {
    world: World,
    fake: WithingsFake,
    redirect: String,
}

fn provider() -> Provider {
    let world = World::new("");
    let fake = world
        .rt
        .block_on(WithingsFake::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let redirect = format!("http://127.0.0.1:{}/withings", free_port());
    fake.add_redirect_uri(&redirect);
    let base = fake.url();
    world.write_config(&format!(
        r#"[[source]]
name = "withings"
kind = "http"
url = "{base}measure"
date_field = "date"
auth = {{ oauth2 = {{ authorize_url = "{base}oauth2_user/authorize2", token_url = "{base}v2/oauth2", client_id = "{TEST_CLIENT_ID}", client_secret_env = "WITHINGS_SECRET", scopes = ["user.metrics"], scope_separator = ",", redirect_uri = "{redirect}", token_params = {{ action = "requesttoken" }}, token_reply = "/body" }} }}

[[attribute]]
template = "weight"
source = "withings"
field = "value"
aggregate = "last"
"#
    ));
    Provider {
        world,
        fake,
        redirect,
    }
}

fn oauth_config(world: &World) -> OAuth2Config {
    let config = Config::load(&world.config_path).unwrap();
    let source = config.source("withings").unwrap();
    match &source.kind {
        SourceKind::Http(h) => match &h.auth {
            HttpAuth::OAuth2(o) => (**o).clone(),
            _ => panic!("not oauth2"),
        },
        _ => panic!("not http"),
    }
}

fn auth_of(world: &World) -> SourceAuth {
    let o = oauth_config(world);
    let store = source_token_store(o.token_store, &o.state_dir, "withings", &o).unwrap();
    SourceAuth::new("withings", &o, store, &o.state_dir)
}

/// Stores a pair the fake issued, with the access token already expired.
fn store_expired_pair(p: &Provider) -> (String, String) {
    let (access, refresh) = p.fake.issue_tokens();
    let o = oauth_config(&p.world);
    std::fs::create_dir_all(&o.state_dir).unwrap();
    let store = source_token_store(o.token_store, &o.state_dir, "withings", &o).unwrap();
    store
        .save(&TokenPair {
            access_token: Secret::new(access.clone()),
            refresh_token: Some(Secret::new(refresh.clone())),
            expires_at: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
            scopes: vec!["user.metrics".into()],
        })
        .unwrap();
    (access, refresh)
}

fn token_requests(p: &Provider, grant: &str) -> usize {
    p.fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/oauth2" && r.form_value("grant_type") == Some(grant))
        .count()
}

#[test]
fn login_source_runs_the_providers_flow_into_the_sources_own_entry() {
    let p = provider();
    let mut child = p
        .world
        .std_cmd()
        .args(["login", "--source", "withings", "--no-browser"])
        .env("WITHINGS_SECRET", TEST_CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no URL printed");
        if line.starts_with("http") {
            break line.trim().to_owned();
        }
    };
    let parsed = url::Url::parse(&url).unwrap();
    let query: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "user.metrics");
    assert_eq!(query["redirect_uri"], p.redirect, "sent exactly as written");
    assert!(query.contains_key("state"));
    assert_eq!(query["code_challenge_method"], "S256");
    // The "browser" follows the provider's redirect to the agent's listener.
    let page = p.world.rt.block_on(reqwest::get(&url)).unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    let output = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        output.status.success(),
        "{rest}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(rest.contains("Source \"withings\" authorized"), "{rest}");

    let exchange = p
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v2/oauth2")
        .expect("a token request");
    assert_eq!(exchange.form_value("action"), Some("requesttoken"));
    assert_eq!(
        exchange.form_value("grant_type"),
        Some("authorization_code")
    );
    assert!(exchange.form_value("code_verifier").is_some(), "PKCE");
    let file = p.world.state_dir.join("tokens-withings.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(stored["refresh_token"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !p.world.state_dir.join("tokens.json").exists(),
        "Exist's own entry is untouched"
    );
}

#[test]
fn login_source_names_the_oauth_sources_when_the_name_is_wrong() {
    let p = provider();
    let output = p
        .world
        .cmd()
        .args(["login", "--source", "withing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("write one of withings"), "{stderr}");
}

#[test]
fn an_expired_token_is_refreshed_once_across_two_processes_and_stored_before_use() {
    let p = provider();
    let (old_access, _) = store_expired_pair(&p);
    // Two processes wake at once with the same expired token.
    let tokens: Vec<Secret> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let auth = auth_of(&p.world);
                    temp_env(|| rt.block_on(auth.access_token()).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(tokens[0], tokens[1], "both use the one new token");
    assert_ne!(tokens[0].expose(), old_access);
    assert_eq!(token_requests(&p, "refresh_token"), 1, "one refresh");
    let refresh = p
        .fake
        .requests()
        .into_iter()
        .find(|r| r.form_value("grant_type") == Some("refresh_token"))
        .unwrap();
    assert_eq!(refresh.form_value("action"), Some("requesttoken"));
    let stored = std::fs::read_to_string(p.world.state_dir.join("tokens-withings.json")).unwrap();
    assert!(
        stored.contains(tokens[0].expose()),
        "the rotated pair is stored"
    );

    // A fresh token is used as it is: no refresh on the next run.
    let rt = tokio::runtime::Runtime::new().unwrap();
    temp_env(|| rt.block_on(auth_of(&p.world).access_token()).unwrap());
    assert_eq!(token_requests(&p, "refresh_token"), 1);
}

#[test]
fn a_refresh_lost_in_a_crash_is_reported_as_log_in_again() {
    let p = provider();
    let (_, refresh) = store_expired_pair(&p);
    // Another process refreshed, used the new token (which ends the old refresh token at
    // Withings), then died before storing the new pair.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let new_access = rt.block_on(async {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(format!("{}v2/oauth2", p.fake.url()))
            .form(&[
                ("action", "requesttoken"),
                ("grant_type", "refresh_token"),
                ("client_id", TEST_CLIENT_ID),
                ("client_secret", TEST_CLIENT_SECRET),
                ("refresh_token", refresh.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["body"]["access_token"].as_str().unwrap().to_owned()
    });
    rt.block_on(
        reqwest::Client::new()
            .get(format!("{}measure?action=getmeas", p.fake.url()))
            .bearer_auth(&new_access)
            .send(),
    )
    .unwrap();
    let e = temp_env(|| rt.block_on(auth_of(&p.world).access_token()).unwrap_err());
    let error = exist_agent::error::Error::from(exist_agent::sources::SourceError::from(e));
    assert_eq!(error.exit_code(), 3, "{}", error.message());
    assert!(
        error
            .fix()
            .is_some_and(|f| f.contains("exist-agent login --source withings")),
        "{:?}",
        error.fix()
    );
    // The stored pair is untouched: nothing was overwritten with half a refresh.
    let stored = std::fs::read_to_string(p.world.state_dir.join("tokens-withings.json")).unwrap();
    assert!(stored.contains(&refresh));
}

/// Runs `f` with the client secret in the environment, as the agent would have it.
fn temp_env<T>(f: impl FnOnce() -> T) -> T {
    // Every test here uses the same value, so setting it from several threads is harmless.
    // SAFETY: no test reads or writes WITHINGS_SECRET with another value.
    unsafe { std::env::set_var("WITHINGS_SECRET", TEST_CLIENT_SECRET) };
    f()
}

/// The Withings example of `examples/`, pointed at the fake, with a pair the fake issued stored
/// as `login --source` would have.
fn withings_example(p: &Provider) {
    let whole = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/withings.toml"),
    )
    .unwrap();
    let base = p.fake.url();
    let text = whole[whole.find("[[source]]").unwrap()..]
        .replace(
            "https://wbsapi.withings.net/measure",
            &format!("{base}measure"),
        )
        .replace("https://account.withings.com/", base.as_str())
        .replace("https://wbsapi.withings.net/", base.as_str())
        .replace("your-withings-client-id", TEST_CLIENT_ID)
        .replace(
            "token_reply = \"/body\" }",
            &format!(
                "token_reply = \"/body\", redirect_uri = \"{}\" }}",
                p.redirect
            ),
        );
    p.world.write_config(&format!(
        "{text}\n[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\naggregate = \"count\"\n",
        p.world.path("coffee.csv").display()
    ));
    std::fs::write(
        p.world.path("coffee.csv"),
        format!("date\n{}\n", crate::common::today_utc()),
    )
    .unwrap();
    let config = std::fs::read_to_string(&p.world.config_path).unwrap();
    std::fs::write(
        &p.world.config_path,
        config.replacen("[exist]\n", "[exist]\ntimezone = \"Europe/Paris\"\n", 1),
    )
    .unwrap();
    p.world.login_with(&["health_write", "food_write"]);
    let (access, refresh) = p.fake.issue_tokens();
    let o = oauth_config(&p.world);
    source_token_store(o.token_store, &o.state_dir, "withings", &o)
        .unwrap()
        .save(&TokenPair {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(3)),
            scopes: vec!["user.metrics".into()],
        })
        .unwrap();
}

#[test]
fn the_withings_example_syncs_weight_and_body_fat() {
    let p = provider();
    exist_fakes::services::withings::sample_weighins(&p.fake);
    withings_example(&p);
    let output = p
        .world
        .cmd()
        .env("WITHINGS_SECRET", TEST_CLIENT_SECRET)
        .env("WITHINGS_CLIENT_SECRET", TEST_CLIENT_SECRET)
        .args(["backfill", "--from", "2026-11-15"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kg = |day: &str| p.world.value("weight", day).and_then(|v| v.as_f64());
    let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
    // In Paris: the evening weigh-in is the 19th's last; 00:30 on the 20th is the 20th.
    assert!(near(kg("2026-11-18"), 72.35), "{:?}", kg("2026-11-18"));
    assert!(near(kg("2026-11-19"), 72.1), "{:?}", kg("2026-11-19"));
    assert!(near(kg("2026-11-20"), 71.95), "{:?}", kg("2026-11-20"));
    let fat = p
        .world
        .value("body_fat", "2026-11-18")
        .and_then(|v| v.as_f64());
    assert!(near(fat, 0.184), "{fat:?}");
    // The objective group (category 2) is not a weigh-in.
    assert!(!near(kg("2026-11-19"), 70.0));
    assert!(p
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/measure")
        .all(|r| r.auth == exist_fakes::services::AuthScheme::Bearer));
}

#[test]
fn a_revoked_source_token_stops_that_source_with_exit_3_and_the_others_sync() {
    let p = provider();
    exist_fakes::services::withings::sample_weighins(&p.fake);
    withings_example(&p);
    p.fake.revoke_all();
    let output = p
        .world
        .cmd()
        .env("WITHINGS_CLIENT_SECRET", TEST_CLIENT_SECRET)
        .args(["run", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("exist-agent login --source withings"),
        "{stderr}"
    );
    assert_eq!(
        p.world
            .value("coffees", &crate::common::today_utc().to_string()),
        Some(1.into()),
        "the other source synced"
    );
    assert!(p.world.value("weight", "2026-11-18").is_none());
}
