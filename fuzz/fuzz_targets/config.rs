//! `cargo +nightly fuzz run config`: the configuration reader on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| exist_agent_fuzz::config(data));
