//! The kubeline agent: runs in a cluster, dials out to the broker, and runs read-only commands
//! against the local API server with `kube`.
//!
//! **Invariant:** the agent only dials out; it never listens on a port for commands.

pub mod exec;
pub mod link;
