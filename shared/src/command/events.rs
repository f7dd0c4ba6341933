//! `events`: events, as `kubectl events` lists them.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `events`: events, as `kubectl events` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {}

/// Parses the arguments of `events`.
pub(crate) fn parse(_args: &[String]) -> Result<Events, CommandError> {
    Err(super::not_yet("events"))
}
