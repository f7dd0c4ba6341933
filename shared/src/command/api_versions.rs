//! `api-versions`: the group/versions the server serves.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `api-versions`: the group/versions the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions {}

/// Parses the arguments of `api-versions`.
pub(crate) fn parse(_args: &[String]) -> Result<ApiVersions, CommandError> {
    Err(super::not_yet("api-versions"))
}
