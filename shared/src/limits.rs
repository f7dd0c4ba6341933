//! The bounds on the work one command may cause, in one place.
//!
//! Every caller is assumed hostile: whatever a caller controls (argv, templates, names, types)
//! is bounded here in size, depth and the work it can cause on the agent and the API server.
//! The limits a request can be checked against before anything runs are checked by
//! [`crate::command::parse`], so the broker refuses with 400 `invalid_request`
//! (`details.code = "limit_exceeded"`) before queueing; the agent runs the same parser again.
//! The limits that depend on the cluster's data (steps, output, objects found) are enforced by
//! the agent while it runs, and end the command with a failed result that names the limit.
//!
//! The numbers are far above what a person or an AI agent writes by hand, and far below what
//! could exhaust memory, the stack or the API server.

/// Arguments in one command's argv. kubectl invocations rarely pass 20.
pub const MAX_ARGS: usize = 128;

/// Bytes of one command's argv, all arguments together.
pub const MAX_ARGV_BYTES: usize = 16 * 1024;

/// Bytes of one template: a `-o jsonpath=` template, a `-o custom-columns=` spec or a
/// `--sort-by` expression.
pub const MAX_TEMPLATE_BYTES: usize = 4 * 1024;

/// `{…}` actions in one JSONPath template.
pub const MAX_TEMPLATE_ACTIONS: usize = 128;

/// How deep filters (`[?(…)]`) and unions (`[a,b]`) may nest inside one another. Parsing them
/// recurses, so this also bounds the parser's stack.
pub const MAX_TEMPLATE_NESTING: usize = 8;

/// How deep `{range}` blocks may nest. Evaluation recurses once per open range, and nested
/// ranges multiply the work, so this bound is low.
pub const MAX_RANGE_DEPTH: usize = 6;

/// Columns in one `-o custom-columns=` spec.
pub const MAX_CUSTOM_COLUMNS: usize = 32;

/// Values one template may visit while it is evaluated, over all the objects of one command
/// (each field, item, wildcard child, descendant, filter candidate and range iteration counts).
/// A template over ten thousand pods that reads ten fields of each uses about 200,000.
pub const MAX_TEMPLATE_STEPS: u64 = 2_000_000;

/// Bytes one template (`-o jsonpath`, `-o custom-columns`) may print before the agent stops it:
/// twice the broker's default `--max-output-bytes`, past which output is cut anyway. Templates
/// are where a small object becomes a huge output, and sixteen commands run at once, so this is
/// what bounds the agent's memory under hostile templates.
pub const MAX_TEMPLATE_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Object names in one `get` or `describe` (each name is one API request).
pub const MAX_NAMES: usize = 100;

/// Resource types in one command (each type is at least one list request).
pub const MAX_TYPES: usize = 32;

/// Objects one `describe` may describe (each one costs several API requests for its events and
/// related objects).
pub const MAX_DESCRIBE_OBJECTS: usize = 200;

/// Containers `logs` may read in one command (`-l`, `--all-containers`, a workload with
/// `--all-pods`): one API request each.
pub const MAX_LOG_REQUESTS: usize = 50;

/// Pages one list may take (`--chunk-size` is the page size, so `--chunk-size=1` over a big
/// collection would otherwise make one API request per object).
pub const MAX_LIST_PAGES: usize = 1000;

/// Bytes of a label or field selector.
pub const MAX_SELECTOR_BYTES: usize = 4 * 1024;

/// Labels one cluster's agent may carry (`--label`), checked by the agent at start and by the
/// broker on every hello.
pub const MAX_CLUSTER_LABELS: usize = 32;

/// Bytes of the error output a command may return; more is cut, saying how much was left out.
pub const MAX_ERROR_BYTES: usize = 64 * 1024;

/// A caller-controlled input went over one of the limits above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} exceeds kubeline's limit of {limit} {unit}")]
pub struct LimitExceeded {
    /// What went over, as a user would name it (`the template`, `--sort-by`).
    pub what: String,
    /// The limit.
    pub limit: u64,
    /// What the limit counts (`bytes`, `actions`, `nested ranges`, …).
    pub unit: &'static str,
}

impl LimitExceeded {
    /// `what` went over `limit` `unit`s.
    pub fn new(what: impl Into<String>, limit: impl TryInto<u64>, unit: &'static str) -> Self {
        Self {
            what: what.into(),
            limit: limit.try_into().unwrap_or(u64::MAX),
            unit,
        }
    }
}
