//! `explain`: field documentation from the OpenAPI v3 documents.
//!
//! Not implemented yet: [`parse`] refuses it with `unsupported_command`.

use super::CommandError;

/// `explain`: field documentation from the OpenAPI v3 documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {}

/// Parses the arguments of `explain`.
pub(crate) fn parse(_args: &[String]) -> Result<Explain, CommandError> {
    Err(super::not_yet("explain"))
}
