use super::*;

const MINIMAL: &str = r#"
[exist]
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

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/test.toml"), text)
}

fn error(text: &str) -> ConfigError {
    parse(text).expect_err("configuration should be refused")
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.exist.base_url.as_str(), "https://exist.io/");
    assert_eq!(c.agent.resync_days, 2);
    assert_eq!(c.agent.schedule.schedule(), &Schedule::Hourly);
    assert_eq!(c.agent.token_store, TokenStoreKind::Auto);
    let SourceKind::Http(h) = &c.sources[0].kind else {
        panic!()
    };
    assert_eq!((h.page_limit, h.window_days), (500, 31));
    assert_eq!(c.scopes(), ["activity_write"]);
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let text = include_str!("../../config.example.toml");
    let c = parse(text).unwrap();
    assert_eq!(c.sources.len(), 3);
    assert_eq!(c.attributes.len(), 3);
    assert_eq!(
        c.scopes(),
        ["activity_write", "food_write", "productivity_write"]
    );
    let documented = |key: &str| {
        text.lines().any(|l| {
            l.trim_start()
                .trim_start_matches("# ")
                .starts_with(&format!("{key} ="))
        })
    };
    let every_key = [
        "base_url",
        "client_id",
        "client_secret_env",
        "client_secret",
        "redirect_uri",
        "timezone",
        "verify",
        "schedule",
        "resync_days",
        "day_starts",
        "token_store",
        "state_dir",
        "listen",
        "notify_secret_env",
        "on_failure",
        "alert_after",
        "ping_url",
        "stale_after",
        "name",
        "kind",
        "url",
        "token_env",
        "id_field",
        "date_field",
        "tz_offset_field",
        "updated_field",
        "page_limit",
        "window_days",
        "max_pages",
        "max_requests",
        "auth",
        "records",
        "window",
        "paging",
        "query",
        "every",
        "params",
        "path",
        "format",
        "command",
        "timeout",
        "template",
        "source",
        "field",
        "aggregate",
        "label",
        "group",
        "value_type",
        "where",
        "map",
        "scale",
        "multiply",
        "fill",
        "separator",
        "prefix",
    ];
    let missing: Vec<_> = every_key.iter().filter(|k| !documented(k)).collect();
    assert!(
        missing.is_empty(),
        "config.example.toml does not document {missing:?}"
    );
}

#[test]
fn scopes_follow_attribute_groups() {
    let text = format!("{MINIMAL}\n[[attribute]]\nlabel = \"Naps\"\ngroup = \"sleep\"\nvalue_type = \"integer\"\nsource = \"health\"\naggregate = \"count\"\n\n[[attribute]]\ntemplate = \"mood\"\nsource = \"health\"\nfield = \"m\"\naggregate = \"last\"\n");
    assert_eq!(
        parse(&text).unwrap().scopes(),
        ["activity_write", "mood_write", "sleep_write"]
    );
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = error(&MINIMAL.replace(
        "date_field = \"startTime\"",
        "date_field = \"startTime\"\npage_limt = 5",
    ));
    assert_eq!(e.line, Some(10));
    assert_eq!(e.key, "source.page_limt");
    assert!(e.problem.contains("unknown field `page_limt`"), "{e}");
    assert!(e.fix.contains("page_limit"), "{e}");
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = error(&MINIMAL.replace("client_id = \"abc\"", "client_id = 12"));
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key, "exist.client_id");
    assert!(e.problem.contains("invalid type"), "{e}");
}

#[test]
fn duplicate_source_name() {
    let e = error(&format!("{MINIMAL}\n[[source]]\nname = \"health\"\nkind = \"file\"\npath = \"x.csv\"\ndate_field = \"d\"\n"));
    assert_eq!(e.key, "source[2].name");
    assert_eq!(e.line, Some(18));
    assert!(e.problem.contains("\"health\""));
}

#[test]
fn attribute_with_missing_source() {
    let e = error(&MINIMAL.replace("source = \"health\"", "source = \"helth\""));
    assert_eq!(e.key, "attribute[1].source");
    assert_eq!(e.line, Some(13));
    assert!(e.problem.contains("no source is named \"helth\""));
    assert!(e.fix.contains("\"health\""));
}

#[test]
fn unknown_template_suggests_close_ones() {
    let e = error(&MINIMAL.replace("template = \"steps\"", "template = \"stepz\""));
    assert_eq!(e.key, "attribute[1].template");
    assert_eq!(e.line, Some(12));
    assert!(e.fix.contains("\"steps\""), "{e}");
}

#[test]
fn page_limit_out_of_range() {
    for bad in ["0", "501"] {
        let e = error(&MINIMAL.replace(
            "date_field = \"startTime\"",
            &format!("date_field = \"startTime\"\npage_limit = {bad}"),
        ));
        assert_eq!(e.key, "source[1].page_limit");
        assert_eq!(e.line, Some(10));
        assert!(e.fix.contains("1 to 500"));
    }
}

#[test]
fn resync_days_below_two() {
    let e = error(&MINIMAL.replace("[[source]]", "[agent]\nresync_days = 1\n\n[[source]]"));
    assert_eq!(e.key, "agent.resync_days");
    assert_eq!(e.line, Some(6));
    assert!(e.fix.contains("from 2"));
}

#[test]
fn bad_cron_expression() {
    let e = error(&MINIMAL.replace(
        "[[source]]",
        "[agent]\nschedule = \"every tuesday\"\n\n[[source]]",
    ));
    assert_eq!(e.key, "agent.schedule");
    assert_eq!(e.line, Some(6));
    assert!(e.fix.contains("cron expression"));
    assert!(parse(&MINIMAL.replace(
        "[[source]]",
        "[agent]\nschedule = \"17 */2 * * *\"\n\n[[source]]"
    ))
    .is_ok());
}

#[test]
fn kind_specific_keys_are_checked() {
    let e = error(&MINIMAL.replace(
        "date_field = \"startTime\"",
        "date_field = \"startTime\"\ncommand = [\"ls\"]",
    ));
    assert_eq!(e.key, "source[1].command");
    assert!(e.problem.contains("does not apply to a http source"));
    let e = error(&MINIMAL.replace(
        "url = \"https://api.example.com/v1/human/activities\"\n",
        "",
    ));
    assert!(e.problem.contains("needs `url`"));
}

#[test]
fn attributes_need_exactly_one_target_and_a_field() {
    let e = error(&MINIMAL.replace(
        "template = \"steps\"",
        "template = \"steps\"\nlabel = \"Steps\"",
    ));
    assert!(e.problem.contains("exactly one of"));
    let e = error(&MINIMAL.replace("field = \"steps\"\n", ""));
    assert!(e.problem.contains("needs the record `field`"));
    let e = error(&MINIMAL.replace(
        "template = \"steps\"",
        "label = \"X\"\ngroup = \"food\"\nvalue_type = \"time_of_day_midday\"",
    ));
    assert!(e.problem.contains("templates only"));
}

#[test]
fn timezone_and_redirect_are_checked() {
    let e = error(&MINIMAL.replace(
        "client_id = \"abc\"",
        "client_id = \"abc\"\ntimezone = \"Mars/Olympus\"",
    ));
    assert_eq!(e.key, "exist.timezone");
    let e = error(&MINIMAL.replace(
        "client_id = \"abc\"",
        "client_id = \"abc\"\nredirect_uri = \"https://example.com/cb\"",
    ));
    assert_eq!(e.key, "exist.redirect_uri");
    assert!(e.problem.contains("not a loopback"));
}

#[test]
fn display_names_file_line_key_and_fix() {
    let e = error(&MINIMAL.replace("template = \"steps\"", "template = \"stepz\""));
    let text = e.to_string();
    assert!(
        text.starts_with("/etc/test.toml:12: key `attribute[1].template`: "),
        "{text}"
    );
    assert!(text.contains("\n  fix: did you mean"), "{text}");
}

#[test]
fn secrets_in_config_are_redacted_in_debug_output() {
    let c = parse(&MINIMAL.replace(
        "client_id = \"abc\"",
        "client_id = \"abc\"\nclient_secret = \"s3cr3t-value\"",
    ))
    .unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
    assert_eq!(
        c.exist.client_secret.resolve().unwrap().expose(),
        "s3cr3t-value"
    );
}

#[test]
fn alerts_are_checked() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.agent.alerts.alert_after, DEFAULT_ALERT_AFTER);
    assert_eq!(
        (
            c.agent.alerts.on_failure.clone(),
            c.agent.alerts.ping_url.clone()
        ),
        (None, None)
    );
    let with =
        |agent: &str| MINIMAL.replace("[[source]]", &format!("[agent]\n{agent}\n\n[[source]]"));
    let c = parse(&with(
        "on_failure = [\"notify-send\", \"{message}\"]\nalert_after = \"30m\"\nping_url = \"https://hc-ping.com/x\"",
    ))
    .unwrap();
    assert_eq!(
        c.agent.alerts.alert_after,
        std::time::Duration::from_secs(1800)
    );
    assert_eq!(
        c.agent.alerts.ping_url.unwrap().as_str(),
        "https://hc-ping.com/x"
    );
    let e = error(&with("on_failure = []"));
    assert_eq!((e.key.as_str(), e.line), ("agent.on_failure", Some(6)));
    assert!(error(&with("alert_after = \"soon\""))
        .problem
        .contains("not a duration"));
    assert!(error(&with("ping_url = \"hc-ping.com/x\""))
        .problem
        .contains("not an http(s) URL"));
    let stale = MINIMAL.replace(
        "date_field = \"startTime\"",
        "date_field = \"startTime\"\nstale_after = \"3 days\"",
    );
    assert_eq!(
        parse(&stale).unwrap().sources[0].stale_after,
        Some(std::time::Duration::from_secs(3 * 86400))
    );
    let e = error(&MINIMAL.replace(
        "date_field = \"startTime\"",
        "date_field = \"startTime\"\nstale_after = \"often\"",
    ));
    assert_eq!(e.key, "source[1].stale_after");
}

const DAYLIO: &str = r#"
[exist]
client_id = "abc"

[[source]]
name = "daylio"
kind = "file"
path = "daylio.csv"
date_field = "full_date"

[[attribute]]
template = "mood"
source = "daylio"
field = "mood"
aggregate = "mean"
map = { rad = 9, good = 7, meh = 5, bad = 3, awful = 1 }
"#;

#[test]
fn transforms_parse_into_types() {
    let text = format!(
        "{DAYLIO}\n[[attribute]]\nlabel = \"Meditated\"\ngroup = \"custom\"\nvalue_type = \"boolean\"\nsource = \"daylio\"\naggregate = \"any\"\nfill = \"zero\"\nwhere = [{{ field = \"activities\", matches = \"medit\" }}, {{ field = \"mood\", in = [\"rad\", \"good\"] }}]\n\n[[attribute]]\ntemplate = \"weight\"\nsource = \"daylio\"\nfield = \"lb\"\naggregate = \"last\"\nmultiply = 0.45359237\nwhere = {{ field = \"user\", exists = true }}\n\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"\nseparator = \" | \"\nprefix = \"daylio \"\n"
    );
    let c = parse(&text).unwrap();
    let mood = &c.attributes[0];
    assert!(mood.transform.map.is_some() && mood.transform.conditions.is_empty());
    let meditated = &c.attributes[1];
    assert_eq!(meditated.aggregate, Aggregate::Any);
    assert_eq!(meditated.fill, Fill::Zero);
    assert_eq!(meditated.transform.conditions.len(), 2);
    assert_eq!(c.attributes[2].transform.multiply, Some(0.45359237));
    assert_eq!(
        c.tags,
        [TagsConfig {
            source: "daylio".into(),
            field: "activities".into(),
            separator: Some(" | ".into()),
            prefix: "daylio ".into(),
        }]
    );
    assert_eq!(
        c.scopes(),
        ["custom_write", "health_write", "mood_write"],
        "tags are written to the custom group"
    );
}

/// The error for `DAYLIO` with `extra` appended to its attribute (line 17 on).
fn daylio_error(extra: &str) -> ConfigError {
    error(&format!("{DAYLIO}{extra}\n"))
}

#[test]
fn transform_errors_name_line_key_and_fix() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "where = { field = \"mood\", matches = \"(rad\" }",
            17,
            "attribute[1].where",
            "is not a regular expression",
        ),
        (
            "where = { field = \"mood\", equals = \"rad\", in = [\"good\"] }",
            17,
            "attribute[1].where",
            "more than one test",
        ),
        (
            "where = { field = \"mood\", contains = \"rad\" }",
            17,
            "attribute[1].where",
            "`contains` is not a test",
        ),
        (
            "where = [{ field = \"mood\", exists = true }, { equals = 1 }]",
            17,
            "attribute[1].where",
            "condition 2: a condition needs the `field`",
        ),
        (
            "where = { field = \"a..b\", exists = true }",
            17,
            "attribute[1].where",
            "not a field name",
        ),
        (
            "where = { field = \"mood\", in = [] }",
            17,
            "attribute[1].where",
            "`in` needs a list",
        ),
        (
            "scale = { from = [1, 9], to = [0, 10] }",
            17,
            "attribute[1].scale",
            "leaves the range of mood (scale: 1 to 9)",
        ),
        (
            "scale = { from = [3, 3], to = [1, 9] }",
            17,
            "attribute[1].scale",
            "no width",
        ),
        (
            "scale = { from = [1, 5], to = [1, 9] }",
            16,
            "attribute[1].map.good",
            "\"good\" maps to 7, outside scale.from [1, 5]",
        ),
        (
            "fill = \"zero\"",
            17,
            "attribute[1].fill",
            "no mean to fill",
        ),
        ("fill = \"zeros\"", 17, "attribute[1].fill", "not a fill"),
        ("multiply = 0", 17, "attribute[1].multiply", "nonsense"),
    ];
    for (extra, line, key, problem) in cases {
        let e = daylio_error(extra);
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(*line), *key),
            "{extra}: {e}"
        );
        assert!(e.problem.contains(problem), "{extra}: {e}");
        assert!(!e.fix.is_empty(), "{extra}: {e}");
    }
}

#[test]
fn map_errors() {
    let e = error(&DAYLIO.replace("rad = 9", "rad = 10"));
    assert_eq!(e.key, "attribute[1].map.rad");
    assert_eq!(e.line, Some(16));
    assert!(e.problem.contains("leaves the range of mood"), "{e}");
    let e = error(&DAYLIO.replace("rad = 9", "rad = \"nine\""));
    assert_eq!(e.key, "attribute[1].map.rad");
    assert!(e.problem.contains("not a number"), "{e}");
    let e = error(&DAYLIO.replace("rad = 9", "\" meh\" = 4"));
    assert!(e.problem.contains("listed twice"), "{e}");
    let e = error(&DAYLIO.replace("{ rad = 9, good = 7, meh = 5, bad = 3, awful = 1 }", "{}"));
    assert_eq!(e.key, "attribute[1].map");
    assert!(e.problem.contains("lists nothing"), "{e}");
    let e = error(&DAYLIO.replace("aggregate = \"mean\"", "aggregate = \"count\""));
    assert_eq!(e.key, "attribute[1].map");
    assert!(e.problem.contains("`count` looks at records"), "{e}");
    // A sum may leave the range of one value; only kept values are checked.
    let sum = DAYLIO
        .replace(
            "template = \"mood\"",
            "label = \"Mood points\"\ngroup = \"mood\"\nvalue_type = \"integer\"",
        )
        .replace("rad = 9", "rad = 90")
        .replace("\"mean\"", "\"sum\"");
    assert!(parse(&sum).is_ok());
}

#[test]
fn any_and_tags_errors() {
    let e = daylio_error("\n[[attribute]]\nlabel = \"Gym\"\ngroup = \"custom\"\nvalue_type = \"boolean\"\nsource = \"daylio\"\nfield = \"activities\"\naggregate = \"any\"");
    assert_eq!(e.key, "attribute[2].field");
    assert!(e.problem.contains("`any` asks whether"), "{e}");
    let e = daylio_error(
        "\n[[attribute]]\ntemplate = \"energy_level\"\nsource = \"daylio\"\naggregate = \"any\"",
    );
    assert_eq!(e.key, "attribute[2].aggregate");
    assert!(e.problem.contains("cannot hold"), "{e}");
    let e = daylio_error("\n[[tags]]\nsource = \"dayli\"\nfield = \"activities\"");
    assert_eq!((e.key.as_str(), e.line), ("tags[1].source", Some(19)));
    assert!(e.fix.contains("\"daylio\""), "{e}");
    let e =
        daylio_error("\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"\nseparator = \"\"");
    assert_eq!(e.key, "tags[1].separator");
    let e = daylio_error("\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"\n\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"");
    assert_eq!(e.key, "tags[2]");
    assert!(e.problem.contains("configured twice"), "{e}");
    let e = daylio_error("\n[[tags]]\nsource = \"daylio\"\nfield = \"activities\"\nsplit = \"|\"");
    assert_eq!(e.key, "tags.split");
}
