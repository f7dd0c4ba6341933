//! `logs`: container logs of a pod or of a workload's pods.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `logs`: container logs of a pod or of a workload's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {}

/// Parses the arguments of `logs`.
pub(crate) fn parse(_args: &[String]) -> Result<Logs, CommandError> {
    Err(super::not_yet("logs"))
}
