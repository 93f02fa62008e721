//! `exist-agent init` on a pseudo-terminal, as a person answers it: the app, the secret, a source
//! with a template from its group, the file written (0600 with the secret in it) and loading,
//! then login through the browser's redirect and a dry run. `--print` writes nothing, an
//! existing file is kept unless replacing it is confirmed, and without a terminal init refuses.

use std::path::Path;
use std::process::Command;

use rexpect::session::PtySession;

use crate::common::{free_port, today_utc, write_lines, World};

/// `init` with `args` on a pseudo-terminal, in a home of its own (no keyring, no display).
fn spawn_init(world: &World, home: &Path, args: &[&str]) -> PtySession {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("exist-agent"));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("EXIST_AGENT_CONFIG")
        .env_remove("EXIST_CLIENT_SECRET")
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(&world.config_path)
        .arg("init")
        .args(args);
    rexpect::session::spawn_command(cmd, Some(30_000)).unwrap()
}

/// Answers `question` (a text the prompt contains) with `answer`.
fn answer(p: &mut PtySession, question: &str, answer: &str) {
    if let Err(e) = p.exp_string(question) {
        panic!("init did not ask {question:?}: {e}");
    }
    p.send_line(answer).unwrap();
}

/// The app's questions, answered for the sandbox, with the secret kept as `secret` says.
fn answer_the_app(p: &mut PtySession, redirect: &str, secret: &[(&str, &str)]) {
    answer(p, "Redirect URI [http://localhost:8000/]:", redirect);
    answer(p, "Client id:", "sandbox-client");
    for (q, a) in secret {
        answer(p, q, a);
    }
}

/// A coffee file as a source, and `coffees` from the food group as its attribute.
fn answer_a_source(p: &mut PtySession, file: &Path) {
    answer(p, "Add a source", "file");
    answer(p, "Path of the file", &file.display().to_string());
    answer(p, "Name of the source [coffee]:", "");
    answer(p, "Field with each record's date or timestamp [date]:", "");
    answer(p, "stale after how long", "3d");
    answer(p, "Add an attribute fed by \"coffee\"", "food");
    answer(p, "Which template:", "coffees");
    answer(p, "Record field to aggregate", "");
    p.exp_string("Added coffees").unwrap();
    answer(p, "Add another attribute", "");
    answer(p, "Add another source", "");
    answer(p, "Command to run when syncing fails", "");
    answer(p, "healthchecks-style URL", "");
}

fn coffee_file(world: &World) -> std::path::PathBuf {
    write_lines(
        &world.path("coffee.csv"),
        &["date,kind".into(), format!("{},espresso", today_utc())],
    )
}

#[test]
fn init_asks_writes_a_private_valid_config_then_logs_in_and_dry_runs() {
    let world = World::new("");
    std::fs::remove_file(&world.config_path).unwrap();
    let home = world.path("home");
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    world.sandbox.register_redirect_uri(&redirect);
    let file = coffee_file(&world);
    let base = world.sandbox.base_url().to_string();
    let mut p = spawn_init(&world, &home, &["--base-url", &base]);
    p.exp_string("https://exist.io/account/apps/").unwrap();
    answer_the_app(
        &mut p,
        &redirect,
        &[
            ("Where does the client secret live?", "file"),
            ("Client secret (not shown as you type):", "sandbox-secret"),
        ],
    );
    answer_a_source(&mut p, &file);
    p.exp_string("client_secret = \"sandbox-secret\"").unwrap();
    answer(&mut p, "Write it to", "y");
    p.exp_string("readable by you only").unwrap();

    answer(&mut p, "Log in to Exist now", "y");
    let (_, url) = p
        .exp_regex(r"http://127\.0\.0\.1:\d+/oauth2/authorize\?[^\s]+")
        .unwrap();
    // The "browser": follow Exist's redirect back to the agent's listener.
    let page = world.rt.block_on(reqwest::get(&url)).unwrap();
    assert!(page.status().is_success());
    p.exp_string("Logged in").unwrap();
    answer(&mut p, "Try a dry run now", "y");
    p.exp_string(&format!(
        "coffees {} (none) -> 1 (will be acquired)",
        today_utc()
    ))
    .unwrap();
    p.exp_string("Next:").unwrap();
    p.exp_eof().unwrap();

    let config = exist_agent::config::Config::load(&world.config_path).expect("the file loads");
    assert_eq!(config.exist.client_id, "sandbox-client");
    assert_eq!(config.exist.redirect_uri.to_string(), redirect);
    assert_eq!(config.attributes[0].display_name(), "coffees");
    assert_eq!(
        config.sources[0].stale_after,
        Some(std::time::Duration::from_secs(3 * 86400))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&world.config_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "it holds the secret");
    }
    assert_eq!(world.count("/oauth2/access_token"), 1, "logged in once");
    assert_eq!(
        world.count("/api/2/attributes/update"),
        0,
        "a dry run sends nothing"
    );
    assert!(
        home.join("state/exist-agent/tokens.json").is_file(),
        "the tokens went to the default state directory"
    );
}

#[test]
fn init_print_writes_nothing() {
    let world = World::new("");
    std::fs::remove_file(&world.config_path).unwrap();
    let home = world.path("home");
    let file = coffee_file(&world);
    let mut p = spawn_init(&world, &home, &["--print"]);
    p.exp_string("nothing is written").unwrap();
    answer_the_app(
        &mut p,
        "",
        &[
            ("Where does the client secret live?", "env"),
            ("Environment variable [EXIST_CLIENT_SECRET]:", ""),
        ],
    );
    answer_a_source(&mut p, &file);
    p.exp_string("client_secret_env = \"EXIST_CLIENT_SECRET\"")
        .unwrap();
    p.exp_string("aggregate = \"count\"").unwrap();
    p.exp_eof().unwrap();
    assert!(!world.config_path.exists(), "--print wrote no file");
    assert!(!home.join("state").exists(), "nor any state");
}

#[test]
fn init_keeps_an_existing_file_unless_told() {
    let world = World::new("");
    let before = std::fs::read_to_string(&world.config_path).unwrap();
    let mut p = spawn_init(&world, &world.path("home"), &[]);
    answer(&mut p, "exists already. Replace it? [y/N]:", "");
    p.exp_string("is unchanged").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(std::fs::read_to_string(&world.config_path).unwrap(), before);
}

#[test]
fn init_refuses_without_a_terminal() {
    let world = World::new("");
    let before = std::fs::read_to_string(&world.config_path).unwrap();
    world
        .cmd()
        .arg("init")
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a terminal"))
        .stderr(predicates::str::contains("config.example.toml"));
    assert_eq!(std::fs::read_to_string(&world.config_path).unwrap(), before);
}
