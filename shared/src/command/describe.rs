//! `describe`: a detailed, human description of objects with their events.
//!
//! The arguments follow kubectl's `describe (TYPE [NAME_PREFIX | -l label] | TYPE/NAME)`: the
//! positionals mean what they mean for `get` (the same `ResourceTypeOrNameArgs` rules), and a
//! single `TYPE NAME` that matches nothing is retried as a name prefix by the agent, as kubectl
//! does. Flags: `-n`, `-A`, `-l`, `--show-events` and `--chunk-size`; `-f/--filename` and the
//! other file flags are forbidden as for every command.

use super::flags::{self, FlagSpec};
use super::get::{DEFAULT_CHUNK_SIZE, Targets, number, selector, targets};
use super::{CommandError, namespace_value};

/// The flags `describe` accepts.
const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::switch("all-namespaces", Some('A')),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::switch("show-events", None),
    FlagSpec::value("chunk-size", None),
];

/// A parsed `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// What to describe; resource types are resolved by the agent.
    pub targets: Targets,
    /// The positional arguments as written (kubectl's builder arguments). kubectl retries a
    /// `TYPE NAME` pair that was not found as a name prefix only when there are exactly two.
    pub args: Vec<String>,
    /// `-n/--namespace`; `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-A/--all-namespaces`.
    pub all_namespaces: bool,
    /// `-l/--selector`, trimmed; `None` when absent or blank.
    pub label_selector: Option<String>,
    /// `--show-events` when given explicitly. kubectl shows events for a single object and hides
    /// them for several objects or a prefix match, unless the flag was set.
    pub show_events: Option<bool>,
    /// `--chunk-size`: page size of list requests; 0 fetches everything in one request.
    pub chunk_size: u32,
}

/// Parses the arguments of `describe`.
pub(crate) fn parse(args: &[String]) -> Result<Describe, CommandError> {
    let scanned = flags::scan("describe", args, FLAGS)?;
    let namespace = scanned.last("namespace").map(namespace_value).transpose()?;
    let label_selector = selector(&scanned, "selector")?;
    let show_events = match scanned.last("show-events") {
        None => None,
        Some(_) => Some(scanned.switch("show-events")?),
    };
    let chunk_size = match scanned.last("chunk-size") {
        None => DEFAULT_CHUNK_SIZE,
        Some(f) => number(&f.value, &f.raw, "--chunk-size")?,
    };
    if scanned.positionals.is_empty() {
        return Err(CommandError::usage(
            None,
            "error: You must specify the type of resource to describe. Use \"kubectl \
             api-resources\" for a complete list of supported resources.\n",
        ));
    }
    let targets = targets(&scanned.positionals)?;
    if label_selector.is_some() {
        match &targets {
            Targets::Types(_) => {}
            Targets::Names { .. } => {
                return Err(CommandError::new(
                    "invalid_argument",
                    scanned.positionals.get(1).cloned(),
                    "name cannot be provided when a selector is specified".to_string(),
                ));
            }
            Targets::Pairs(_) => {
                return Err(CommandError::new(
                    "invalid_argument",
                    scanned.positionals.first().cloned(),
                    "selectors cannot be used when passing resource/name arguments".to_string(),
                ));
            }
        }
    }
    let all_namespaces = scanned.switch("all-namespaces")?;
    Ok(Describe {
        targets,
        args: scanned.positionals,
        namespace,
        all_namespaces,
        label_selector,
        show_events,
        chunk_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ResourceName;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn types_names_and_pairs() {
        let d = parse(&args("pods -n credit-service")).unwrap();
        assert_eq!(d.targets, Targets::Types(vec!["pods".into()]));
        assert_eq!(d.namespace.as_deref(), Some("credit-service"));
        assert_eq!(d.show_events, None);
        assert_eq!(d.chunk_size, DEFAULT_CHUNK_SIZE);
        let d = parse(&args("pod credit-api -A")).unwrap();
        assert_eq!(
            d.targets,
            Targets::Names {
                resource: "pod".into(),
                names: vec!["credit-api".into()]
            }
        );
        assert_eq!(d.args, ["pod", "credit-api"]);
        assert!(d.all_namespaces);
        let d = parse(&args("deploy/a svc/b --show-events=false --chunk-size 7")).unwrap();
        assert_eq!(
            d.targets,
            Targets::Pairs(vec![
                ResourceName {
                    resource: "deploy".into(),
                    name: "a".into()
                },
                ResourceName {
                    resource: "svc".into(),
                    name: "b".into()
                }
            ])
        );
        assert_eq!(d.show_events, Some(false));
        assert_eq!(d.chunk_size, 7);
        assert_eq!(
            parse(&args("po -l app=x --show-events"))
                .unwrap()
                .label_selector
                .as_deref(),
            Some("app=x")
        );
    }

    #[test]
    fn refusals() {
        let code = |s: &str| parse(&args(s)).unwrap_err().code;
        assert_eq!(code(""), "usage_error");
        assert_eq!(code("-f pod.yaml"), "forbidden_flag");
        assert_eq!(code("pods --as admin"), "forbidden_flag");
        assert_eq!(code("pods -o yaml"), "unknown_flag");
        assert_eq!(code("pods --kubeconfig x"), "forbidden_flag");
        assert_eq!(code("pod a -l app=x"), "invalid_argument");
        assert_eq!(code("pod/a -l app=x"), "invalid_argument");
        assert_eq!(code("pods --show-events=maybe"), "invalid_argument");
        assert_eq!(code("pods --chunk-size -1"), "invalid_argument");
        assert_eq!(code("pods --chunk-size"), "missing_flag_value");
        assert_eq!(code("pods --chunk-size x"), "invalid_argument");
        assert_eq!(code("pod a/../b"), "usage_error");
        assert_eq!(code("pods -n ../kube-system"), "invalid_argument");
    }
}
