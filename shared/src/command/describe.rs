//! `describe`: a detailed, human description of objects with their events.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `describe`: a detailed, human description of objects with their events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {}

/// Parses the arguments of `describe`.
pub(crate) fn parse(_args: &[String]) -> Result<Describe, CommandError> {
    Err(super::not_yet("describe"))
}
