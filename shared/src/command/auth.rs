//! `auth can-i`: what the agent's identity may do.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `auth can-i`: what the agent's identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {}

/// Parses the arguments of `auth`.
pub(crate) fn parse(_args: &[String]) -> Result<Auth, CommandError> {
    Err(super::not_yet("auth"))
}
