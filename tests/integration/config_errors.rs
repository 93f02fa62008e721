//! The binary refuses bad configurations with exit code 2 and a message naming file, line and
//! key, before doing anything else.

use assert_cmd::Command;
use predicates::prelude::*;

const GOOD: &str = r#"[exist]
client_id = "abc"

[[source]]
name = "health"
kind = "http"
url = "https://api.example.com/v1/human/activities"
date_field = "startTime"

[[attribute]]
template = "steps"
source = "health"
field = "steps"
aggregate = "sum"
"#;

/// Runs `exist-agent status` on a config file with `text`, returning the assertion.
fn status_with(text: &str) -> (tempfile::TempDir, assert_cmd::assert::Assert) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let assert = Command::cargo_bin("exist-agent")
        .unwrap()
        .env_remove("EXIST_AGENT_CONFIG")
        .arg("--config")
        .arg(&path)
        .arg("status")
        .assert();
    (dir, assert)
}

fn refused(text: &str, line: usize, key: &str, fix: &str) {
    let (dir, assert) = status_with(text);
    let file = dir.path().join("config.toml");
    assert
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:{line}: key `{key}`",
            file.display()
        )))
        .stderr(predicate::str::contains(format!("fix: {fix}")));
}

#[test]
fn unknown_key() {
    refused(
        &GOOD.replace("kind = \"http\"", "kind = \"http\"\nurll = \"x\""),
        7,
        "source.urll",
        "remove or rename the key",
    );
}

#[test]
fn wrong_type() {
    refused(
        &GOOD.replace("[[source]]", "[agent]\nresync_days = \"two\"\n\n[[source]]"),
        5,
        "agent.resync_days",
        "write the value with the type shown",
    );
}

#[test]
fn duplicate_source_name() {
    let text = format!("{GOOD}\n[[source]]\nname = \"health\"\nkind = \"file\"\npath = \"a.csv\"\ndate_field = \"d\"\n");
    refused(
        &text,
        17,
        "source[2].name",
        "give every [[source]] a unique name",
    );
}

#[test]
fn attribute_pointing_at_a_missing_source() {
    refused(
        &GOOD.replace("source = \"health\"", "source = \"fitbit\""),
        12,
        "attribute[1].source",
        "write one of \"health\"",
    );
}

#[test]
fn template_not_in_exists_list() {
    refused(
        &GOOD.replace("template = \"steps\"", "template = \"stepps\""),
        11,
        "attribute[1].template",
        "did you mean \"steps\"",
    );
}

#[test]
fn page_limit_outside_range() {
    refused(
        &GOOD.replace(
            "date_field = \"startTime\"",
            "date_field = \"startTime\"\npage_limit = 1000",
        ),
        9,
        "source[1].page_limit",
        "write a number from 1 to 500",
    );
}

#[test]
fn resync_days_below_two() {
    refused(
        &GOOD.replace("[[source]]", "[agent]\nresync_days = 1\n\n[[source]]"),
        5,
        "agent.resync_days",
        "write a number from 2",
    );
}

#[test]
fn bad_cron_expression() {
    refused(
        &GOOD.replace(
            "[[source]]",
            "[agent]\nschedule = \"61 * * * *\"\n\n[[source]]",
        ),
        5,
        "agent.schedule",
        "write \"hourly\", \"daily\", or a cron expression",
    );
}

#[test]
fn missing_file_is_a_configuration_error() {
    Command::cargo_bin("exist-agent")
        .unwrap()
        .args(["--config", "/nonexistent/exist-agent.toml", "status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/nonexistent/exist-agent.toml: cannot read the configuration file",
        ));
}

#[test]
fn config_path_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env.toml");
    std::fs::write(
        &path,
        GOOD.replace("template = \"steps\"", "template = \"nope\""),
    )
    .unwrap();
    Command::cargo_bin("exist-agent")
        .unwrap()
        .env("EXIST_AGENT_CONFIG", &path)
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("from-env.toml:11"));
}

#[test]
fn the_custom_group_holds_booleans_only() {
    let text = format!("{GOOD}\n[[attribute]]\nlabel = \"Snacks\"\ngroup = \"custom\"\nvalue_type = \"integer\"\nsource = \"health\"\naggregate = \"count\"\n");
    refused(
        &text,
        19,
        "attribute[2].value_type",
        "use another group (e.g. food, health, productivity) for this attribute, or value_type = \"boolean\"",
    );
}

#[test]
fn every_documented_template_is_accepted() {
    for template in [
        "protein",
        "heartrate",
        "sleep_deep",
        "movies_min",
        "weather_temp_max",
    ] {
        let (_dir, assert) = status_with(&GOOD.replace(
            "template = \"steps\"",
            &format!("template = \"{template}\""),
        ));
        let out = assert.get_output().clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("is not an Exist template"),
            "{template}: {stderr}"
        );
    }
}

#[test]
fn a_where_that_is_no_regular_expression() {
    refused(
        &format!("{GOOD}where = {{ field = \"source\", matches = \"(fitbit\" }}\n"),
        15,
        "attribute[1].where",
        "fix the pattern",
    );
}

#[test]
fn a_scale_beyond_the_attribute_type() {
    refused(
        &GOOD
            .replace(
                "template = \"steps\"",
                "label = \"Done\"\ngroup = \"custom\"\nvalue_type = \"boolean\"",
            )
            .replace(
                "aggregate = \"sum\"",
                "aggregate = \"max\"\nscale = { from = [0, 10], to = [0, 5] }",
            ),
        17,
        "attribute[1].scale",
        "write `to` within 0 to 1",
    );
}

#[test]
fn tags_of_a_source_that_is_not_configured() {
    refused(
        &format!("{GOOD}\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"\n"),
        17,
        "tags[1].source",
        "write one of \"health\"",
    );
}
