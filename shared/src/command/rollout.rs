//! `rollout status|history`: a workload's rollout, as `kubectl rollout` prints it.
//!
//! Targets are named as for `get` (`deploy/NAME`, `deploy NAME`, `deploy` for all of a type, or
//! a type with `-l`), following kubectl's `ResourceTypeOrNameArgs`.
//!
//! `rollout status` run once (`POST /debug/execute`) is a **snapshot**: one result per command,
//! so it has `kubectl rollout status --watch=false` semantics: the status line of each object as
//! it is now (`successfully rolled out`, or what the rollout is waiting for), exit code 0 either
//! way, and an error for a rollout that exceeded its progress deadline. `--watch=false` is
//! accepted; `-w/--watch` is refused with a message saying so. As a stream
//! ([`super::parse_stream`]) it watches by default, as kubectl does (`--watch=false` is still
//! the snapshot), and `--timeout` bounds the watch as in kubectl.
//!
//! `rollout history -o yaml|name` prints the revisions' objects as kubectl does; `-o json` is
//! refused for now (kubectl prints typed objects whose key order the agent cannot rebuild for
//! StatefulSet/DaemonSet revisions).

use super::flags::{self, FlagSpec};
use super::get::selector;
use super::logs::{go_duration_nanos, integer, refuse_streaming};
use super::{CommandError, GetOutput, Mode, Targets, get, namespace_value};

/// The flags `rollout status` accepts.
const STATUS_FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::value("revision", None),
    FlagSpec::switch("watch", Some('w')),
    FlagSpec::value("timeout", None),
];

/// The flags `rollout history` accepts.
const HISTORY_FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::value("revision", None),
    FlagSpec::value("output", Some('o')),
];

/// Which rollout subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// `rollout status`, as a snapshot (`--watch=false`).
    Status,
    /// `rollout history`.
    History,
}

/// A parsed `rollout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// `status` or `history`.
    pub action: RolloutAction,
    /// The objects, as for `get`.
    pub targets: Targets,
    /// `-n/--namespace`; `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-l/--selector`.
    pub selector: Option<String>,
    /// `--revision`: for `status`, the revision the rollout must be at; for `history`, the
    /// revision whose pod template is shown. `None` for 0 (the latest / the table).
    pub revision: Option<i64>,
    /// `history -o`: [`GetOutput::Table`] when not given (the `REVISION  CHANGE-CAUSE`
    /// table), else [`GetOutput::Yaml`] or [`GetOutput::Name`]: the revisions' objects, as
    /// kubectl prints them. Always `Table` for `status`.
    pub output: GetOutput,
    /// `status` in a stream: watch each object until its rollout is done (kubectl's default;
    /// `--watch=false` turns it off). Always false outside a stream and for `history`.
    pub watch: bool,
    /// `status --timeout` (a Go duration; 0, the default, waits for ever): how long a watch
    /// waits before it ends with kubectl's `timed out waiting for the condition`.
    pub timeout_ms: Option<u64>,
}

/// Parses the arguments of `rollout`.
pub(crate) fn parse(args: &[String], mode: Mode) -> Result<Rollout, CommandError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(CommandError::new(
            "missing_argument",
            None,
            "`rollout` needs a subcommand: `rollout status` or `rollout history`".to_string(),
        ));
    };
    let (action, specs, command) = match sub.as_str() {
        "status" => (RolloutAction::Status, STATUS_FLAGS, "rollout status"),
        "history" => (RolloutAction::History, HISTORY_FLAGS, "rollout history"),
        "undo" | "restart" | "pause" | "resume" => {
            return Err(CommandError::new(
                "forbidden_command",
                Some(sub.clone()),
                format!(
                    "`rollout {sub}` changes the cluster and is forbidden: kubeline is read-only; \
                     supported: `rollout status`, `rollout history`"
                ),
            ));
        }
        other => {
            return Err(CommandError::new(
                "invalid_argument",
                Some(other.to_string()),
                format!(
                    "unknown rollout subcommand {other:?}; supported: `rollout status`, \
                     `rollout history`"
                ),
            ));
        }
    };
    let scanned = flags::scan(command, rest, specs)?;
    let watch = match (action, mode) {
        (RolloutAction::History, _) => false,
        // kubectl's `--watch` defaults to true.
        (RolloutAction::Status, Mode::Stream) => {
            scanned.last("watch").is_none() || scanned.switch("watch")?
        }
        (RolloutAction::Status, Mode::Once) => {
            if scanned.switch("watch")? {
                return Err(refuse_streaming(
                    scanned.last("watch").map(|f| f.raw.clone()),
                    command,
                ));
            }
            false
        }
    };
    let timeout_ms = match scanned.last("timeout") {
        None => None,
        Some(f) => match go_duration_nanos(&f.value) {
            Some(n) if n > 0 => Some(u64::try_from(n / 1_000_000).unwrap_or(u64::MAX).max(1)),
            Some(_) => None,
            None => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!(
                        "invalid `--timeout` {:?}: use a duration such as 30s, 5m or 1h",
                        f.value
                    ),
                ));
            }
        },
    };
    if scanned.positionals.is_empty() {
        return Err(CommandError::new(
            "missing_argument",
            None,
            "required resource not specified".to_string(),
        ));
    }
    let mut as_get = vec!["--".to_string()];
    as_get.extend(scanned.positionals.iter().cloned());
    let targets = get::parse(&as_get, Mode::Once)?.targets;
    let selector = selector(&scanned, "selector")?;
    if selector.is_some() && !matches!(targets, Targets::Types(_)) {
        return Err(CommandError::new(
            "invalid_argument",
            scanned.positionals.get(1).cloned(),
            "selectors cannot be used with names; name the type only, e.g. `deploy -l app=x`"
                .to_string(),
        ));
    }
    let revision = match scanned.last("revision") {
        None => None,
        Some(f) => match integer(&f.value, &f.raw, "--revision")? {
            n if n < 0 => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!("revision must be a positive integer: {n}"),
                ));
            }
            0 => None,
            n => Some(n),
        },
    };
    let output = get::output_among(
        &scanned,
        "rollout history",
        &[(GetOutput::Yaml, "yaml"), (GetOutput::Name, "name")],
    )?;
    Ok(Rollout {
        action,
        targets,
        namespace: scanned.last("namespace").map(namespace_value).transpose()?,
        selector,
        revision,
        output,
        watch,
        timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::super::ResourceName;
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn parse_once(args: &[String]) -> Result<Rollout, CommandError> {
        parse(args, Mode::Once)
    }

    #[test]
    fn accepted() {
        let r = parse_once(&args(
            "status deploy/credit-api -n credit-service --watch=false",
        ))
        .unwrap();
        assert_eq!(r.action, RolloutAction::Status);
        assert_eq!(
            r.targets,
            Targets::Pairs(vec![ResourceName {
                resource: "deploy".into(),
                name: "credit-api".into()
            }])
        );
        let r = parse_once(&args("history sts credit-cache --revision=1")).unwrap();
        assert_eq!(r.action, RolloutAction::History);
        assert_eq!(r.revision, Some(1));
        assert!(matches!(r.targets, Targets::Names { .. }));
        let r = parse_once(&args("history deploy/x -o yaml")).unwrap();
        assert_eq!(r.output, GetOutput::Yaml);
        let r = parse_once(&args("history deploy/x -oname --revision 2")).unwrap();
        assert_eq!((r.output, r.revision), (GetOutput::Name, Some(2)));
        let r = parse_once(&args("status deploy -l app=x --timeout=5s")).unwrap();
        assert_eq!(r.selector.as_deref(), Some("app=x"));
    }

    #[test]
    fn refused() {
        for s in [
            "status deploy/x -w",
            "status deploy/x --watch",
            "status deploy/x --watch=true",
        ] {
            let e = parse_once(&args(s)).unwrap_err();
            assert_eq!(e.code, "unknown_flag", "{s}");
            assert!(e.message.contains("watching is not supported"), "{s}");
        }
        assert_eq!(
            parse_once(&args("undo deploy/x")).unwrap_err().code,
            "forbidden_command"
        );
        assert_eq!(
            parse_once(&args("restart deploy/x")).unwrap_err().code,
            "forbidden_command"
        );
        assert_eq!(parse_once(&args("")).unwrap_err().code, "missing_argument");
        assert_eq!(
            parse_once(&args("status")).unwrap_err().message,
            "required resource not specified"
        );
        assert_eq!(
            parse_once(&args("history deploy/x --revision=-1"))
                .unwrap_err()
                .message,
            "revision must be a positive integer: -1"
        );
        assert_eq!(
            parse_once(&args("history deploy/x -w")).unwrap_err().code,
            "unknown_flag"
        );
        for s in [
            "history deploy/x -o wide",
            "history deploy/x -o=",
            "history deploy/x -o json",
            "status deploy/x -o yaml",
        ] {
            assert!(parse_once(&args(s)).is_err(), "{s}");
        }
        assert_eq!(
            parse_once(&args("status deploy/x -f a.yaml"))
                .unwrap_err()
                .code,
            "forbidden_flag"
        );
    }
}
