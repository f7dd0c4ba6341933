//! `auth can-i`: whether the agent's own identity may do something (kubectl
//! `pkg/cmd/auth/cani.go`).
//!
//! A check creates a `SelfSubjectAccessReview` and `--list` a `SelfSubjectRulesReview`: review
//! objects are how kubectl asks the API server, they are never stored and change nothing.
//! Impersonation (`--as`) stays forbidden, so the answer is always about the agent itself.

use super::flags::{self, FlagSpec};
use super::{CommandError, namespace_value};

const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::switch("all-namespaces", Some('A')),
    FlagSpec::switch("quiet", Some('q')),
    FlagSpec::value("subresource", None),
    FlagSpec::switch("list", None),
    FlagSpec::switch("no-headers", None),
];

/// `auth can-i`: what the agent's identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// What to ask.
    pub check: CanI,
    /// `-n/--namespace`; `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-A/--all-namespaces`: ask about every namespace.
    pub all_namespaces: bool,
    /// `-q/--quiet`: print nothing, only the exit code answers.
    pub quiet: bool,
    /// `--no-headers` (only with `--list`).
    pub no_headers: bool,
}

/// The question `auth can-i` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanI {
    /// `can-i VERB TYPE[/NAME] [--subresource=SUB]`.
    Resource {
        /// The verb: `get`, `list`, `create`, `*`, ...
        verb: String,
        /// The resource type as written (`pods`, `deployments.apps`, `*`); the agent resolves it.
        resource: String,
        /// The object name after `/`, if any.
        name: Option<String>,
        /// `--subresource`.
        subresource: Option<String>,
    },
    /// `can-i VERB /PATH`: a non-resource URL.
    NonResource {
        /// The verb.
        verb: String,
        /// The URL path, starting with `/`.
        path: String,
    },
    /// `can-i --list`: every rule that applies, as a table.
    List,
}

/// Parses the arguments of `auth`.
pub(crate) fn parse(args: &[String]) -> Result<Auth, CommandError> {
    let scanned = flags::scan("auth can-i", args, FLAGS)?;
    let mut positionals = scanned.positionals.iter();
    match positionals.next().map(String::as_str) {
        Some("can-i") => {}
        Some(other) => {
            return Err(CommandError::new(
                "unsupported_command",
                Some(other.to_string()),
                format!("`auth {other}` is not supported; supported: `auth can-i`"),
            ));
        }
        None => {
            return Err(CommandError::new(
                "missing_argument",
                None,
                "`auth` needs a subcommand; supported: `auth can-i VERB TYPE[/NAME]`".to_string(),
            ));
        }
    }
    let rest: Vec<&String> = positionals.collect();
    let list = scanned.switch("list")?;
    let quiet = scanned.switch("quiet")?;
    let all_namespaces = scanned.switch("all-namespaces")?;
    let no_headers = scanned.switch("no-headers")?;
    let subresource = match scanned.last("subresource") {
        None => None,
        Some(f) if f.value.is_empty() => None,
        Some(f) if word(&f.value) => Some(f.value.clone()),
        Some(f) => {
            return Err(invalid(
                &f.raw,
                format!("invalid subresource {:?}", f.value),
            ));
        }
    };
    let check = if list {
        if let Some(p) = rest.first() {
            return Err(invalid(
                p,
                "list option must be specified with no arguments".to_string(),
            ));
        }
        if quiet || all_namespaces || subresource.is_some() {
            return Err(CommandError::new(
                "invalid_argument",
                Some("--list".to_string()),
                "list option can't be specified with neither quiet, all-namespaces nor \
                 subresource options"
                    .to_string(),
            ));
        }
        CanI::List
    } else {
        if no_headers {
            return Err(CommandError::new(
                "invalid_argument",
                Some("--no-headers".to_string()),
                "--no-headers cannot be set without --list specified".to_string(),
            ));
        }
        let [verb, target] = rest.as_slice() else {
            return Err(CommandError::usage(
                rest.get(2).map(|s| s.to_string()),
                "error: you must specify two arguments: verb resource or verb \
                 resource/resourceName.\nSee 'kubectl auth can-i -h' for help and examples.\n",
            ));
        };
        if !word(verb) {
            return Err(invalid(verb, format!("invalid verb {verb:?}")));
        }
        if target.starts_with('/') {
            if subresource.is_some() {
                return Err(invalid(
                    target,
                    "--subresource can not be used with NonResourceURL".to_string(),
                ));
            }
            if target.len() > 1024 || target.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(invalid(target, format!("invalid URL path {target:?}")));
            }
            CanI::NonResource {
                verb: verb.to_string(),
                path: target.to_string(),
            }
        } else {
            let (resource, name) = match target.split_once('/') {
                Some((r, n)) => (r, Some(n)),
                None => (target.as_str(), None),
            };
            if !word(resource) {
                return Err(invalid(
                    target,
                    format!("invalid resource type {resource:?}"),
                ));
            }
            if let Some(n) = name
                && (n.is_empty()
                    || n.len() > 253
                    || n.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(invalid(target, format!("invalid object name {n:?}")));
            }
            CanI::Resource {
                verb: verb.to_string(),
                resource: resource.to_string(),
                name: name.map(str::to_string),
                subresource,
            }
        }
    };
    Ok(Auth {
        check,
        namespace: scanned.last("namespace").map(namespace_value).transpose()?,
        all_namespaces,
        quiet,
        no_headers,
    })
}

/// Verbs, resource types and subresources: letters, digits, `-`, `.`, `_` or `*`.
fn word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._*".contains(&b))
}

fn invalid(argument: &str, message: String) -> CommandError {
    CommandError::new("invalid_argument", Some(argument.to_string()), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn checks_parse() {
        let a = parse(&args(
            "can-i get pods/web -n credit-service --subresource log",
        ))
        .unwrap();
        assert_eq!(
            a.check,
            CanI::Resource {
                verb: "get".into(),
                resource: "pods".into(),
                name: Some("web".into()),
                subresource: Some("log".into()),
            }
        );
        assert_eq!(a.namespace.as_deref(), Some("credit-service"));
        let a = parse(&args("can-i get /healthz")).unwrap();
        assert_eq!(
            a.check,
            CanI::NonResource {
                verb: "get".into(),
                path: "/healthz".into()
            }
        );
        let a = parse(&args("can-i --list --no-headers")).unwrap();
        assert_eq!(a.check, CanI::List);
        assert!(a.no_headers);
        assert!(parse(&args("can-i * * -A -q")).unwrap().quiet);
    }

    #[test]
    fn refusals() {
        for (input, code) in [
            ("", "missing_argument"),
            ("whoami", "unsupported_command"),
            ("reconcile -f x", "forbidden_flag"),
            ("can-i get", "usage_error"),
            ("can-i get pods x", "usage_error"),
            ("can-i --list pods", "invalid_argument"),
            ("can-i --list -A", "invalid_argument"),
            ("can-i get pods --no-headers", "invalid_argument"),
            ("can-i get /x --subresource=log", "invalid_argument"),
            ("can-i get pods --as=admin", "forbidden_flag"),
            ("can-i get pods -n ../x", "invalid_argument"),
        ] {
            assert_eq!(parse(&args(input)).unwrap_err().code, code, "{input:?}");
        }
    }
}
