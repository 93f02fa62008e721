//! `exist-agent`: reads a person's data from sources, turns it into daily values in the person's
//! own timezone, and pushes them to [Exist](https://exist.io) the way Exist asks writers to behave.
//!
//! The crate is a library with a thin binary. One module per concept:
//! - [`config`]: the TOML configuration, checked whole before anything runs;
//! - [`exist`]: Exist's types, API client, OAuth login and token cache;
//! - [`sources`]: HTTP, file and command sources;
//! - [`sync`]: the engine from records to daily values, the ledger and the outbox;
//! - [`store`]: the SQLite state database;
//! - [`schedule`], [`daemon`]: when syncs happen, and the long-running agent;
//! - [`service`]: systemd user units and the launchd agent;
//! - [`notify`]: signed notifications that trigger a sync;
//! - [`status`], [`doctor`]: what the agent knows, and what is broken;
//! - [`sandbox`]: a strict local Exist-compatible server for tests and the demo;
//! - [`demo`]: `exist-agent demo`, the whole loop on built-in sample data.
//!
//! [`app`] dispatches the command line ([`cli`]) to them; [`error`] maps failures to exit codes.
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod exist;
pub mod logging;
pub mod notify;
pub mod sandbox;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod sources;
pub mod status;
pub mod store;
pub mod sync;
