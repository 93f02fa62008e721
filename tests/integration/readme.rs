//! The README stays true: every command it shows in a `sh` block runs (except the ones it marks
//! as needing an Exist account or running until stopped), every TOML example is a valid
//! configuration, and its command table matches `--help`.

use crate::common::{write_lines, World};
use clap::CommandFactory;

const README: &str = include_str!("../../README.md");

/// The fenced blocks of the README with the given info string.
fn blocks(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        let trimmed = line.trim_start();
        match (&mut current, trimmed.strip_prefix("```")) {
            (None, Some(info)) if info == lang => current = Some(String::new()),
            (Some(_), Some("")) => out.push(current.take().unwrap()),
            (Some(block), None) => {
                block.push_str(trimmed);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// A world with the sources and attributes the README's commands name.
fn readme_world() -> World {
    let world = World::new("");
    let today = crate::common::today_utc();
    write_lines(
        &world.path("health.csv"),
        &["startTime,steps".into(), format!("{today}T09:00:00Z,1200")],
    );
    write_lines(
        &world.path("coffee.csv"),
        &[
            "date,kind".into(),
            format!("{today},espresso"),
            "2026-01-05,latte".into(),
        ],
    );
    world.write_config(&format!(
        "[[source]]\nname = \"health\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"startTime\"\n\n[[source]]\nname = \"coffee\"\nkind = \"file\"\npath = \"{}\"\ndate_field = \"date\"\n\n[[attribute]]\ntemplate = \"steps\"\nsource = \"health\"\nfield = \"steps\"\naggregate = \"sum\"\n\n[[attribute]]\ntemplate = \"coffees\"\nsource = \"coffee\"\naggregate = \"count\"\n",
        world.path("health.csv").display(),
        world.path("coffee.csv").display()
    ));
    world.login_with(&["activity_write", "food_write"]);
    world
}

#[test]
fn every_command_the_readme_shows_runs() {
    let world = readme_world();
    let xdg = world.path("xdg");
    let bin = world.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake_systemctl = bin.join("systemctl");
    std::fs::write(&fake_systemctl, "#!/bin/sh\nexit 0\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for line in blocks("sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
    {
        let Some(command) = line.strip_prefix("exist-agent ") else {
            continue;
        };
        if line.contains("needs an Exist account") || line.contains("runs until stopped") {
            continue;
        }
        let command = command.split(" #").next().unwrap().trim();
        let args: Vec<&str> = command.split_whitespace().collect();
        let out = world
            .cmd()
            .env("XDG_CONFIG_HOME", &xdg)
            .env("PATH", &path)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`exist-agent {command}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 10, "the README shows commands ({ran} ran)");
    assert_eq!(
        world.value("coffees", "2026-11-20"),
        Some(3.into()),
        "the README's push landed"
    );
    assert_eq!(
        world.value("coffees", "2026-01-05"),
        Some(1.into()),
        "the README's backfill landed"
    );
}

#[test]
fn every_toml_example_is_a_valid_configuration() {
    let examples = blocks("toml");
    assert!(examples.len() >= 3);
    let dir = tempfile::tempdir().unwrap();
    for example in examples {
        let text = format!("[exist]\nclient_id = \"x\"\n\n{example}");
        // Examples show one source each; attributes refer to it.
        let path = dir.path().join("example.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = exist_agent::config::Config::load(&path) {
            panic!("README example does not parse: {e}\n{example}");
        }
    }
}

#[test]
fn the_command_table_and_help_agree() {
    let cli = exist_agent::cli::Cli::command();
    let table: Vec<&str> = README
        .split("## Commands")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split([' ', '`']).next())
        .collect();
    for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
        assert!(
            table.contains(&sub.get_name()),
            "`{}` is in --help but not in the README's table",
            sub.get_name()
        );
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(!about.is_empty(), "`{}` has help text", sub.get_name());
    }
    for name in table.iter().filter(|n| !n.starts_with("--")) {
        assert!(
            cli.find_subcommand(name).is_some(),
            "the README lists `{name}`, which --help does not know"
        );
    }
}
