//! One module per kubectl command, each behind [`Executor::run`](crate::exec::Executor::run)'s
//! match (and [`Executor::stream`](crate::exec::Executor::stream)'s for those that stream).
//!
//! A command reaches the API server only through [`crate::exec::api`] (requests, discovery,
//! the resource builder, watches) and prints through `kubeline_printers` or its own printer
//! (`describe`'s writers, `top`'s and `events`' tables). `rbac_rules` is kubectl's RBAC rule
//! breakdown, which `auth can-i --list` and `describe role` share.

pub(crate) mod api_resources;
pub(crate) mod api_versions;
pub(crate) mod auth;
pub(crate) mod cluster_info;
pub(crate) mod describe;
pub(crate) mod events;
pub(crate) mod explain;
pub(crate) mod get;
pub(crate) mod logs;
mod rbac_rules;
pub(crate) mod rollout;
pub(crate) mod top;
pub(crate) mod version;
