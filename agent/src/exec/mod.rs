//! Runs parsed commands against the local API server with `kube`, printing what kubectl prints.
//!
//! Every command is implemented natively: no kubectl binary and no shell. The output of each
//! command is the bytes kubectl would write to stdout and stderr, and its exit code:
//! - `get` prints the API server's own Table rendering through a port of kubectl's table
//!   printer and tab writer, or the objects as kubectl's json/yaml/name printers do;
//! - `version` prints only the server side (see [`kubeline_shared::command::Version`]);
//! - `cluster-info` prints the control plane URL and the cluster services, without colour.
//!
//! Secret values never leave the cluster: `data` and `stringData` values of Secrets are replaced
//! with [`REDACTED`] in json and yaml output.
//!
//! Streams (`GET /debug/stream`): [`Executor::stream`] runs a command writing its output into
//! a [`Sink`] as it is produced: `logs -f` as each log grows, `get -w` / `events -w` /
//! `rollout status -w` as the API server's watch reports changes. [`Executor::run`] is the same
//! code for `logs` with a sink that keeps everything.
//!
//! Layout, by job:
//! - `commands`: one module per command (`get`, `describe/`, `logs`, `events/`, `top`,
//!   `rollout`, `explain`, `api_resources`, `api_versions`, `auth`, `cluster_info`, `version`);
//! - `api`: the one way to the API server: every request is built and sent there, errors are
//!   worded as kubectl words them; discovery and name resolution (`api::discovery`), the
//!   resource builder that turns typed targets into requests (`api::builder`) and watch
//!   streams (`api::watch`);
//! - [`sink`]: where a stream's output goes;
//! - printing lives in the `kubeline_printers` crate (kubectl's table, jsonpath,
//!   custom-columns and sort printers, and the Go encoders they print through), which does no
//!   I/O; command-specific printers (`describe`'s writers) stay with their command.

pub(crate) mod api;
mod commands;
pub mod sink;

pub use commands::get::REDACTED;
pub use sink::{Closed, Sink};

/// Entry points into the template evaluators for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    /// Parses and runs a `-o jsonpath=` template over `data`, as `get` does.
    pub fn jsonpath(template: &str, data: &Value) -> Result<String, String> {
        kubeline_printers::jsonpath::JsonPath::parse(template)?
            .allow_missing_keys(true)
            .execute(data)
    }

    /// Parses a `-o custom-columns=` spec and prints `data`'s items under it, as `get` does.
    pub fn custom_columns(spec: &str, data: &Value) -> Result<String, String> {
        let columns = kubeline_printers::custom_columns::parse(spec)?;
        let items: Vec<&Value> = match data.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().collect(),
            None => vec![data],
        };
        kubeline_printers::custom_columns::print(&columns, &items, false).map_err(|e| e.error)
    }

    /// Sorts `data`'s items by a `--sort-by` expression, as `get` does.
    pub fn sort_by(field: &str, data: &Value) -> Result<(), String> {
        let mut items: Vec<Value> = data
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        kubeline_printers::sorter::sort_objects(&mut items, field)
    }
}

use api::ApiError;
use api::discovery::Discovery;
use commands::{
    api_resources, api_versions, auth, cluster_info, describe, events, explain, get, logs, rollout,
    top, version,
};
use kubeline_shared::command::Command;
use kubeline_shared::limits::MAX_LIST_PAGES;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What a command printed and how it ended, as a kubectl process would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Standard output.
    pub output: String,
    /// Standard error; `None` when empty.
    pub error: Option<String>,
    /// Process exit code kubectl would have returned.
    pub exit_code: i32,
}

impl Outcome {
    /// A command that hit a bug in kubeline (it panicked): failed, with a message that says so
    /// and asks for a report, exit code 1.
    pub fn internal_error(what: &str) -> Self {
        Outcome::failed(format!(
            "error: kubeline agent internal error while running this command ({what}); the agent \
             is still serving. Please report this with the command that caused it"
        ))
    }

    /// Nothing on stdout, one error line on stderr, exit code 1.
    pub(crate) fn failed(message: String) -> Self {
        let mut message = message;
        if !message.ends_with('\n') {
            message.push('\n');
        }
        Outcome {
            output: String::new(),
            error: Some(message),
            exit_code: 1,
        }
    }
}

/// Runs CPU work that has no await point (sorting, templates, printing a big list) so that it
/// does not hold up the runtime's other tasks: on a multi-threaded runtime (the agent's command
/// runtime) the worker hands its other tasks to the rest of the pool first. At most one such
/// section per core runs at a time: more would not finish sooner, and each holds its command's
/// objects and output in memory, so sixteen hostile templates at once would multiply the
/// agent's peak memory by sixteen. The slot is awaited *before* the section leaves the async
/// world: a command waiting for one holds no thread (waiting inside `block_in_place` held one
/// each, so the agent's threads, their stacks and allocator arenas grew with every new peak
/// of concurrent commands — the memory a soak saw creep up).
async fn cpu_bound<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            let _slot = cpu_slots()
                .acquire()
                .await
                .expect("the CPU slots are never closed");
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// One slot per core for [`cpu_bound`] sections.
fn cpu_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// The namespace commands use when none is given. kubectl takes it from the kubeconfig context;
/// an agent has no context, so kubeline uses what a fresh kubeconfig means: `default`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How long discovery data is trusted before a lookup miss may refresh it.
const DISCOVERY_REFRESH_AFTER: Duration = Duration::from_secs(2);

/// How long discovery data is used at all; resources removed from the cluster (a deleted CRD)
/// stop resolving after at most this long.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(600);

/// In-cluster address of the API server, used for `cluster-info` when none is configured.
const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

struct CachedDiscovery {
    discovery: Arc<Discovery>,
    fetched: Instant,
}

/// Runs commands with one shared API client. Cheap to clone; clones share the discovery cache.
#[derive(Clone)]
pub struct Executor {
    client: kube::Client,
    server_url: Arc<str>,
    default_namespace: Arc<str>,
    discovery: Arc<RwLock<Option<CachedDiscovery>>>,
    max_list_pages: usize,
}

impl Executor {
    /// Builds an executor over a client for the local cluster.
    ///
    /// `cluster-info` reports the server as `https://kubernetes.default.svc` and commands use the
    /// `default` namespace unless set with [`Executor::with_server_url`] and
    /// [`Executor::with_default_namespace`].
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            server_url: Arc::from(IN_CLUSTER_SERVER),
            default_namespace: Arc::from(DEFAULT_NAMESPACE),
            discovery: Arc::new(RwLock::new(None)),
            max_list_pages: MAX_LIST_PAGES,
        }
    }

    /// Sets how many pages one list may take (default [`MAX_LIST_PAGES`]).
    pub fn with_max_list_pages(mut self, pages: usize) -> Self {
        self.max_list_pages = pages.max(1);
        self
    }

    /// Sets the API server URL that `cluster-info` prints, as written in the kubeconfig or
    /// `kube::Config::cluster_url` (a trailing `/` is dropped).
    pub fn with_server_url(mut self, url: impl AsRef<str>) -> Self {
        self.server_url = Arc::from(url.as_ref().trim_end_matches('/'));
        self
    }

    /// Sets the namespace used when a command gives none.
    pub fn with_default_namespace(mut self, namespace: impl AsRef<str>) -> Self {
        self.default_namespace = Arc::from(namespace.as_ref());
        self
    }

    /// The API server's `gitVersion`, if it answers.
    pub async fn kubernetes_version(&self) -> Option<String> {
        let info = api::get(&self.client, "/version", api::ACCEPT_JSON, None)
            .await
            .ok()?;
        Some(info.body.get("gitVersion")?.as_str()?.to_string())
    }

    /// Runs one command to completion.
    pub async fn run(&self, command: &Command) -> Outcome {
        match command {
            Command::Get(g) => get::run(self, g).await,
            Command::Version(v) => version::run(self, v).await,
            Command::ClusterInfo(c) => cluster_info::run(self, c).await,
            Command::Describe(c) => describe::run(self, c).await,
            Command::Logs(c) => logs::run(self, c).await,
            Command::Events(c) => events::run(self, c).await,
            Command::Top(c) => top::run(self, c).await,
            Command::Explain(c) => explain::run(self, c).await,
            Command::ApiResources(c) => api_resources::run(self, c).await,
            Command::ApiVersions(c) => api_versions::run(self, c).await,
            Command::Rollout(c) => rollout::run(self, c).await,
            Command::Auth(c) => auth::run(self, c).await,
        }
    }

    /// Runs one command as a stream: its output is written into `sink` as it is produced,
    /// and the returned outcome carries only its standard error and exit code (`output` is
    /// empty). `logs -f`, `get -w` / `--watch-only`, `events -w` and `rollout status -w` keep
    /// running until they end on their own (a followed container stops, a rollout completes,
    /// an error) or until the sink's reader goes away ([`Closed`]: the caller's budget or
    /// cancellation), which stops them at their next write; the caller bounds their lifetime.
    /// Every other command runs as [`Executor::run`] runs it and writes its output at the end.
    pub async fn stream(&self, command: &Command, mut sink: Sink) -> Outcome {
        use kubeline_shared::command::Watch;
        match command {
            Command::Logs(c) => logs::stream(self, c, &mut sink).await,
            Command::Get(g) if g.watch != Watch::No => get::watch(self, g, &mut sink).await,
            Command::Events(c) if c.watch => events::watch(self, c, &mut sink).await,
            Command::Rollout(c) if c.watch => rollout::watch(self, c, &mut sink).await,
            other => {
                let mut outcome = self.run(other).await;
                // A reader that went away wants nothing more; the outcome still says how the
                // command ended.
                let _ = sink.write(&std::mem::take(&mut outcome.output)).await;
                outcome
            }
        }
    }

    /// What the server serves, fetched now (`api-resources`, `api-versions` and `explain` read
    /// it whole; other commands resolve names through the cached [`Executor::discovery`]).
    async fn server_resources(&self) -> Result<api::discovery::ServerResources, ApiError> {
        api::discovery::fetch(&self.client).await
    }

    /// The cached discovery data; fetched on first use, when older than [`DISCOVERY_MAX_AGE`],
    /// and when `refresh` is asked for (after a lookup miss) and the cache is older than
    /// [`DISCOVERY_REFRESH_AFTER`].
    async fn discovery(&self, refresh: bool) -> Result<Arc<Discovery>, ApiError> {
        if let Ok(guard) = self.discovery.read()
            && let Some(c) = guard.as_ref()
        {
            let age = c.fetched.elapsed();
            let fresh_enough = if refresh {
                age < DISCOVERY_REFRESH_AFTER
            } else {
                age < DISCOVERY_MAX_AGE
            };
            if fresh_enough {
                return Ok(c.discovery.clone());
            }
        }
        let discovery = Arc::new(Discovery::new(&self.server_resources().await?));
        if let Ok(mut guard) = self.discovery.write() {
            *guard = Some(CachedDiscovery {
                discovery: discovery.clone(),
                fetched: Instant::now(),
            });
        }
        Ok(discovery)
    }
}
