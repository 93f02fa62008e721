//! The README stays true: every command it shows in a `sh` block runs (except the ones it marks
//! as needing an Exist account or running until stopped), every TOML example (and every
//! configuration in `examples/`) is a valid configuration, and its command table matches
//! `--help`.

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

/// Checks configuration `text`, as the agent reads it, naming `what` when it is refused.
fn parses(what: &str, text: &str, dir: &std::path::Path) {
    let path = dir.join("example.toml");
    std::fs::write(&path, text).unwrap();
    if let Err(e) = exist_agent::config::Config::load(&path) {
        panic!("{what} does not parse: {e}\n{text}");
    }
}

/// The configuration files of `examples/` (the Rust examples beside them are not configs).
fn example_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_configuration_parses() {
    let dir = tempfile::tempdir().unwrap();
    // Every README block that is a configuration, or a part of one: a part gets an [exist]
    // table ahead of it.
    let readme: Vec<String> = blocks("toml")
        .into_iter()
        .filter(|b| b.contains("[[source]]") || b.contains("[exist]"))
        .collect();
    assert!(
        readme.len() >= 9,
        "the README shows its examples ({})",
        readme.len()
    );
    for example in &readme {
        let text = if example.contains("[exist]") {
            example.clone()
        } else {
            format!("[exist]\nclient_id = \"x\"\n\n{example}")
        };
        parses("a README example", &text, dir.path());
    }
    // Every configuration in examples/, whole, as a user copies it.
    let files = example_files();
    assert!(files.len() >= 6, "examples/ holds the worked examples");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        parses(&file.display().to_string(), &text, dir.path());
    }
}

#[test]
fn the_readme_shows_every_example_of_examples() {
    // Lines compare trimmed: the README's blocks are indented inside lists.
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let shown: Vec<Vec<String>> = blocks("toml").iter().map(|b| lines(b)).collect();
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(start) = text.find("[[source]]") else {
            panic!("{} has no [[source]]", file.display())
        };
        let body = lines(&text[start..]);
        assert!(
            shown
                .iter()
                .any(|block| block.windows(body.len()).any(|w| w == body)),
            "the README does not show {} (from its [[source]] on)",
            file.display()
        );
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
