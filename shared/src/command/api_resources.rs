//! `api-resources`: the resource types the server serves.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `api-resources`: the resource types the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResources {}

/// Parses the arguments of `api-resources`.
pub(crate) fn parse(_args: &[String]) -> Result<ApiResources, CommandError> {
    Err(super::not_yet("api-resources"))
}
