//! kubeline's integration tests, in one test binary: the broker, the agent and their
//! dependencies are linked once for all of them (one binary per file linked them 25 times).
//! One module per suite; run one with a filter, e.g. `cargo test --test it streams::` or
//! `cargo test --test it commands::describe`.
//!
//! They talk to real processes, started through the harness in [`support`]: the `kubeline`
//! binary as broker and agent ([`support::Stack`]), private `redis-server`s and Redis Clusters,
//! and the test bed's API server ([`support::bed::Bed`]). Run them through `scripts/test`,
//! which brings the bed up; by hand: `scripts/testbed up && eval "$(scripts/testbed env)"`.
//!
//! All tests share one process: a test that measures the process's own memory runs itself in
//! a process of its own ([`support::alone`]); tests that need the machine's quiet or a shared
//! file take a lock ([`support::heavy`], [`support::bed::Bed::container_log`]); ports are never
//! handed out twice ([`support::free_port`]).

mod support;

// The slowest suite (schemathesis, minutes): libtest starts tests in name order, so its module
// name puts it first and the rest run beside it rather than after it.
mod api_fuzz;
mod audit;
mod charts;
mod cli;
mod clients;
mod commands;
mod docs;
mod e2e;
mod fleet;
mod hostile;
mod observability;
mod redis_cluster;
mod store;
mod streams;
mod streams_agent;
mod testbed;
mod tls;
mod trust;
mod webhooks;
