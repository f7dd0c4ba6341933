//! `explain`: field documentation from the server's OpenAPI v3 documents, printed with
//! kubectl's `plaintext` template (kubectl `pkg/explain/v2`).
//!
//! `-R/--recursive` means "print nested fields" here, not "read a directory" as it does for
//! commands that take files, so `explain` takes it out of the arguments before the shared
//! scanner (whose policy forbids `--recursive` everywhere else) sees them.

use super::CommandError;
use super::flags::{self, FlagSpec};

const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("api-version", None),
    FlagSpec::value("output", Some('o')),
];

/// A parsed `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {
    /// The resource and field path as written: `pods`, `pods.spec.containers`,
    /// `deployments.apps.spec`.
    pub target: String,
    /// `--api-version=GROUP/VERSION` (or `v1`).
    pub api_version: Option<String>,
    /// `-R/--recursive`: print every nested field, one line each.
    pub recursive: bool,
}

/// Parses the arguments of `explain`.
pub(crate) fn parse(args: &[String]) -> Result<Explain, CommandError> {
    let (args, recursive) = take_recursive(args)?;
    let mut scanned = flags::scan("explain", &args, FLAGS)?;
    if let Some(f) = scanned.last("output") {
        match f.value.as_str() {
            "" | "plaintext" => {}
            other => {
                return Err(CommandError::new(
                    "unsupported_output",
                    Some(f.raw.clone()),
                    format!(
                        "unsupported output format {other:?} for `explain`; supported: plaintext"
                    ),
                ));
            }
        }
    }
    let api_version = match scanned.last("api-version") {
        None => None,
        Some(f) if f.value.is_empty() => None,
        Some(f) if group_version(&f.value) => Some(f.value.clone()),
        Some(f) => {
            return Err(CommandError::new(
                "invalid_argument",
                Some(f.raw.clone()),
                format!(
                    "invalid API version {:?}: use GROUP/VERSION (e.g. `apps/v1`) or `v1`",
                    f.value
                ),
            ));
        }
    };
    if scanned.positionals.is_empty() {
        return Err(CommandError::usage(
            None,
            "error: You must specify the type of resource to explain. Use \"kubectl \
             api-resources\" for a complete list of supported resources.\n",
        ));
    }
    let target = scanned.positionals.remove(0);
    if let Some(extra) = scanned.positionals.first() {
        return Err(CommandError::usage(
            Some(extra.clone()),
            "error: We accept only this format: explain RESOURCE\n",
        ));
    }
    if !field_path(&target) {
        return Err(CommandError::new(
            "invalid_argument",
            Some(target.clone()),
            format!(
                "invalid resource {target:?}: use a resource and optional field path, e.g. \
                 `pods.spec.containers`"
            ),
        ));
    }
    Ok(Explain {
        target,
        api_version,
        recursive,
    })
}

/// Removes `-R`, `--recursive` and `--recursive=BOOL` from the flags (not from values, and not
/// after `--`), returning the rest and the switch's final state.
fn take_recursive(args: &[String]) -> Result<(Vec<String>, bool), CommandError> {
    let mut rest = Vec::with_capacity(args.len());
    let mut recursive = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "--" => {
                rest.push(arg.clone());
                rest.extend(args[i..].iter().cloned());
                break;
            }
            "-R" | "--recursive" => recursive = true,
            // Flags whose value is the next argument: keep the value with its flag.
            "--api-version" | "--output" | "-o" => {
                rest.push(arg.clone());
                if let Some(v) = args.get(i) {
                    rest.push(v.clone());
                    i += 1;
                }
            }
            a => match a
                .strip_prefix("--recursive=")
                .or_else(|| a.strip_prefix("-R="))
            {
                Some(v) => {
                    recursive = match v {
                        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                        _ => {
                            return Err(CommandError::new(
                                "invalid_argument",
                                Some(a.to_string()),
                                format!("invalid value {v:?} for `--recursive`"),
                            ));
                        }
                    }
                }
                None => rest.push(arg.clone()),
            },
        }
    }
    Ok((rest, recursive))
}

/// `resource[.field...]`: names made of letters, digits, `-` and `_`, joined by dots.
fn field_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `v1`, `apps/v1`, `testbed.kubeline.dev/v1`.
fn group_version(s: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 253
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && w.starts_with(|c: char| c.is_ascii_alphanumeric())
            && w.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !w.contains("..")
    };
    match s.split_once('/') {
        Some((g, v)) => word(g) && word(v) && !v.contains('.'),
        None => word(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn accepted() {
        assert_eq!(
            parse(&args("pods.spec.containers")),
            Ok(Explain {
                target: "pods.spec.containers".into(),
                api_version: None,
                recursive: false
            })
        );
        let e = parse(&args(
            "--recursive deploy --api-version apps/v1 -o plaintext",
        ))
        .unwrap();
        assert!(e.recursive);
        assert_eq!(e.target, "deploy");
        assert_eq!(e.api_version.as_deref(), Some("apps/v1"));
        assert!(parse(&args("-R pods")).unwrap().recursive);
        assert!(!parse(&args("pods -R --recursive=false")).unwrap().recursive);
    }

    #[test]
    fn refused() {
        for (input, code) in [
            ("", "usage_error"),
            ("pods svc", "usage_error"),
            ("pods[0]", "invalid_argument"),
            ("pods -o plaintext-openapiv2", "unsupported_output"),
            ("pods --api-version=../x", "invalid_argument"),
            ("pods -f x", "forbidden_flag"),
            ("pods --recursive=maybe", "invalid_argument"),
        ] {
            assert_eq!(parse(&args(input)).unwrap_err().code, code, "{input}");
        }
    }
}
