//! `logs`: container logs of a pod or of a workload's pods, as `kubectl logs` prints them.
//!
//! The arguments follow kubectl (`pkg/cmd/logs`): `POD`, `TYPE/NAME` or `-l SELECTOR`, an optional
//! inline container (`logs POD CONTAINER`), and the `PodLogOptions` flags. Everything kubectl
//! checks before it talks to the server (`Complete` and `Validate`) is checked here, so a bad
//! combination is a 400 before anything is queued.
//!
//! `-f/--follow` is accepted only in a stream ([`super::parse_stream`], `GET /debug/stream`),
//! with kubectl's `--max-log-requests`; one execute returns one result, so there logs are a
//! snapshot and `--tail` and `--since` choose which part.
//!
//! The small helpers at the end are shared with `events`, `top` and `rollout`.

use super::flags::{self, FlagSpec};
use super::{CommandError, Mode, ResourceName, Targets, get, namespace_value};

/// The flags `logs` accepts.
const FLAGS: &[FlagSpec] = &[
    FlagSpec::value("namespace", Some('n')),
    FlagSpec::value("container", Some('c')),
    FlagSpec::switch("all-containers", None),
    FlagSpec::switch("all-pods", None),
    FlagSpec::switch("prefix", None),
    FlagSpec::switch("previous", Some('p')),
    FlagSpec::switch("timestamps", None),
    FlagSpec::value("tail", None),
    FlagSpec::value("since", None),
    FlagSpec::value("since-time", None),
    FlagSpec::value("limit-bytes", None),
    FlagSpec::value("selector", Some('l')),
    FlagSpec::switch("ignore-errors", None),
    FlagSpec::value("max-log-requests", None),
];

/// `--follow` outside a stream: accepted so that `--follow=false` works as in kubectl;
/// `--follow` itself is refused (`-f` stays the forbidden `--filename` for the scanner).
const FOLLOW_ONCE: FlagSpec = FlagSpec::switch("follow", None);
/// `-f/--follow` in a stream.
const FOLLOW_STREAM: FlagSpec = FlagSpec::switch("follow", Some('f'));

/// kubectl's default `--max-log-requests`: how many logs `logs -f` follows at once.
pub const DEFAULT_MAX_LOG_REQUESTS: i64 = 5;

/// How many lines kubectl shows per container when pods are chosen with a selector and no
/// `--tail` is given.
pub(crate) const SELECTOR_TAIL: i64 = 10;

/// A parsed `logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    /// `POD` or `TYPE/NAME`; `None` when pods are chosen with `-l`. A bare name means a pod
    /// (`resource` is `pods`).
    pub target: Option<ResourceName>,
    /// `-l/--selector`, trimmed.
    pub selector: Option<String>,
    /// `-n/--namespace`; `None` means the agent's default namespace.
    pub namespace: Option<String>,
    /// `-c/--container` or the inline `CONTAINER` argument.
    pub container: Option<String>,
    /// `--all-containers`: every init, regular and ephemeral container of the pod(s).
    pub all_containers: bool,
    /// `--all-pods`: every pod of a workload, not just the first (implies `prefix`).
    pub all_pods: bool,
    /// `--prefix` (or `--all-pods`): each line starts with `[pod/NAME/CONTAINER] `.
    pub prefix: bool,
    /// `-p/--previous`: the previous instance of the container.
    pub previous: bool,
    /// `--timestamps`: an RFC 3339 timestamp on each line.
    pub timestamps: bool,
    /// The `tailLines` sent to the server: `--tail`, or `SELECTOR_TAIL` with `-l` and no
    /// `--tail`; `None` for every line.
    pub tail_lines: Option<i64>,
    /// `--since`, rounded to whole seconds as kubectl does.
    pub since_seconds: Option<i64>,
    /// `--since-time`, as given (an RFC 3339 time).
    pub since_time: Option<String>,
    /// `--limit-bytes`.
    pub limit_bytes: Option<i64>,
    /// `--ignore-errors`: a failed log request is reported and the others still printed.
    pub ignore_errors: bool,
    /// `-f/--follow` (streams only): keep reading each log as the container writes it.
    pub follow: bool,
    /// `--max-log-requests` (default [`DEFAULT_MAX_LOG_REQUESTS`]): the most logs `--follow`
    /// reads at once; more is kubectl's error. Any whole number, as kubectl takes it.
    pub max_log_requests: i64,
}

/// Parses the arguments of `logs`.
pub(crate) fn parse(args: &[String], mode: Mode) -> Result<Logs, CommandError> {
    let scanned = match mode {
        Mode::Once => flags::scan("logs", args, &[FLAGS, &[FOLLOW_ONCE]].concat())
            .map_err(|e| follow_refusal(e, "logs"))?,
        Mode::Stream => flags::scan("logs", args, &[FLAGS, &[FOLLOW_STREAM]].concat())?,
    };
    let follow = scanned.switch("follow")?;
    if follow && mode == Mode::Once {
        return Err(refuse_streaming(
            scanned.last("follow").map(|f| f.raw.clone()),
            "logs",
        ));
    }
    let max_log_requests = match scanned.last("max-log-requests") {
        None => DEFAULT_MAX_LOG_REQUESTS,
        Some(f) => integer(&f.value, &f.raw, "--max-log-requests")?,
    };
    let namespace = scanned.last("namespace").map(namespace_value).transpose()?;
    let selector = get::selector(&scanned, "selector")?;
    let container_flag = match scanned.last("container") {
        Some(f) => Some(container_name(&f.value, &f.raw)?),
        None => None,
    };
    let positionals = &scanned.positionals;
    let (target, inline_container) = match positionals.len() {
        0 if selector.is_none() => return Err(usage(None)),
        0 => (None, None),
        1 if selector.is_some() => {
            return Err(CommandError::usage(
                Some(positionals[0].clone()),
                "error: only a selector (-l) or a POD name is allowed\nSee 'kubectl logs -h' for \
                 help and examples\n",
            ));
        }
        1 => (Some(object_ref(&positionals[0], "pods")?), None),
        2 => (
            Some(object_ref(&positionals[0], "pods")?),
            Some(container_name(&positionals[1], &positionals[1])?),
        ),
        _ => return Err(usage(positionals.get(2).cloned())),
    };
    if inline_container.is_some() && container_flag.is_some() {
        return Err(CommandError::new(
            "invalid_argument",
            scanned.last("container").map(|f| f.raw.clone()),
            "only one of -c or an inline [CONTAINER] arg is allowed".to_string(),
        ));
    }
    let container = inline_container.or(container_flag);

    let since_time = match scanned.last("since-time") {
        None => None,
        Some(f) => {
            if chrono::DateTime::parse_from_rfc3339(&f.value).is_err() {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!(
                        "invalid `--since-time` {:?}: use an RFC 3339 time such as \
                         2024-08-30T06:00:00Z",
                        f.value
                    ),
                ));
            }
            Some(f.value.clone())
        }
    };
    let since_seconds = match scanned.last("since") {
        None => None,
        Some(f) => {
            let Some(nanos) = go_duration_nanos(&f.value) else {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    format!(
                        "invalid `--since` {:?}: use a duration such as 5s, 2m or 3h",
                        f.value
                    ),
                ));
            };
            if nanos < 0 {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "--since must be greater than 0".to_string(),
                ));
            }
            // Go's `Duration.Round(time.Second)`: halves round away from zero.
            (nanos != 0).then_some(((nanos + 500_000_000) / 1_000_000_000) as i64)
        }
    };
    if since_time.is_some() && since_seconds.is_some() {
        return Err(CommandError::new(
            "invalid_argument",
            None,
            "at most one of `sinceTime` or `sinceSeconds` may be specified".to_string(),
        ));
    }
    let all_containers = scanned.switch("all-containers")?;
    if all_containers && let Some(c) = &container {
        return Err(CommandError::new(
            "invalid_argument",
            None,
            format!("--all-containers=true should not be specified with container name {c}"),
        ));
    }
    let tail = match scanned.last("tail") {
        None => None,
        Some(f) => {
            let n = integer(&f.value, &f.raw, "--tail")?;
            if n < -1 {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "--tail must be greater than or equal to -1".to_string(),
                ));
            }
            Some(n)
        }
    };
    let tail_lines = match tail {
        None if selector.is_some() => Some(SELECTOR_TAIL),
        None | Some(-1) => None,
        Some(n) => Some(n),
    };
    let limit_bytes = match scanned.last("limit-bytes") {
        None => None,
        Some(f) => match integer(&f.value, &f.raw, "--limit-bytes")? {
            n if n < 0 => {
                return Err(CommandError::new(
                    "invalid_argument",
                    Some(f.raw.clone()),
                    "--limit-bytes must be greater than 0".to_string(),
                ));
            }
            0 => None,
            n => Some(n),
        },
    };
    let all_pods = scanned.switch("all-pods")?;
    Ok(Logs {
        target,
        selector,
        namespace,
        container,
        all_containers,
        all_pods,
        prefix: all_pods || scanned.switch("prefix")?,
        previous: scanned.switch("previous")?,
        timestamps: scanned.switch("timestamps")?,
        tail_lines,
        since_seconds,
        since_time,
        limit_bytes,
        ignore_errors: scanned.switch("ignore-errors")?,
        follow,
        max_log_requests,
    })
}

fn usage(argument: Option<String>) -> CommandError {
    CommandError::usage(
        argument,
        "error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\nPOD or TYPE/NAME is a \
         required argument for the logs command\nSee 'kubectl logs -h' for help and examples\n",
    )
}

/// A container name ends up in a query string; it is a DNS label in every real pod.
fn container_name(value: &str, raw: &str) -> Result<String, CommandError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(CommandError::new(
            "invalid_argument",
            Some(raw.to_string()),
            format!("invalid container name {value:?}"),
        ))
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `300ms`, `1.5h`, `2h45m`, `-1s`, `0`.
pub(super) fn go_duration_nanos(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if total > 9.2e18 {
        return None;
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

// === helpers shared by logs, events, top and rollout ===

/// An object named as `NAME` (of `default_type`) or `TYPE/NAME`, with the same validation as
/// `get` (names end up in URL paths on the agent).
pub(super) fn object_ref(arg: &str, default_type: &str) -> Result<ResourceName, CommandError> {
    let args: Vec<String> = if arg.contains('/') {
        vec!["--".into(), arg.into()]
    } else {
        vec!["--".into(), default_type.into(), arg.into()]
    };
    match get::parse(&args, Mode::Once)?.targets {
        Targets::Pairs(mut pairs) if pairs.len() == 1 => Ok(pairs.remove(0)),
        Targets::Names {
            resource,
            mut names,
        } if names.len() == 1 => Ok(ResourceName {
            resource,
            name: names.remove(0),
        }),
        _ => Err(CommandError::new(
            "invalid_argument",
            Some(arg.to_string()),
            format!("invalid object {arg:?}"),
        )),
    }
}

/// A whole number, as Go's `strconv.ParseInt` reads a flag.
pub(super) fn integer(value: &str, raw: &str, flag: &str) -> Result<i64, CommandError> {
    value.parse::<i64>().map_err(|_| {
        CommandError::new(
            "invalid_argument",
            Some(raw.to_string()),
            format!("`{flag}` needs a whole number, got {value:?}"),
        )
    })
}

/// The refusal of `--follow` / `--watch` outside a stream: one execute returns one result.
pub(super) fn refuse_streaming(argument: Option<String>, command: &str) -> CommandError {
    let shown = argument.clone().unwrap_or_default();
    let what = if command == "logs" {
        "following logs is not supported by one execute, which returns one result; use --tail \
         or --since to choose the lines, or follow them as a stream with `GET /debug/stream`"
    } else {
        "watching is not supported by one execute, which returns one result (a snapshot); \
         watch as a stream with `GET /debug/stream`"
    };
    CommandError::new(
        "unknown_flag",
        argument,
        format!("flag `{shown}` is not supported for `{command}`: {what}"),
    )
}

/// `-f` is `--filename` (forbidden) for the scanner, but for `logs` it means `--follow`:
/// say so instead of talking about files.
fn follow_refusal(e: CommandError, command: &str) -> CommandError {
    match e.argument.as_deref() {
        Some("-f") => refuse_streaming(Some("-f".into()), command),
        Some(a) if a == "--follow" || a.starts_with("--follow=") => {
            refuse_streaming(e.argument, command)
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn ok(s: &str) -> Logs {
        parse(&args(s), Mode::Once).unwrap_or_else(|e| panic!("logs {s}: {e:?}"))
    }

    fn err(s: &str) -> CommandError {
        match parse(&args(s), Mode::Once) {
            Ok(l) => panic!("logs {s} was accepted: {l:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn targets_and_containers() {
        let l = ok("credit-scorer -n credit-service");
        assert_eq!(
            l.target,
            Some(ResourceName {
                resource: "pods".into(),
                name: "credit-scorer".into()
            })
        );
        assert_eq!(l.namespace.as_deref(), Some("credit-service"));
        assert_eq!(l.tail_lines, None);
        let l = ok("deploy/credit-api -c api --tail=3 --timestamps -p");
        assert_eq!(
            l.target.as_ref().map(|t| t.resource.as_str()),
            Some("deploy")
        );
        assert_eq!(l.container.as_deref(), Some("api"));
        assert_eq!(l.tail_lines, Some(3));
        assert!(l.timestamps && l.previous);
        assert_eq!(ok("pod/x scorer").container.as_deref(), Some("scorer"));
        let l = ok("-l app=credit-api");
        assert_eq!(l.target, None);
        assert_eq!(l.tail_lines, Some(SELECTOR_TAIL));
        assert_eq!(ok("-l app=x --tail=-1").tail_lines, None);
        assert_eq!(ok("-l app=x --tail=2").tail_lines, Some(2));
        let l = ok("deploy/x --all-pods");
        assert!(l.all_pods && l.prefix);
        assert!(!ok("x --follow=false").all_pods);
    }

    #[test]
    fn since() {
        assert_eq!(ok("x --since=1h").since_seconds, Some(3600));
        assert_eq!(ok("x --since=90m").since_seconds, Some(5400));
        assert_eq!(ok("x --since=1.5s").since_seconds, Some(2));
        assert_eq!(ok("x --since=1m30s").since_seconds, Some(90));
        assert_eq!(ok("x --since=0").since_seconds, None);
        assert_eq!(
            ok("x --since-time=2024-08-30T06:00:00Z")
                .since_time
                .as_deref(),
            Some("2024-08-30T06:00:00Z")
        );
        assert_eq!(err("x --since=5").code, "invalid_argument");
        assert_eq!(
            err("x --since=-1s").message,
            "--since must be greater than 0"
        );
        assert_eq!(err("x --since-time=yesterday").code, "invalid_argument");
        assert_eq!(
            err("x --since=1h --since-time=2024-08-30T06:00:00Z").message,
            "at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
    }

    #[test]
    fn refusals() {
        for s in ["x -f", "x --follow", "x -pf", "x --follow=true"] {
            let e = err(s);
            assert_eq!(e.code, "unknown_flag", "{s}");
            assert!(
                e.message.contains("following logs is not supported"),
                "{s}: {e:?}"
            );
        }
        assert_eq!(err("").code, "usage_error");
        assert_eq!(err("a b c").code, "usage_error");
        assert_eq!(
            err("x -l app=y").kubectl_error.as_deref(),
            Some(
                "error: only a selector (-l) or a POD name is allowed\nSee 'kubectl logs -h' for \
                 help and examples\n"
            )
        );
        assert_eq!(
            err("x scorer -c scorer").message,
            "only one of -c or an inline [CONTAINER] arg is allowed"
        );
        assert_eq!(
            err("x -c a --all-containers").message,
            "--all-containers=true should not be specified with container name a"
        );
        assert_eq!(
            err("x --tail=-2").message,
            "--tail must be greater than or equal to -1"
        );
        assert_eq!(err("x --tail=ten").code, "invalid_argument");
        assert_eq!(err("a/b/c").code, "invalid_argument");
        assert_eq!(err("x -c a&b").code, "invalid_argument");
        assert_eq!(err("x --as=admin").code, "forbidden_flag");
        assert_eq!(err("x -A").code, "unknown_flag");
        assert_eq!(
            err("x --limit-bytes=-1").message,
            "--limit-bytes must be greater than 0"
        );
    }
}
