//! The typed command model: what a kubectl-style request means, decided once.
//!
//! [`parse`] turns a `command_type` and its `args` into a [`Command`] or a [`CommandError`] that
//! names the offending argument. The broker parses before enqueueing and the agent parses again
//! before running, with this same code, so nothing is ever matched as a substring.
//!
//! The policy lives here too:
//! - only read-only command types exist; write verbs are refused with `forbidden_command`;
//! - each command has an allowlist of flags; anything else is `unknown_flag`;
//! - flags that would change who the agent is, where it connects, or make it read files or run
//!   templates are `forbidden_flag`, whatever the command;
//! - output formats that are not implemented yet are `unsupported_output`.
//!
//! Resource *types* stay strings here: resolving `po`, `deploy`, `Pod` or `widgets.testbed.dev`
//! needs the cluster's discovery data, which only the agent has.

mod api_resources;
mod api_versions;
mod auth;
mod cluster_info;
mod describe;
mod events;
mod explain;
mod flags;
mod get;
mod logs;
mod rollout;
mod top;
mod version;

use crate::jsonpath::ParseError;
use crate::limits::{LimitExceeded, MAX_ARGS, MAX_ARGV_BYTES};
use std::fmt;

pub use api_resources::{ApiResources, ApiResourcesOutput, ApiResourcesSort};
pub use api_versions::ApiVersions;
pub use auth::{Auth, CanI};
pub use cluster_info::ClusterInfo;
pub use describe::Describe;
pub use events::Events;
pub use explain::Explain;
pub use get::{DEFAULT_CHUNK_SIZE, Get, GetOutput, ResourceName, Targets, Watch};
pub use logs::{DEFAULT_MAX_LOG_REQUESTS, Logs};
pub use rollout::{Rollout, RolloutAction};
pub use top::{Top, TopKind, TopSort};
pub use version::{Version, VersionOutput};

/// A command the agent knows how to run, with its arguments parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `get`: list or fetch objects and print them as kubectl does.
    Get(Get),
    /// `version`: the API server's version.
    Version(Version),
    /// `cluster-info`: where the control plane and cluster services run.
    ClusterInfo(ClusterInfo),
    /// `describe`: a detailed, human description of objects with their events.
    Describe(Describe),
    /// `logs`: container logs of a pod or of a workload's pods.
    Logs(Logs),
    /// `events`: events, as `kubectl events` lists them.
    Events(Events),
    /// `top nodes|pods`: resource usage from `metrics.k8s.io`.
    Top(Top),
    /// `explain`: field documentation from the OpenAPI v3 documents.
    Explain(Explain),
    /// `api-resources`: the resource types the server serves.
    ApiResources(ApiResources),
    /// `api-versions`: the group/versions the server serves.
    ApiVersions(ApiVersions),
    /// `rollout status|history`: a workload's rollout.
    Rollout(Rollout),
    /// `auth can-i`: what the agent's identity may do.
    Auth(Auth),
}

/// Why a request was refused. Turned into a 400 `invalid_request` by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// Machine-readable reason, for `details.code`: one of `unsupported_command`,
    /// `forbidden_command`, `unknown_flag`, `forbidden_flag`, `missing_flag_value`,
    /// `unsupported_output`, `missing_argument`, `invalid_argument`, `unexpected_argument`,
    /// `limit_exceeded` (see [`crate::limits`]), `not_streamable` ([`parse_stream`]),
    /// `usage_error` (see
    /// [`CommandError::kubectl_error`]).
    pub code: &'static str,
    /// The argument that was refused, for `details.argument`.
    pub argument: Option<String>,
    /// What was wrong and what to do instead.
    pub message: String,
    /// Set when kubectl itself refuses this argv before calling the API server (a usage
    /// error): exactly what kubectl prints on standard error, with exit code 1. Such a request
    /// is not a policy refusal, so it is answered as kubectl answers it — a `failed` result —
    /// rather than with a 400; nothing is queued for it.
    pub kubectl_error: Option<String>,
}

impl CommandError {
    pub(crate) fn new(code: &'static str, argument: Option<String>, message: String) -> Self {
        Self {
            code,
            argument,
            message,
            kubectl_error: None,
        }
    }

    /// A kubectl usage error: `stderr` is kubectl's standard error, byte for byte.
    pub(crate) fn usage(argument: Option<String>, stderr: impl Into<String>) -> Self {
        let stderr = stderr.into();
        Self {
            code: "usage_error",
            argument,
            message: stderr
                .trim_end()
                .trim_start_matches("error: ")
                .replace('\n', " "),
            kubectl_error: Some(stderr),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// The command types kubeline runs today, in the order they are listed to users.
pub const SUPPORTED_COMMANDS: &[&str] = &[
    "get",
    "version",
    "cluster-info",
    "describe",
    "logs",
    "events",
    "top",
    "rollout",
    "api-resources",
    "api-versions",
    "auth",
    "explain",
];

/// `command_type` as the `'static` name of a supported command, or `None`: a bounded label for
/// metrics whatever a caller sent.
pub fn supported(command_type: &str) -> Option<&'static str> {
    SUPPORTED_COMMANDS
        .iter()
        .find(|c| **c == command_type)
        .copied()
}

/// kubectl commands that change the cluster, open a channel into it, or act on the local machine.
/// kubeline refuses them outright.
const WRITE_COMMANDS: &[&str] = &[
    "create",
    "apply",
    "delete",
    "patch",
    "edit",
    "replace",
    "scale",
    "autoscale",
    "exec",
    "attach",
    "cp",
    "port-forward",
    "proxy",
    "run",
    "expose",
    "debug",
    "label",
    "annotate",
    "set",
    "drain",
    "cordon",
    "uncordon",
    "taint",
    "certificate",
    "wait",
    "kustomize",
    "plugin",
    "config",
    "diff",
    "completion",
    "alpha",
];

/// Parses a command type and its arguments.
///
/// The same function runs in the broker (before anything is queued) and in the agent (before
/// anything is run), so both sides agree on what a command means.
pub fn parse(command_type: &str, args: &[String]) -> Result<Command, CommandError> {
    parse_in(command_type, args, Mode::Once)
}

/// Whether a command is parsed to run once (`POST /debug/execute`) or as a stream
/// (`GET /debug/stream`), where the flags that keep it running are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One result: `--follow` / `--watch` are refused.
    Once,
    /// A stream: `logs -f`, `get -w`, `events -w`, `rollout status -w` are accepted.
    Stream,
}

fn parse_in(command_type: &str, args: &[String], mode: Mode) -> Result<Command, CommandError> {
    if args.len() > MAX_ARGS {
        return Err(limit_exceeded(
            None,
            LimitExceeded::new(
                format!("args ({} arguments)", args.len()),
                MAX_ARGS,
                "arguments",
            ),
        ));
    }
    let bytes: usize = args.iter().map(String::len).sum();
    if bytes > MAX_ARGV_BYTES {
        return Err(limit_exceeded(
            None,
            LimitExceeded::new(format!("args ({bytes} bytes)"), MAX_ARGV_BYTES, "bytes"),
        ));
    }
    match command_type {
        "get" => get::parse(args, mode).map(Command::Get),
        "version" => version::parse(args).map(Command::Version),
        "cluster-info" => cluster_info::parse(args).map(Command::ClusterInfo),
        "describe" => describe::parse(args).map(Command::Describe),
        "logs" => logs::parse(args, mode).map(Command::Logs),
        "events" => events::parse(args, mode).map(Command::Events),
        "top" => top::parse(args).map(Command::Top),
        "explain" => explain::parse(args).map(Command::Explain),
        "api-resources" => api_resources::parse(args).map(Command::ApiResources),
        "api-versions" => api_versions::parse(args).map(Command::ApiVersions),
        "rollout" => rollout::parse(args, mode).map(Command::Rollout),
        "auth" => auth::parse(args).map(Command::Auth),
        other if WRITE_COMMANDS.contains(&other) => Err(forbidden_command(other)),
        other => Err(CommandError::new(
            "unsupported_command",
            None,
            format!(
                "unknown command type `{other}`; supported: {}",
                SUPPORTED_COMMANDS.join(", ")
            ),
        )),
    }
}

/// The command types that can run as a stream (`GET /debug/stream`).
pub const STREAMING_COMMANDS: &[&str] = &["logs", "get", "events", "rollout"];

/// Parses a command that runs as a stream: one of [`STREAMING_COMMANDS`], where the flags that
/// keep a command running (`logs -f`, `get -w` / `--watch-only` / `--output-watch-events`,
/// `events -w`, `rollout status -w`) are allowed and recorded in the command ([`Logs::follow`],
/// [`Get::watch`], [`Events::watch`], [`Rollout::watch`]). `rollout status` watches by default
/// here, as kubectl does (`--watch=false` is still a snapshot). Every other rule is
/// [`parse`]'s; a stream that would not keep running (`logs` without `-f`, `get` without `-w`)
/// is accepted and simply ends when its output is printed.
pub fn parse_stream(command_type: &str, args: &[String]) -> Result<Command, CommandError> {
    if !STREAMING_COMMANDS.contains(&command_type) {
        return Err(CommandError::new(
            "not_streamable",
            None,
            format!(
                "`{command_type}` does not stream; streams run {}. Run it once with POST \
                 /debug/execute",
                STREAMING_COMMANDS.join(", ")
            ),
        ));
    }
    parse_in(command_type, args, Mode::Stream)
}

/// A caller-controlled input over one of [`crate::limits`].
fn limit_exceeded(argument: Option<String>, e: LimitExceeded) -> CommandError {
    CommandError::new(
        "limit_exceeded",
        argument,
        format!("{e}; split the command or narrow it (see the README's limits)"),
    )
}

/// Refuses a template only when it is over a limit. A syntax error is left for the agent to
/// report as kubectl words it, in a failed result.
fn template_within_limits<T>(raw: &str, parsed: Result<T, ParseError>) -> Result<(), CommandError> {
    match parsed {
        Err(ParseError::Limit(e)) => Err(limit_exceeded(Some(raw.to_string()), e)),
        _ => Ok(()),
    }
}

fn forbidden_command(command_type: &str) -> CommandError {
    CommandError::new(
        "forbidden_command",
        None,
        format!(
            "command type `{command_type}` is forbidden: kubeline is read-only and never changes a \
             cluster or opens a channel into it; supported: {}",
            SUPPORTED_COMMANDS.join(", ")
        ),
    )
}

/// Refuses positional arguments for commands that take none.
fn no_positionals(command: &str, positionals: &[String]) -> Result<(), CommandError> {
    match positionals.first() {
        None => Ok(()),
        Some(p) => Err(CommandError::new(
            "unexpected_argument",
            Some(p.clone()),
            format!("`{command}` takes no arguments, got `{p}`"),
        )),
    }
}

/// Whether `s` is an RFC 1123 label, the form every namespace name has.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks a `-n/--namespace` value. It ends up in a URL path on the agent, so only real
/// namespace names pass.
fn namespace_value(flag: &flags::Flag) -> Result<String, CommandError> {
    if is_dns_label(&flag.value) {
        Ok(flag.value.clone())
    } else {
        Err(CommandError::new(
            "invalid_argument",
            Some(flag.raw.clone()),
            format!(
                "invalid namespace {:?}: a namespace is a lowercase RFC 1123 label (a-z, 0-9 and \
                 '-', at most 63 characters)",
                flag.value
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
