//! Every integration test of the agent, in one binary (one link step): the real binary and the
//! library driven against the fakes of Exist and of the sources, over loopback.

mod common;

mod alerts;
mod config_errors;
mod daemon;
mod demo;
mod dialects;
mod examples;
mod exist_client;
mod faults;
mod fidelity;
mod first_day;
mod fuzz_smoke;
mod inbox;
mod init;
mod oauth_sources;
mod output;
mod package;
mod properties;
mod readme;
mod sources;
mod sync;
mod transforms;
mod unchanged;
