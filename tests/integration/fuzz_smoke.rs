//! Runs the fuzz targets' bodies (`fuzz/src/lib.rs`, compiled here as a module) on their seeds
//! and on a few hand-made inputs, so that the targets compile and work with every change to the
//! product even without the nightly toolchain cargo-fuzz needs. The fuzzing itself is run on
//! demand: see `fuzz/README.md`.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_targets;

use std::path::Path;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds.extend([
        Vec::new(),
        b"\n".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        b"\xff\xfe\x00garbage\r\n,,\"\n".to_vec(),
    ]);
    seeds
}

#[test]
fn the_config_target_runs_on_its_seeds_and_the_example() {
    let mut inputs = seeds("config");
    inputs.push(include_bytes!("../../config.example.toml").to_vec());
    inputs.push(b"[exist]\nclient_id = \"x\"\n[agent]\nresync_days = 1\n".to_vec());
    for input in inputs {
        fuzz_targets::config(&input);
    }
}

#[test]
fn the_records_target_runs_on_its_seeds() {
    for input in seeds("records") {
        fuzz_targets::records(&input);
    }
}

/// Each byte of a seed cut away in turn: a cheap stand-in for the fuzzer's first mutations.
#[test]
fn the_records_target_runs_on_truncated_seeds() {
    for seed in seeds("records") {
        for end in (0..seed.len()).step_by(7) {
            fuzz_targets::records(&seed[..end]);
        }
    }
}
