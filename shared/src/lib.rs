//! Types that cross a process boundary in kubeline.
//!
//! Everything that is serialized lives here: the REST API bodies ([`api`]), the messages of the
//! agent link ([`protocol`]), and the typed command model with its policy ([`command`]). The broker
//! and the agent both depend on this crate, so one parser decides what a command means on both
//! sides of the link.
//!
//! **Invariant:** this crate depends on nothing async and performs no I/O.
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod command;
pub mod jsonpath;
pub mod labels;
pub mod limits;
pub mod protocol;
pub mod trace;
pub mod webhooks;

/// The kubeline release this build belongs to, reported by `/health` and in the agent hello.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
