//! `cargo +nightly fuzz run records`: file sources (JSON Lines and CSV) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| exist_agent_fuzz::records(data));
