//! As real Exist behaves (SPEC guarantee 13): against a sandbox that follows Exist's documented
//! rules rather than the agent's, the agent recovers a lost state without duplicates, finds a
//! custom attribute by its label in Exist's own list, never counts an unaccounted item as
//! acknowledged, says at once when the redirect URI does not match, and `verify` reads back
//! what Exist holds.

use std::io::BufReader;
use std::process::Stdio;

use crate::common::{today_utc, World};
use crate::exist_client::{coffee_csv, custom, file_source, read_authorize_url};
use exist_fakes::exist::{Fault, Misreport};

const FOOD: &[&str] = &["food_write"];
const FOOD_AND_READ: &[&str] = &["food_write", "food_read"];

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Forgets everything the agent kept, as after a new laptop or a deleted state directory, and
/// logs in again with `scopes`.
fn lose_state(world: &World, scopes: &[&str]) {
    std::fs::remove_dir_all(&world.state_dir).unwrap();
    world.login_with(scopes);
}

/// The World's config with `verify = true` added to `[exist]`.
fn enable_verify(world: &World) {
    let text = std::fs::read_to_string(&world.config_path).unwrap();
    let text = text.replacen("[exist]\n", "[exist]\nverify = true\n", 1);
    std::fs::write(&world.config_path, text).unwrap();
}

#[test]
fn losing_the_state_ends_with_the_same_attributes_and_no_duplicates() {
    let world = World::new("");
    let csv = coffee_csv(&world, 3, 2);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(FOOD_AND_READ);
    enable_verify(&world);
    world.cmd().args(["run", "--once"]).assert().success();
    let before: Vec<String> = world
        .sandbox
        .attributes()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(before.contains(&"espressos".to_owned()), "{before:?}");

    lose_state(&world, FOOD_AND_READ);
    world.cmd().args(["run", "--once"]).assert().success();
    let after: Vec<String> = world
        .sandbox
        .attributes()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(after, before, "the same attributes, no espressos_2");
    let creates = world.calls("/api/2/attributes/create/");
    assert_eq!(creates.len(), 2, "one create per life of the state");
    assert_eq!(
        world.value("espressos", &today_utc().to_string()),
        Some(2.into())
    );
    // The third run knows the attribute again: nothing is created or acquired.
    world.cmd().args(["run", "--once"]).assert().success();
    assert_eq!(world.count("/api/2/attributes/create/"), 2);
}

#[test]
fn a_label_exist_names_differently_is_found_in_exists_own_list() {
    // Exist slugifies "Café visits" to cafe_visits (accents folded); a guess from the label
    // alone would say caf_visits. With the read scopes, the agent looks it up by its label.
    let world = World::new("");
    let csv = coffee_csv(&world, 2, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Café visits")));
    enable_verify(&world);
    world.login_with(FOOD_AND_READ);
    world.cmd().args(["run", "--once"]).assert().success();
    assert!(world.sandbox.attribute("cafe_visits").is_some());

    lose_state(&world, FOOD_AND_READ);
    world.cmd().args(["run", "--once"]).assert().success();
    let names: Vec<String> = world
        .sandbox
        .attributes()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["cafe_visits"], "found, not created again");
    assert!(
        world
            .calls("/api/2/attributes/owned/")
            .iter()
            .any(|r| r.status == 200),
        "looked up in Exist's list of owned attributes"
    );
    assert_eq!(world.count("/api/2/attributes/acquire/"), 0);
    // The value of a day only the second life of the state saw lands too.
    assert_eq!(
        world.value("cafe_visits", &today_utc().to_string()),
        Some(1.into())
    );
}

#[test]
fn a_label_exist_names_differently_without_read_scopes_is_a_clear_problem() {
    let world = World::new("");
    let csv = coffee_csv(&world, 2, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Café visits")));
    world.login_with(FOOD);
    world.cmd().args(["run", "--once"]).assert().success();

    lose_state(&world, FOOD);
    let output = world.cmd().args(["run", "--once"]).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(
        !output.status.success(),
        "the attribute cannot sync: {stderr}"
    );
    assert!(
        stderr.contains("Café visits") && stderr.contains("verify = true"),
        "names the attribute and both fixes: {stderr}"
    );
    assert!(stderr.contains("name = "), "{stderr}");
    assert_eq!(
        world.sandbox.attributes().len(),
        1,
        "no duplicate was created"
    );
}

#[test]
fn an_item_the_reply_misreports_stays_pending_and_goes_out_next_run() {
    for how in [
        Misreport::Omitted,
        Misreport::MissingName,
        Misreport::MissingDate,
        Misreport::AlteredName,
        Misreport::AlteredDate,
    ] {
        let world = World::new("");
        let csv = coffee_csv(&world, 3, 1);
        world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
        world.login_with(FOOD);
        world.sandbox.inject(Fault::Misreport {
            count: 1,
            path_prefix: Some("/api/2/attributes/update/".into()),
            item: 1,
            how,
        });
        world.cmd().args(["run", "--once"]).assert().success();
        assert_eq!(
            world.sandbox.values().len(),
            2,
            "{how:?}: the misreported item was not applied"
        );
        let status = world.cmd().args(["status", "--json"]).output().unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(
            status["pending"].as_array().map(Vec::len),
            Some(1),
            "{how:?}: still pending: {status:#}"
        );

        world.cmd().args(["run", "--once"]).assert().success();
        assert_eq!(
            world.sandbox.values().len(),
            3,
            "{how:?}: sent again on the next run"
        );
        let updates = world.calls("/api/2/attributes/update/");
        assert_eq!(updates.len(), 2, "{how:?}");
        assert_eq!(updates[1].items, 1, "{how:?}: only the unaccounted value");
    }
}

#[test]
fn a_redirect_uri_that_differs_from_the_registered_one_is_named_at_once() {
    let world = World::new(&format!(
        "{}{}",
        file_source(&std::env::temp_dir().join("exist-agent-unused.csv")),
        custom("Espressos")
    ));
    // The app at Exist has a trailing slash the config lacks: Exist shows an error page and
    // never redirects, so the agent must say what to compare before the user waits.
    let config = std::fs::read_to_string(&world.config_path).unwrap();
    let configured = config
        .lines()
        .find_map(|l| l.strip_prefix("redirect_uri = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    world
        .sandbox
        .register_redirect_uri(&format!("{configured}/"));
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
        url.contains(&format!(
            "redirect_uri={}",
            url::form_urlencoded::byte_serialize(configured.as_bytes()).collect::<String>()
        )),
        "sent exactly as configured: {url}"
    );
    let page = world.rt.block_on(reqwest::get(&url)).unwrap();
    assert_eq!(page.status(), 400, "Exist's error page, no redirect");
    // The hint follows the "Waiting for Exist" line at once.
    let mut hint = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut stdout, &mut hint).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        hint.contains("not exactly") && hint.contains(&configured),
        "the hint is printed while waiting, not after a timeout: {hint}"
    );
}

#[test]
fn a_denied_authorization_says_so_and_stores_nothing() {
    let world = World::new(&format!(
        "{}{}",
        file_source(&std::env::temp_dir().join("exist-agent-unused.csv")),
        custom("Espressos")
    ));
    world.sandbox.deny_next_authorization();
    let mut child = world
        .std_cmd()
        .args(["login", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = read_authorize_url(&mut stdout);
    let _ = world.rt.block_on(reqwest::get(&url));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "the login failed");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("declined") && stderr.contains("exist-agent login"),
        "{stderr}"
    );
    assert!(world.token_store().load().unwrap().is_none());
}

#[test]
fn verify_without_the_read_scopes_says_how_to_get_them() {
    let world = World::new("");
    let csv = coffee_csv(&world, 2, 1);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    world.login_with(FOOD);
    let output = world.cmd().arg("verify").output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "the config lacks a key: {}",
        stderr_of(&output)
    );
    assert!(stderr_of(&output).contains("verify = true"));

    enable_verify(&world);
    let output = world.cmd().arg("verify").output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("food_read") && stderr_of(&output).contains("login"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn verify_lists_what_exist_holds_differently_and_fix_sends_it_again() {
    let world = World::new("");
    let csv = coffee_csv(&world, 3, 2);
    world.write_config(&format!("{}{}", file_source(&csv), custom("Espressos")));
    enable_verify(&world);
    world.login_with(FOOD_AND_READ);
    world.cmd().args(["run", "--once"]).assert().success();

    let output = world.cmd().arg("verify").output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("0 day(s) differ"),
        "{}",
        stdout_of(&output)
    );

    // The user edits one day in Exist's web page and clears another.
    let today = today_utc();
    let yesterday = (today - chrono::Duration::days(1)).to_string();
    let before = (today - chrono::Duration::days(2)).to_string();
    world
        .sandbox
        .edit_value("espressos", &yesterday, Some(7.into()));
    world.sandbox.edit_value("espressos", &before, None);

    let output = world.cmd().args(["verify", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let differences = doc["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 2, "{doc:#}");
    let on = |day: &str| {
        differences
            .iter()
            .find(|d| d["day"] == day)
            .unwrap_or_else(|| panic!("{day} listed: {doc:#}"))
    };
    assert_eq!(on(&yesterday)["exist"], 7);
    assert_eq!(on(&yesterday)["agent"], 2);
    assert!(on(&before)["exist"].is_null());
    assert_eq!(on(&before)["agent"], 2);
    assert_eq!(
        world.value("espressos", &yesterday),
        Some(7.into()),
        "verify alone changes nothing"
    );

    let output = world.cmd().args(["verify", "--fix"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("fixed: 2"),
        "{}",
        stdout_of(&output)
    );
    assert_eq!(world.value("espressos", &yesterday), Some(2.into()));
    assert_eq!(world.value("espressos", &before), Some(2.into()));
    let output = world.cmd().arg("verify").output().unwrap();
    assert!(
        stdout_of(&output).contains("0 day(s) differ"),
        "{}",
        stdout_of(&output)
    );
}
