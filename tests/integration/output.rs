//! What scripts and shells read: `--json` documents of `run --once`, `backfill` and `doctor`,
//! completion scripts the shells load, and man pages `man` renders.

use std::path::Path;
use std::process::Command;

use crate::common::{today_utc, write_lines, World};

fn coffee_world(lines: &[String]) -> World {
    let world = World::new("");
    write_lines(&world.path("coffee.csv"), lines);
    world.write_config(&format!(
        "[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\naggregate = \"count\"\n",
        world.path("coffee.csv").display()
    ));
    world.login_with(&["food_write"]);
    world
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn run_once_json_is_one_document_of_what_was_done() {
    let today = today_utc();
    let world = coffee_world(&[
        "date,kind".into(),
        format!("{today},espresso"),
        format!("{today},latte"),
        "not-a-date,x".into(),
    ]);
    let out = world
        .cmd()
        .args(["run", "--once", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan = json_of(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["changes"][0]["attribute"], "coffees");
    assert_eq!(plan["changes"][0]["new"], 2);
    assert_eq!(plan["changes"][0]["standing"], "will be acquired");
    assert_eq!(world.count("/api/2/attributes/update"), 0);

    let out = world
        .cmd()
        .args(["run", "--once", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc = json_of(&out);
    assert_eq!(doc["command"], "run");
    assert_eq!(
        (doc["ok"].clone(), doc["exit_code"].clone()),
        (true.into(), 0.into())
    );
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["timezone"], "UTC");
    let source = &doc["sources"][0];
    assert_eq!(
        (source["name"].as_str(), source["pulled"].as_bool()),
        (Some("coffee"), Some(true))
    );
    assert_eq!(source["skipped"][0]["location"], "line 4");
    assert_eq!(doc["changes"][0]["day"], today.to_string());
    assert_eq!(doc["sent"]["acknowledged"], 1);
    assert_eq!(doc["sent"]["update_calls"], 1);
    assert_eq!(doc["sent"]["pending"], 0);
    assert_eq!(doc["failures"], serde_json::json!([]));
    assert!(doc.get("range").is_none());
}

#[test]
fn a_failed_run_is_a_document_too_with_its_exit_code() {
    let world = coffee_world(&["date".into()]);
    std::fs::remove_file(world.path("coffee.csv")).unwrap();
    let out = world
        .cmd()
        .args(["run", "--once", "--json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    assert_ne!(code, 0);
    let doc = json_of(&out);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], code);
    assert_eq!(doc["failures"][0]["source"], "coffee");
    assert!(doc["failures"][0]["message"]
        .as_str()
        .unwrap()
        .contains("coffee.csv"));
    assert!(doc["failures"][0]["fix"].is_string());
    // A run that cannot start at all (no configuration) still prints one document.
    let out = Command::new(bin())
        .env_remove("EXIST_AGENT_CONFIG")
        .args([
            "--config",
            "/nonexistent/exist-agent.toml",
            "run",
            "--once",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc = json_of(&out);
    assert_eq!(doc["failures"][0]["kind"], "config");
}

#[test]
fn backfill_and_doctor_speak_json() {
    let world = coffee_world(&["date,kind".into(), "2026-01-05,latte".into()]);
    let out = world
        .cmd()
        .args([
            "backfill",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json_of(&out);
    assert_eq!(doc["command"], "backfill");
    assert_eq!(doc["range"]["from"], "2026-01-01");
    assert_eq!(doc["range"]["to"], "2026-01-31");
    assert_eq!(doc["sent"]["acknowledged"], 1);
    assert_eq!(world.value("coffees", "2026-01-05"), Some(1.into()));

    let out = world.cmd().args(["doctor", "--json"]).output().unwrap();
    let doc = json_of(&out);
    let checks = doc["checks"].as_array().unwrap();
    assert!(checks.len() >= 5);
    let failed = checks.iter().filter(|c| c["ok"] == false).count();
    assert_eq!(doc["failed"], failed);
    assert_eq!(doc["ok"], failed == 0);
    assert_eq!(out.status.success(), failed == 0);
    assert!(checks
        .iter()
        .all(|c| c["name"].is_string() && c["detail"].is_string()));
    assert!(checks
        .iter()
        .any(|c| c["name"] == "source coffee" && c["ok"] == true));
}

/// The binary's path, for shells to run.
fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("exist-agent")
}

#[test]
fn shells_load_the_completion_scripts() {
    let bin = bin();
    let bin = bin.display();
    // bash: the script registers a completion function for the command.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{bin}' completions bash) && complete -p exist-agent"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exist-agent"));
    // bash completes subcommands through it.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{bin}' completions bash) && COMP_WORDS=(exist-agent comp) COMP_CWORD=1 COMP_LINE='exist-agent comp' COMP_POINT=16 && _exist__agent exist-agent comp exist-agent && printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("completions"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shells = [
        (
            "zsh",
            format!("autoload -U compinit && compinit -u && source <('{bin}' completions zsh) && whence -w _exist-agent"),
            "_exist-agent: function",
        ),
        (
            "fish",
            format!("'{bin}' completions fish | source && complete -C 'exist-agent comp'"),
            "completions",
        ),
    ];
    for (shell, script, expected) in shells {
        if !found_program(shell) {
            eprintln!("note: {shell} is not installed; its completion script was not loaded");
            continue;
        }
        let out = Command::new(shell).arg("-c").arg(&script).output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(expected),
            "{shell} did not load the script:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for shell in ["elvish", "powershell"] {
        let out = Command::new(&*bin.to_string())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}

#[test]
fn man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "exist-agent.1",
        "exist-agent-run.1",
        "exist-agent-init.1",
        "exist-agent-man.1",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} in {pages:?}"
        );
    }
    let main = Command::new(bin()).arg("man").output().unwrap();
    let main = String::from_utf8(main.stdout).unwrap();
    assert!(
        main.starts_with(".ie") || main.contains(".TH exist-agent 1"),
        "{main}"
    );
    assert!(
        main.contains("Exit status"),
        "the exit codes are in the page"
    );
    for page in &pages {
        let path = dir.path().join(page);
        check_roff(&path);
    }
}

/// The page is valid roff (groff warns about nothing) and `man -l` renders it.
fn check_roff(path: &Path) {
    if found_program("groff") {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff warns about {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "note: groff is not installed; {} was not checked",
            path.display()
        );
    }
    if found_program("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "man -l {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("NAME") && text.contains("exist-agent"),
            "{text}"
        );
    } else {
        eprintln!(
            "note: man is not installed; {} was not rendered",
            path.display()
        );
    }
}

fn found_program(name: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(name).is_file())
}
