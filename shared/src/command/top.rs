//! `top nodes|pods`: resource usage from the `metrics.k8s.io` API, as `kubectl top` prints it.
//!
//! `top node [NAME]` (aliases `nodes`, `no`) and `top pod [NAME]` (aliases `pods`, `po`) with
//! kubectl's flags for each (`pkg/cmd/top`). kubectl's checks that need no server (`--sort-by`
//! values, a name together with a selector) are made here.

use super::flags::{self, FlagSpec};
use super::get::selector;
use super::logs::object_ref;
use super::{CommandError, namespace_value};

/// The flags `top node` accepts. `-n` is a global kubectl flag that `top node` ignores.
const NODE_FLAGS: &[FlagSpec] = &[
    FlagSpec::value("selector", Some('l')),
    FlagSpec::value("sort-by", None),
    FlagSpec::switch("no-headers", None),
    FlagSpec::switch("show-capacity", None),
    FlagSpec::switch("use-protocol-buffers", None),
    FlagSpec::value("namespace", Some('n')),
];

/// The flags `top pod` accepts.
const POD_FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::switch("all-namespaces", Some('A')),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::value("field-selector", None),
    FlagSpec::value("sort-by", None),
    FlagSpec::switch("containers", None),
    FlagSpec::switch("no-headers", None),
    FlagSpec::switch("sum", None),
    FlagSpec::switch("use-protocol-buffers", None),
];

/// What `top` reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopKind {
    /// `top node`: node usage against allocatable (or capacity).
    Nodes,
    /// `top pod`: pod (or container) usage.
    Pods,
}

/// `--sort-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopSort {
    /// Highest CPU first.
    Cpu,
    /// Highest memory first.
    Memory,
}

/// A parsed `top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// Nodes or pods.
    pub kind: TopKind,
    /// One node or pod by name.
    pub name: Option<String>,
    /// `-n/--namespace` (pods); `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-A/--all-namespaces` (pods).
    pub all_namespaces: bool,
    /// `-l/--selector`.
    pub selector: Option<String>,
    /// `--field-selector` (pods).
    pub field_selector: Option<String>,
    /// `--sort-by`; by name (namespace first with `-A`) when `None`.
    pub sort_by: Option<TopSort>,
    /// `--containers` (pods): one line per container.
    pub containers: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--sum` (pods): a total line.
    pub sum: bool,
    /// `--show-capacity` (nodes): percentages of capacity instead of allocatable.
    pub show_capacity: bool,
}

/// Parses the arguments of `top`.
pub(crate) fn parse(args: &[String]) -> Result<Top, CommandError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(CommandError::new(
            "missing_argument",
            None,
            "`top` needs a resource: `top nodes` or `top pods`".to_string(),
        ));
    };
    let (kind, specs, command) = match sub.as_str() {
        "node" | "nodes" | "no" => (TopKind::Nodes, NODE_FLAGS, "top node"),
        "pod" | "pods" | "po" => (TopKind::Pods, POD_FLAGS, "top pod"),
        other => {
            return Err(CommandError::new(
                "invalid_argument",
                Some(other.to_string()),
                format!(
                    "`top` reports on nodes or pods: use `top nodes` or `top pods`, not {other:?}"
                ),
            ));
        }
    };
    let scanned = flags::scan(command, rest, specs)?;
    let name = match scanned.positionals.as_slice() {
        [] => None,
        [name] => Some(object_ref(name, "pods")?.name).filter(|_| !name.contains('/')),
        [_, extra, ..] => {
            return Err(CommandError::new(
                "unexpected_argument",
                Some(extra.clone()),
                format!("`{command}` takes at most one name"),
            ));
        }
    };
    if let [p] = scanned.positionals.as_slice()
        && p.contains('/')
    {
        return Err(CommandError::new(
            "invalid_argument",
            Some(p.clone()),
            format!("`{command}` takes a plain name, not TYPE/NAME"),
        ));
    }
    let sort_by = match scanned.last("sort-by") {
        None => None,
        Some(f) => match f.value.as_str() {
            "" => None,
            "cpu" => Some(TopSort::Cpu),
            "memory" => Some(TopSort::Memory),
            _ => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "--sort-by accepts only cpu or memory".to_string(),
                ));
            }
        },
    };
    let label_selector = selector(&scanned, "selector")?;
    let field_selector = selector(&scanned, "field-selector")?;
    if name.is_some() && (label_selector.is_some() || field_selector.is_some()) {
        return Err(CommandError::new(
            "invalid_argument",
            None,
            match kind {
                TopKind::Nodes => "only one of NAME or --selector can be provided",
                TopKind::Pods => "only one of NAME or selector can be provided",
            }
            .to_string(),
        ));
    }
    Ok(Top {
        kind,
        name,
        namespace: scanned.last("namespace").map(namespace_value).transpose()?,
        all_namespaces: scanned.switch("all-namespaces")?,
        selector: label_selector,
        field_selector,
        sort_by,
        containers: scanned.switch("containers")?,
        no_headers: scanned.switch("no-headers")?,
        sum: scanned.switch("sum")?,
        show_capacity: scanned.switch("show-capacity")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn accepted() {
        let t = parse(&args("nodes --sort-by=cpu --no-headers")).unwrap();
        assert_eq!(t.kind, TopKind::Nodes);
        assert_eq!(t.sort_by, Some(TopSort::Cpu));
        assert!(t.no_headers);
        let t = parse(&args("po credit-scorer -n credit-service --containers")).unwrap();
        assert_eq!(t.kind, TopKind::Pods);
        assert_eq!(t.name.as_deref(), Some("credit-scorer"));
        assert!(t.containers);
        let t = parse(&args("pods -A -l app=x --sum --sort-by memory")).unwrap();
        assert!(t.all_namespaces && t.sum);
        assert_eq!(t.selector.as_deref(), Some("app=x"));
    }

    #[test]
    fn refused() {
        assert_eq!(parse(&args("")).unwrap_err().code, "missing_argument");
        assert_eq!(
            parse(&args("deployments")).unwrap_err().code,
            "invalid_argument"
        );
        assert_eq!(
            parse(&args("pods --sort-by=name")).unwrap_err().message,
            "--sort-by accepts only cpu or memory"
        );
        assert_eq!(
            parse(&args("nodes a -l x=y")).unwrap_err().message,
            "only one of NAME or --selector can be provided"
        );
        assert_eq!(parse(&args("nodes -A")).unwrap_err().code, "unknown_flag");
        assert_eq!(
            parse(&args("nodes --containers")).unwrap_err().code,
            "unknown_flag"
        );
        assert_eq!(
            parse(&args("pods a b")).unwrap_err().code,
            "unexpected_argument"
        );
        assert_eq!(
            parse(&args("pods pod/a")).unwrap_err().code,
            "invalid_argument"
        );
        assert_eq!(
            parse(&args("pods ../x")).unwrap_err().code,
            "invalid_argument"
        );
    }
}
