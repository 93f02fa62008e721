//! `exist-agent`: reads a person's data from sources, turns it into daily values in the person's
//! own timezone, and pushes them to [Exist](https://exist.io) the way Exist asks writers to behave.
//!
//! The crate is a library with a thin binary. Data flows one way: a source's records become day
//! values, which are reconciled with the ledger of what Exist acknowledged into the outbox, which
//! is sent to Exist in batches of at most 35. One module per concept:
//! - [`config`]: the TOML configuration, read once and checked whole into types;
//! - [`exist`]: Exist's types, API client, OAuth login and token cache;
//! - [`sources`]: HTTP, file and command sources;
//! - [`sync`]: the engine from records to daily values, the ledger and the outbox;
//! - [`store`]: the SQLite state database;
//! - [`schedule`]: when syncs happen (pure), and [`daemon`], the long-running agent;
//! - [`service`]: systemd user units and the launchd agent;
//! - [`notify`]: signed notifications that trigger a sync;
//! - [`sandbox`]: a strict local Exist-compatible server for tests and the demo.
//!
//! [`commands`] holds one file per command, dispatched from the command line ([`cli`]) with a
//! [`context::Context`]; [`error`] is the one error model, and decides exit codes.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod daemon;
pub mod error;
pub mod exist;
pub mod logging;
pub mod notify;
pub mod sandbox;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod sources;
pub mod store;
pub mod sync;
