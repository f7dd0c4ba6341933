//! `api-versions`: the group/versions the server serves, one per line, sorted.

use super::flags::{self};
use super::{CommandError, no_positionals};

/// `api-versions`: the group/versions the server serves. It takes no flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiVersions {}

/// Parses the arguments of `api-versions`.
pub(crate) fn parse(args: &[String]) -> Result<ApiVersions, CommandError> {
    let scanned = flags::scan("api-versions", args, &[])?;
    no_positionals("api-versions", &scanned.positionals)?;
    Ok(ApiVersions {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_nothing() {
        assert_eq!(parse(&[]), Ok(ApiVersions {}));
        assert_eq!(
            parse(&["x".into()]).unwrap_err().code,
            "unexpected_argument"
        );
        assert_eq!(
            parse(&["-o".into(), "json".into()]).unwrap_err().code,
            "unknown_flag"
        );
    }
}
