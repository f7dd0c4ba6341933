//! `rollout status|history`: a workload's rollout.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `rollout status|history`: a workload's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {}

/// Parses the arguments of `rollout`.
pub(crate) fn parse(_args: &[String]) -> Result<Rollout, CommandError> {
    Err(super::not_yet("rollout"))
}
