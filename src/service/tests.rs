use std::process::Command;

use super::*;

const NO_MANAGER: &str = "/nonexistent/exist-agent-test/service-manager";

fn bin() -> PathBuf {
    PathBuf::from("/opt/exist agent/bin/exist-agent")
}

/// A binary and a configuration that exist, in directories whose names need quoting. The `%a`
/// in the binary's directory would expand to the architecture if not escaped, and systemd-analyze
/// would then find no executable.
fn real_files(root: &Path) -> (PathBuf, PathBuf) {
    let bin_dir = root.join("bin %a dir");
    let conf_dir = root.join("my \"conf\" 100%$HOME");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&conf_dir).unwrap();
    let binary = bin_dir.join("exist-agent");
    // The test binary itself: it exists and is executable, which systemd-analyze checks.
    std::os::unix::fs::symlink(std::env::current_exe().unwrap(), &binary).unwrap();
    let config = conf_dir.join("config.toml");
    std::fs::write(&config, "").unwrap();
    (binary, config)
}

#[test]
fn service_runs_once_with_absolute_quoted_paths() {
    let (service, _) = systemd_units(
        &bin(),
        Path::new("/home/ann/.config/exist-agent/config.toml"),
        17,
    );
    assert!(service.contains("\nType=oneshot\n"));
    assert!(service.contains(
        "\nExecStart=\"/opt/exist agent/bin/exist-agent\" --config /home/ann/.config/exist-agent/config.toml run --once\n"
    ), "{service}");
    assert!(service.contains("\nEnvironmentFile=-/home/ann/.config/exist-agent/environment\n"));
    assert!(service.contains("\nTimeoutStartSec=50min\n"));
    // Exit 75 stays a failure, and nothing makes systemd retry in a loop.
    assert!(!service.contains("SuccessExitStatus"));
    assert!(!service.contains("Restart="));
}

#[test]
fn timer_fires_hourly_at_the_install_minute() {
    let (_, timer) = systemd_units(&bin(), Path::new("/c.toml"), 7);
    assert!(timer.contains("\nOnCalendar=*-*-* *:07:00\n"), "{timer}");
    assert!(timer.contains("\nPersistent=true\n"));
    assert!(timer.contains("\nRandomizedDelaySec=3min\n"));
    assert!(timer.contains("[Install]\nWantedBy=timers.target\n"));
}

#[test]
fn exec_words_follow_systemd_quoting() {
    assert_eq!(
        systemd_quote("/usr/bin/exist-agent"),
        "/usr/bin/exist-agent"
    );
    assert_eq!(systemd_quote("/a b/c"), "\"/a b/c\"");
    assert_eq!(systemd_quote("/100%"), "/100%%");
    assert_eq!(systemd_quote("/$HOME/x"), "/$$HOME/x");
    assert_eq!(systemd_quote("/say \"hi\""), "\"/say \\\"hi\\\"\"");
    assert_eq!(systemd_quote("/back\\slash"), "\"/back\\\\slash\"");
    assert_eq!(systemd_quote("/tab\there"), "\"/tab\\x09here\"");
    assert_eq!(systemd_quote("/it's"), "\"/it's\"");
    assert_eq!(systemd_quote(""), "\"\"");
}

#[test]
fn systemd_analyze_accepts_the_units() {
    let root = tempfile::tempdir().unwrap();
    let (binary, config) = real_files(root.path());
    let units = root.path().join("units");
    let target = ServiceTarget::systemd(units.clone()).with_manager_program(NO_MANAGER);
    install(false, &binary, &config, 17, &target).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join(SERVICE_UNIT))
        .arg(units.join(TIMER_UNIT))
        .output();
    match verify {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The content checks above and below still run; only this extra check is skipped.
            eprintln!("note: systemd-analyze is not installed; unit files not verified by systemd");
        }
        Err(e) => panic!("could not run systemd-analyze: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "systemd-analyze verify failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(units.join(SERVICE_UNIT)).unwrap()
        ),
    }
}

#[test]
fn plist_is_well_formed_xml_with_the_expected_keys() {
    let plist = launchd_plist(
        Path::new("/Users/a&b/bin/exist-agent"),
        Path::new("/Users/a&b/<conf>/config.toml"),
        Path::new("/Users/a&b/Library/Logs/exist-agent"),
    );
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&plist, options).unwrap();
    let dict = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("dict"))
        .unwrap();
    let elements: Vec<_> = dict.children().filter(|n| n.is_element()).collect();
    let value = |key: &str| {
        let at = elements
            .iter()
            .position(|n| n.has_tag_name("key") && n.text() == Some(key))
            .unwrap_or_else(|| panic!("no key {key}"));
        elements[at + 1]
    };
    assert_eq!(value("Label").text(), Some(LAUNCHD_LABEL));
    let args: Vec<_> = value("ProgramArguments")
        .children()
        .filter(|n| n.has_tag_name("string"))
        .map(|n| n.text().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "/Users/a&b/bin/exist-agent",
            "--config",
            "/Users/a&b/<conf>/config.toml",
            "run",
            "--once"
        ]
    );
    assert_eq!(value("StartInterval").text(), Some("3600"));
    assert!(value("StartInterval").has_tag_name("integer"));
    assert!(value("RunAtLoad").has_tag_name("true"));
    let log = "/Users/a&b/Library/Logs/exist-agent/exist-agent.log";
    assert_eq!(value("StandardOutPath").text(), Some(log));
    assert_eq!(value("StandardErrorPath").text(), Some(log));
}

#[test]
fn install_writes_both_units_and_uninstall_removes_them() {
    let root = tempfile::tempdir().unwrap();
    let (binary, config) = real_files(root.path());
    let units = root.path().join("systemd").join("user");
    let target = ServiceTarget::systemd(units.clone()).with_manager_program(NO_MANAGER);

    let report = install(false, &binary, &config, 23, &target).unwrap();
    assert_eq!(report.action, Action::Install);
    let (service, timer) = systemd_units(&binary, &config, 23);
    assert_eq!(
        std::fs::read_to_string(units.join(SERVICE_UNIT)).unwrap(),
        service
    );
    assert_eq!(
        std::fs::read_to_string(units.join(TIMER_UNIT)).unwrap(),
        timer
    );
    // No service manager: the files stay, the report says what to run.
    assert!(!report.manager_ok());
    let text = report.to_string();
    assert!(text.contains("is not installed"), "{text}");
    assert!(
        text.contains(&format!(
            "{NO_MANAGER} --user enable --now exist-agent.timer"
        )),
        "{text}"
    );

    let removed = uninstall(&target).unwrap();
    assert_eq!(removed.files.len(), 2);
    assert!(!units.join(SERVICE_UNIT).exists());
    assert!(!units.join(TIMER_UNIT).exists());
    let again = uninstall(&target).unwrap();
    assert!(again.files.is_empty() && again.commands.is_empty());
    assert!(again.to_string().contains("not installed"));
}

#[test]
fn a_failing_manager_is_reported_and_stops_the_dependent_command() {
    let root = tempfile::tempdir().unwrap();
    let (binary, config) = real_files(root.path());
    let target = ServiceTarget::systemd(root.path().join("units")).with_manager_program("false");
    let report = install(false, &binary, &config, 23, &target).unwrap();
    assert!(matches!(
        report.commands[0].outcome,
        CommandOutcome::Failed(_)
    ));
    assert_eq!(
        report.commands[1].outcome,
        CommandOutcome::NotRun("an earlier command failed".into())
    );
    assert!(root.path().join("units").join(TIMER_UNIT).exists());
}

#[test]
fn launchd_install_writes_the_plist_and_makes_the_log_dir() {
    let root = tempfile::tempdir().unwrap();
    let (binary, config) = real_files(root.path());
    let agents = root.path().join("LaunchAgents");
    let logs = root.path().join("Logs").join("exist-agent");
    let target =
        ServiceTarget::launchd(agents.clone(), logs.clone()).with_manager_program(NO_MANAGER);
    let report = install(false, &binary, &config, 5, &target).unwrap();
    let plist = agents.join("io.exist.exist-agent.plist");
    assert_eq!(
        std::fs::read_to_string(&plist).unwrap(),
        launchd_plist(&binary, &config, &logs)
    );
    assert!(logs.is_dir());
    assert_eq!(
        report.commands.last().unwrap().argv[1..],
        ["load", "-w", plist.to_str().unwrap()]
    );
    uninstall(&target).unwrap();
    assert!(!plist.exists());
}

#[test]
fn print_mode_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("units");
    let target = ServiceTarget::systemd(units.clone()).with_manager_program(NO_MANAGER);
    let report = install(true, &bin(), Path::new("/etc/exist-agent.toml"), 9, &target).unwrap();
    assert_eq!(report.action, Action::Print);
    assert!(!units.exists());
    assert!(report
        .commands
        .iter()
        .all(|c| matches!(c.outcome, CommandOutcome::NotRun(_))));
    let text = report.to_string();
    assert!(text.contains("OnCalendar=*-*-* *:09:00"));
    assert!(text.contains(&format!("# {}", units.join(SERVICE_UNIT).display())));
}

#[test]
fn relative_paths_become_absolute() {
    let target =
        ServiceTarget::systemd(PathBuf::from("/nonexistent")).with_manager_program(NO_MANAGER);
    let report = install(
        true,
        Path::new("exist-agent"),
        Path::new("config.toml"),
        9,
        &target,
    )
    .unwrap();
    let cwd = std::env::current_dir().unwrap();
    let word = |name: &str| systemd_quote(cwd.join(name).to_str().unwrap());
    let exec = format!(
        "ExecStart={} --config {} run --once",
        word("exist-agent"),
        word("config.toml")
    );
    assert!(
        report.files[0].contents.contains(&exec),
        "{}",
        report.files[0].contents
    );
}

#[test]
fn install_refuses_a_missing_config_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let (binary, _) = real_files(root.path());
    let missing = root.path().join("nope.toml");
    let target = ServiceTarget::systemd(root.path().join("units")).with_manager_program(NO_MANAGER);
    let err = install(false, &binary, &missing, 9, &target).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("nope.toml") && text.contains("create the configuration"),
        "{text}"
    );
    assert!(!root.path().join("units").exists());
}

#[test]
fn paths_with_control_characters_are_refused() {
    let target =
        ServiceTarget::systemd(PathBuf::from("/nonexistent")).with_manager_program(NO_MANAGER);
    let err = install(true, &bin(), Path::new("/tmp/a\nb.toml"), 9, &target).unwrap_err();
    assert!(err.to_string().contains("control character"), "{err}");
}
