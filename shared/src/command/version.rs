//! `version`: the API server's version.
//!
//! kubectl prints `Client Version:`, `Kustomize Version:` and `Server Version:` lines. A kubeline
//! client has no kubectl binary whose version would mean anything, so kubeline prints only what
//! the server side means: the `Server Version: vX.Y.Z` line, and for `-o json|yaml` an object with
//! only the `serverVersion` field (kubectl's `clientVersion` and `kustomizeVersion` are left out).
//! Apart from those omissions the output is byte for byte what kubectl prints.

use super::flags::{self, FlagSpec};
use super::{CommandError, no_positionals};

const FLAGS: &[FlagSpec] = &[FlagSpec::value("output", Some('o'))];

/// A parsed `version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    /// `-o/--output`.
    pub output: VersionOutput,
}

/// The `-o` formats of `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionOutput {
    /// `Server Version: vX.Y.Z`.
    #[default]
    Text,
    /// `-o json`: `{"serverVersion": {...}}`, indented by two spaces as kubectl does.
    Json,
    /// `-o yaml`: `serverVersion:` with the fields sorted, as kubectl prints it.
    Yaml,
}

pub(super) fn parse(args: &[String]) -> Result<Version, CommandError> {
    let scanned = flags::scan("version", args, FLAGS)?;
    no_positionals("version", &scanned.positionals)?;
    let output = match scanned.last("output") {
        None => VersionOutput::Text,
        Some(f) => match f.value.as_str() {
            "" => VersionOutput::Text,
            "json" => VersionOutput::Json,
            "yaml" => VersionOutput::Yaml,
            _ => {
                return Err(CommandError::usage(
                    Some(f.raw.clone()),
                    "error: --output must be 'yaml' or 'json'\n",
                ));
            }
        },
    };
    Ok(Version { output })
}
