//! Every integration test of the fakes, in one binary: each fake over real HTTP on loopback,
//! showing that its rules are the service's own (as documented), not the agent's.

mod exist;
mod health;
mod services;
