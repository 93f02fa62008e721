//! Installable like a real tool: the crate's metadata, a release profile without debug info, and
//! a Debian package (cargo-deb) whose every asset exists once `scripts/package-assets` ran:
//! the binary's man pages and completion scripts, and the systemd user units, which systemd
//! accepts. cargo-deb itself is not needed here.

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST: &str = include_str!("../../Cargo.toml");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest() -> toml::Table {
    MANIFEST.parse().unwrap()
}

#[test]
fn the_crate_says_what_it_is() {
    let m = manifest();
    let package = m["package"].as_table().unwrap();
    for key in [
        "description",
        "license",
        "repository",
        "readme",
        "keywords",
        "categories",
    ] {
        assert!(
            package.contains_key(key),
            "Cargo.toml's [package] has {key}"
        );
    }
    assert!(root().join(package["readme"].as_str().unwrap()).is_file());
    assert!(
        package["keywords"].as_array().unwrap().len() <= 5,
        "crates.io takes 5"
    );
    let release = m["profile"]["release"].as_table().unwrap();
    assert_eq!(release["debug"].as_bool(), Some(false));
    assert_eq!(release["strip"].as_str(), Some("debuginfo"));
}

#[test]
fn every_debian_asset_is_there_once_the_assets_are_generated() {
    let out = tempfile::tempdir().unwrap();
    let assets = out.path().join("assets");
    let script = Command::new(root().join("scripts/package-assets"))
        .arg(assert_cmd::cargo::cargo_bin("exist-agent"))
        .arg(&assets)
        .output()
        .unwrap();
    assert!(
        script.status.success(),
        "scripts/package-assets: {}",
        String::from_utf8_lossy(&script.stderr)
    );
    let m = manifest();
    let deb = m["package"]["metadata"]["deb"].as_table().unwrap();
    let list = deb["assets"].as_array().unwrap();
    let mut installed = Vec::new();
    for asset in list {
        let asset = asset.as_array().unwrap();
        let (source, target) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        installed.push(target.to_owned());
        if source == "target/release/exist-agent" {
            continue; // cargo deb builds it
        }
        let path = match source.strip_prefix("target/assets/") {
            Some(rest) => assets.join(rest),
            None => root().join(source),
        };
        let matched = matching(&path);
        assert!(!matched.is_empty(), "the asset {source} is not there");
    }
    for wanted in [
        "usr/share/man/man1/",
        "usr/share/bash-completion/completions/exist-agent",
        "usr/lib/systemd/user/exist-agent.timer",
    ] {
        assert!(
            installed.iter().any(|t| t == wanted),
            "the package installs {wanted}"
        );
    }
    let pages = matching(&assets.join("man/*.1"));
    assert!(pages.len() > 10, "a page per command: {pages:?}");
}

/// The files `path` names, its last component possibly a `*.ext` pattern.
fn matching(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    match name.strip_prefix('*') {
        None => path
            .is_file()
            .then(|| path.to_owned())
            .into_iter()
            .collect(),
        Some(ext) => std::fs::read_dir(path.parent().unwrap())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(ext))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[test]
fn the_packaged_user_units_are_valid() {
    let units = root().join("dist/systemd");
    let service = std::fs::read_to_string(units.join("exist-agent.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("exist-agent.timer")).unwrap();
    assert!(service.contains("\nExecStart=/usr/bin/exist-agent run --once\n"));
    assert!(service.contains("\nType=oneshot\n"));
    assert!(timer.contains("\nOnCalendar=hourly\n") && timer.contains("\nFixedRandomDelay=true\n"));
    assert!(timer.contains("\nPersistent=true\n"));
    // systemd checks them, with ExecStart pointing at a binary that exists here.
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("exist-agent");
    std::fs::write(
        dir.path().join("exist-agent.service"),
        service.replace("/usr/bin/exist-agent", &bin.to_string_lossy()),
    )
    .unwrap();
    std::fs::write(dir.path().join("exist-agent.timer"), &timer).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        // The man page the units name is installed by the package, not here.
        .arg("--man=no")
        .arg(dir.path().join("exist-agent.service"))
        .arg(dir.path().join("exist-agent.timer"))
        .output()
    {
        Err(_) => eprintln!(
            "note: systemd-analyze is not installed; the units were checked by content only"
        ),
        Ok(out) => assert!(
            out.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
