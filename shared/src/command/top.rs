//! `top nodes|pods`: resource usage from `metrics.k8s.io`.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `top nodes|pods`: resource usage from `metrics.k8s.io`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {}

/// Parses the arguments of `top`.
pub(crate) fn parse(_args: &[String]) -> Result<Top, CommandError> {
    Err(super::not_yet("top"))
}
