//! The operator commands: `login`, `logout`, `clusters`, `status` and `kubectl`.
//!
//! Exit status (README, "Operator CLI"): `kubectl` exits with the command's own exit code
//! (kubectl's: 0, or 1 for an error such as NotFound); any other failure has a code of its own:
//!
//! | code | meaning |
//! |---|---|
//! | 2 | usage or configuration: a bad flag, no broker or key configured, a bad URL or cluster id |
//! | 3 | the broker cannot be reached, or answered something that is not a kubeline answer |
//! | 4 | 401: the API key was refused |
//! | 5 | 403: the key may not reach that cluster (or route) |
//! | 6 | 404: unknown cluster |
//! | 7 | 400: the command was refused (a write verb, a forbidden flag, a limit) |
//! | 8 | 429: rate limited or too many commands in flight |
//! | 9 | 503: the cluster's agent is not connected (or its link was lost, or the broker's store is down) |
//! | 10 | the command did not finish within its timeout (504) |
//! | 11 | any other broker error (500, …) |

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use kubeline_shared::api::{
    ClusterStatus, CommandResult, CreateSessionRequest, ErrorCode, ExecuteRequest, check_cluster_id,
};

use crate::client::{ApiError, Client, ClientError};
use crate::config::{self, CachedSession, ClientArgs, ConfigFile, SessionCache, Target};
use crate::stream::StreamError;

/// Exit codes of the client commands (see the module docs).
pub mod exit {
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const UNAUTHORIZED: u8 = 4;
    pub const FORBIDDEN: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const REFUSED: u8 = 7;
    pub const RATE_LIMITED: u8 = 8;
    pub const UNAVAILABLE: u8 = 9;
    pub const TIMEOUT: u8 = 10;
    pub const BROKER_ERROR: u8 = 11;
}

/// A session is used for commands only while it has this much time left.
const SESSION_MARGIN_SECONDS: i64 = 15;

/// How long `kubectl` waits for the broker when no `--timeout` is given: past any broker's
/// default timeout (30 s unless configured), the broker answers by then.
const DEFAULT_EXECUTE_WAIT: Duration = Duration::from_secs(15 * 60);

/// Output format of `clusters` and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Table,
    /// The broker's JSON answer.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {}

#[derive(Debug, clap::Args)]
pub struct ClustersArgs {
    #[command(flatten)]
    pub client: ClientArgs,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Cluster id.
    pub cluster: String,

    #[command(flatten)]
    pub client: ClientArgs,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct KubectlArgs {
    /// Cluster to run the command on.
    #[arg(short, long, env = "KUBELINE_CLUSTER", value_name = "CLUSTER")]
    pub cluster: String,

    #[command(flatten)]
    pub client: ClientArgs,

    /// Seconds the broker may take to run the command (default: the broker's, 30 s unless
    /// configured; at most its --max-timeout).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub timeout: Option<f64>,

    /// Output budget in bytes (default and maximum: the broker's --max-output-bytes). Output past
    /// it is cut, and kubeline says so on standard error.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_output_bytes: Option<u64>,

    /// The kubectl command and its arguments, after `--`: `get pods -A`, `logs deploy/web`, …
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds greater than 0")),
    }
}

/// A failure of a client command: the message for standard error, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::USAGE,
        }
    }

    /// Prints the message and gives the exit code.
    pub fn report(self) -> ExitCode {
        let message = self.message.trim_end();
        eprintln!("kubeline: {message}");
        ExitCode::from(self.code)
    }
}

/// What a broker error means for the operator: the broker's message (or the cause), what to do,
/// and the exit code. `cluster` names the cluster the command was about.
pub fn explain(e: &ClientError, target: &Target, cluster: Option<&str>) -> Failure {
    let broker = &target.broker;
    match e {
        ClientError::Unreachable { .. } => Failure {
            message: format!(
                "{e}\n  Check the URL and that the broker runs (`--broker`, \
                 KUBELINE_BROKER_URL, or `kubeline login --broker URL`)."
            ),
            code: exit::UNREACHABLE,
        },
        ClientError::Timeout { .. } => Failure {
            message: e.to_string(),
            code: exit::UNREACHABLE,
        },
        ClientError::Unexpected { .. } => Failure {
            message: e.to_string(),
            code: exit::UNREACHABLE,
        },
        ClientError::Api(api) => explain_api(api, broker, cluster),
    }
}

fn explain_api(api: &ApiError, broker: &str, cluster: Option<&str>) -> Failure {
    let what = format!(
        "{} (HTTP {} {} from {broker})",
        api.message.trim_end_matches('.'),
        api.status,
        api.code_text
    );
    let (hint, code) = match api.code {
        Some(ErrorCode::Unauthorized) => (
            format!(
                "The broker refused the API key. Run `kubeline login --broker {broker}` with a \
                 valid key, or pass --api-key (or set KUBELINE_API_KEY)."
            ),
            exit::UNAUTHORIZED,
        ),
        Some(ErrorCode::Forbidden) => (
            match api.detail_code() {
                Some("cluster_not_granted") => format!(
                    "This API key is not granted cluster {}; ask an admin for a key that is, or \
                     run `kubeline clusters` to see the clusters it reaches.",
                    cluster.unwrap_or("?")
                ),
                Some("admin_scope_required") => {
                    "This needs an API key with admin scope.".to_owned()
                }
                _ => "This API key may not do that.".to_owned(),
            },
            exit::FORBIDDEN,
        ),
        Some(ErrorCode::NotFound) => (
            match cluster {
                Some(_) => "Run `kubeline clusters` to see the clusters this key reaches.",
                None => "Check the broker URL: is it a kubeline broker of this version?",
            }
            .to_owned(),
            exit::NOT_FOUND,
        ),
        Some(ErrorCode::InvalidRequest) => (
            if api.message.starts_with("Command refused") {
                "kubeline runs read-only commands only, with the flags each command allows."
                    .to_owned()
            } else {
                String::new()
            },
            exit::REFUSED,
        ),
        Some(ErrorCode::RateLimited) => (
            match api
                .retry_after
                .or_else(|| api.details.get("retry_after").and_then(|v| v.as_u64()))
            {
                Some(s) => format!("Retry in {s} s."),
                None => "Retry shortly.".to_owned(),
            },
            exit::RATE_LIMITED,
        ),
        Some(ErrorCode::ServiceUnavailable) => (
            if api.message.contains("not connected") {
                let cluster = cluster.unwrap_or("?");
                let seen = api
                    .details
                    .get("last_seen")
                    .and_then(|v| v.as_str())
                    .map(|t| format!(" (last seen {t})"))
                    .unwrap_or_else(|| " (never seen)".to_owned());
                format!(
                    "No agent of cluster {cluster} is linked to the broker now{seen}: check the \
                     kubeline agent in that cluster; `kubeline status {cluster}` shows when it \
                     links."
                )
            } else {
                "Retry shortly; if it persists, check the broker's log.".to_owned()
            },
            exit::UNAVAILABLE,
        ),
        Some(ErrorCode::Timeout) => (
            "The command did not finish in time: narrow it, or give a larger --timeout (at \
             most the broker's --max-timeout)."
                .to_owned(),
            exit::TIMEOUT,
        ),
        _ => (
            match api.details.get("request_id").and_then(|v| v.as_str()) {
                Some(id) => format!("The broker's log names this request {id}."),
                None => String::new(),
            },
            exit::BROKER_ERROR,
        ),
    };
    Failure {
        message: if hint.is_empty() {
            what
        } else {
            format!("{what}\n  {hint}")
        },
        code,
    }
}

fn client_for(args: &ClientArgs) -> Result<(Client, Target), Failure> {
    let target = config::resolve(args).map_err(Failure::usage)?;
    let client = target.client().map_err(Failure::usage)?;
    Ok((client, target))
}

// === login / logout ===

pub async fn login(args: LoginArgs) -> Result<(), Failure> {
    let path = config::config_path().map_err(Failure::usage)?;
    let existing = config::load_config(&path).map_err(Failure::usage)?;
    let broker = args
        .client
        .broker
        .clone()
        .filter(|b| !b.trim().is_empty())
        .or_else(|| existing.as_ref().and_then(|f| f.broker.clone()))
        .ok_or_else(|| {
            Failure::usage(
                "give the broker's URL: kubeline login --broker URL (or set KUBELINE_BROKER_URL)",
            )
        })?;
    let broker = crate::client::normalize_url(&broker)
        .map_err(|e| Failure::usage(format!("--broker: {e}")))?;
    let key = match args.client.api_key.filter(|k| !k.trim().is_empty()) {
        Some(key) => key.trim().to_owned(),
        None => read_key(&broker)?,
    };
    // A CA file given now, else the saved one if it was for this broker.
    let ca_file = match args.client.ca_file.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => Some(std::path::absolute(&path).unwrap_or(path)),
        None => existing.as_ref().and_then(|f| {
            let same = f
                .broker
                .as_deref()
                .and_then(|b| crate::client::normalize_url(b).ok())
                .is_some_and(|b| b == broker);
            f.ca_file.clone().filter(|_| same)
        }),
    };
    let target = Target {
        broker: broker.clone(),
        api_key: key.clone(),
        ca_file: ca_file.clone(),
    };
    let client = target.client().map_err(Failure::usage)?;
    let clusters = client.clusters().await.map_err(|e| match &e {
        ClientError::Api(api) if api.code == Some(ErrorCode::Unauthorized) => Failure {
            message: format!(
                "the broker at {broker} refused this API key: {} ({}). Nothing was saved; \
                 check the key and run `kubeline login` again.",
                api.message.trim_end_matches('.'),
                api.detail_code().unwrap_or(&api.code_text)
            ),
            code: exit::UNAUTHORIZED,
        },
        _ => {
            let mut f = explain(&e, &target, None);
            f.message.push_str("\n  Nothing was saved.");
            f
        }
    })?;
    let file = ConfigFile {
        broker: Some(broker.clone()),
        api_key: Some(key),
        ca_file,
    };
    let text = toml::to_string(&file).expect("the config serializes");
    config::write_private(
        &path,
        format!("# Written by `kubeline login`; `kubeline logout` removes it.\n{text}").as_bytes(),
    )
    .map_err(Failure::usage)?;
    let names: Vec<&str> = clusters
        .clusters
        .iter()
        .map(|c| c.cluster_id.as_str())
        .collect();
    let connected = clusters
        .clusters
        .iter()
        .filter(|c| c.status == ClusterStatus::Connected)
        .count();
    println!(
        "Logged in to {broker}: this key reaches {} cluster{} ({connected} connected){}.",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        }
    );
    println!("Saved to {} (readable by you only).", path.display());
    Ok(())
}

/// The key from standard input: a prompt without echo on a terminal, else the first line.
fn read_key(broker: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let key = if stdin.is_terminal() {
        rpassword::prompt_password(format!("API key for {broker}: "))
            .map_err(|e| Failure::usage(format!("cannot read the API key: {e}")))?
    } else {
        let mut text = String::new();
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| {
                Failure::usage(format!("cannot read the API key from standard input: {e}"))
            })?;
        text.lines().next().unwrap_or("").to_owned()
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(Failure::usage(
            "no API key given: pass --api-key KEY, set KUBELINE_API_KEY, type it at the prompt, \
             or pipe it on standard input",
        ));
    }
    Ok(key)
}

pub async fn logout(_args: LogoutArgs) -> Result<(), Failure> {
    let path = config::config_path().map_err(Failure::usage)?;
    let Some(file) = config::load_config(&path).map_err(Failure::usage)? else {
        println!("Not logged in ({} does not exist).", path.display());
        return Ok(());
    };
    // The sessions this login's key opened: closed on the broker (best effort) and forgotten.
    let mut closed = 0;
    let mut left = Vec::new();
    if let (Some(broker), Some(key)) = (&file.broker, &file.api_key)
        && let Ok(broker) = crate::client::normalize_url(broker)
        && let Ok(cache) = SessionCache::open()
    {
        let sessions = cache
            .take_all(&broker, &config::key_id(key))
            .unwrap_or_default();
        if let Ok(client) = Client::new(&broker, key, file.ca_file.as_deref()) {
            for s in sessions {
                match client
                    .close_session(&s.session_id, Duration::from_secs(5))
                    .await
                {
                    Ok(_) => closed += 1,
                    Err(ClientError::Api(_)) => {}
                    Err(e) => left.push(format!("{}: {e}", s.session_id)),
                }
            }
        }
    }
    std::fs::remove_file(&path)
        .map_err(|e| Failure::usage(format!("cannot remove {}: {e}", path.display())))?;
    println!(
        "Logged out of {}: removed {}{}.",
        file.broker.as_deref().unwrap_or("the broker"),
        path.display(),
        match closed {
            0 => String::new(),
            1 => "; closed 1 session".to_owned(),
            n => format!("; closed {n} sessions"),
        }
    );
    for l in left {
        eprintln!(
            "kubeline: warning: could not close session {l} (it ends by itself at its expiry)"
        );
    }
    Ok(())
}

// === clusters / status ===

pub async fn clusters(args: ClustersArgs) -> Result<(), Failure> {
    let (client, target) = client_for(&args.client)?;
    let list = client
        .clusters()
        .await
        .map_err(|e| explain(&e, &target, None))?;
    if args.output == Output::Json {
        print_json(&list);
        return Ok(());
    }
    if list.clusters.is_empty() {
        eprintln!(
            "No clusters: this key reaches none at {} (a cluster shows once it is configured or \
             its agent has linked).",
            target.broker
        );
        return Ok(());
    }
    let now = Utc::now();
    let mut rows = vec![[
        "CLUSTER".to_owned(),
        "STATUS".to_owned(),
        "AGENT VERSION".to_owned(),
        "LAST SEEN".to_owned(),
        "NAME".to_owned(),
    ]];
    for c in &list.clusters {
        rows.push([
            c.cluster_id.clone(),
            status_word(c.status).to_owned(),
            c.agent_version.clone().unwrap_or_else(|| "-".to_owned()),
            c.last_seen
                .map_or_else(|| "never".to_owned(), |t| ago(t, now)),
            c.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub async fn status(args: StatusArgs) -> Result<(), Failure> {
    check_cluster_id(&args.cluster).map_err(Failure::usage)?;
    let (client, target) = client_for(&args.client)?;
    let s = client
        .cluster_status(&args.cluster)
        .await
        .map_err(|e| explain(&e, &target, Some(&args.cluster)))?;
    if args.output == Output::Json {
        print_json(&s);
        return Ok(());
    }
    let now = Utc::now();
    let last_seen = match s.last_seen {
        Some(t) => format!(
            "{} ({})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ago(t, now)
        ),
        None => "never".to_owned(),
    };
    let lines = [
        ("Cluster", s.cluster_id.clone()),
        ("Status", status_word(s.status).to_owned()),
        (
            "Agent version",
            s.agent_version.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        (
            "Kubernetes version",
            s.kubernetes_version
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ),
        ("Last seen", last_seen),
        ("Active sessions", s.active_sessions.to_string()),
        ("Queue depth", s.queue_depth.to_string()),
        ("Broker", target.broker.clone()),
    ];
    for (name, value) in lines {
        println!("{:<20}{value}", format!("{name}:"));
    }
    Ok(())
}

fn status_word(s: ClusterStatus) -> &'static str {
    match s {
        ClusterStatus::Connected => "connected",
        ClusterStatus::Disconnected => "disconnected",
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("API types serialize")
    );
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago` (kubectl's age, short).
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    let age = match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    };
    format!("{age} ago")
}

/// Columns padded as kubectl pads them: three spaces between, no trailing blanks.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// === kubectl ===

pub async fn kubectl(args: KubectlArgs) -> Result<ExitCode, Failure> {
    check_cluster_id(&args.cluster).map_err(|e| Failure::usage(format!("-c/--cluster: {e}")))?;
    let (command_type, command_args) = match args.command.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (first.clone(), rest.to_vec()),
        _ => {
            return Err(Failure::usage(
                "give the command after the cluster: kubeline kubectl -c CLUSTER -- get pods -A",
            ));
        }
    };
    let (client, target) = client_for(&args.client)?;
    let cache = match SessionCache::open() {
        Ok(cache) => Some(cache),
        Err(e) => {
            eprintln!("kubeline: warning: sessions are not kept between commands: {e}");
            None
        }
    };
    let wait = match args.timeout {
        Some(t) => Duration::from_secs_f64(t) + Duration::from_secs(30),
        None => DEFAULT_EXECUTE_WAIT,
    };
    let key_id = config::key_id(&target.api_key);
    let margin = chrono::Duration::seconds(SESSION_MARGIN_SECONDS);
    let cached = cache
        .as_ref()
        .and_then(|c| c.get(&target.broker, &args.cluster, &key_id, margin));
    let mut session = cached.map(|c| c.session_id);
    let explain_here = |e: &ClientError| explain(e, &target, Some(&args.cluster));
    let streamed = crate::stream::streams(&command_type, &command_args);
    let result = loop {
        let (session_id, fresh) = match session.take() {
            Some(id) => (id, false),
            None => {
                let created = client
                    .create_session(&CreateSessionRequest {
                        cluster_id: Some(args.cluster.clone()),
                        metadata: Some(session_metadata()),
                    })
                    .await
                    .map_err(|e| explain_here(&e))?;
                if let Some(cache) = &cache
                    && let Err(e) = cache.put(CachedSession {
                        broker: target.broker.clone(),
                        cluster_id: args.cluster.clone(),
                        key_id: key_id.clone(),
                        session_id: created.session_id.clone(),
                        expires_at: created.expires_at,
                    })
                {
                    eprintln!(
                        "kubeline: warning: cannot keep the session for the next command ({e})"
                    );
                }
                (created.session_id, true)
            }
        };
        if streamed {
            let request = crate::stream::StreamRequest {
                cluster: &args.cluster,
                session_id: &session_id,
                command_type: &command_type,
                args: &command_args,
                max_seconds: args.timeout.map(|t| t.ceil() as u64),
                max_bytes: args.max_output_bytes,
            };
            match crate::stream::run(&target, request).await {
                Err(StreamError::Client(ClientError::Api(api)))
                    if !fresh && session_unusable(&api) =>
                {
                    if let Some(cache) = &cache {
                        let _ = cache.remove(&session_id);
                    }
                    continue;
                }
                Err(StreamError::Client(e)) => return Err(explain_here(&e)),
                Err(StreamError::Broken(why)) => {
                    return Err(Failure {
                        message: why,
                        code: exit::BROKER_ERROR,
                    });
                }
                Ok(code) => return Ok(code),
            }
        }
        let request = ExecuteRequest {
            cluster_id: Some(args.cluster.clone()),
            session_id: Some(session_id.clone()),
            command_type: Some(command_type.clone()),
            args: Some(command_args.clone()),
            timeout: args.timeout,
            max_output_bytes: args.max_output_bytes,
        };
        match client.execute(&request, wait).await {
            Err(ClientError::Api(api)) if !fresh && session_unusable(&api) => {
                // Closed, expired, or gone from the broker: forget it and open a new one. Nothing
                // ran: the broker refuses before queueing.
                if let Some(cache) = &cache {
                    let _ = cache.remove(&session_id);
                }
            }
            other => break other.map_err(|e| explain_here(&e))?,
        }
    };
    Ok(print_result(&result))
}

/// Whether an execute was refused because of its session (then a new one may be used).
fn session_unusable(api: &ApiError) -> bool {
    match (api.code, api.detail_code()) {
        (Some(ErrorCode::NotFound), _) => api.message.starts_with("Session not found"),
        (
            Some(ErrorCode::InvalidRequest),
            Some("session_closed" | "session_expired" | "session_cluster_mismatch"),
        ) => true,
        (Some(ErrorCode::Forbidden), Some("session_not_owned")) => true,
        _ => false,
    }
}

fn session_metadata() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "client".to_owned(),
        format!("kubeline-cli/{}", env!("CARGO_PKG_VERSION")).into(),
    );
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        m.insert("user".to_owned(), user.into());
    }
    m
}

/// Writes the command's output and error as kubectl would, and says when output was cut.
fn print_result(result: &CommandResult) -> ExitCode {
    write_ignoring_closed_pipe(&mut std::io::stdout().lock(), result.output.as_bytes());
    let mut stderr = std::io::stderr().lock();
    if let Some(error) = result.error.as_deref() {
        write_ignoring_closed_pipe(&mut stderr, error.as_bytes());
        if !error.is_empty() && !error.ends_with('\n') {
            write_ignoring_closed_pipe(&mut stderr, b"\n");
        }
    }
    if let Some(t) = result.truncated {
        // Cut output rarely ends a line: start the note on a line of its own on a terminal.
        let newline = if result.output.ends_with('\n') || result.output.is_empty() {
            ""
        } else {
            "\n"
        };
        let note = format!(
            "{newline}kubeline: output truncated: {} bytes left out (output budget {} bytes); narrow the \
             command (-l, -n, --tail, …) or pass --max-output-bytes up to the broker's maximum\n",
            t.omitted_bytes, t.limit_bytes
        );
        write_ignoring_closed_pipe(&mut stderr, note.as_bytes());
    }
    let code = result.exit_code.unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn write_ignoring_closed_pipe(out: &mut impl Write, bytes: &[u8]) {
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(status: u16, code: ErrorCode, message: &str, details: serde_json::Value) -> ApiError {
        ApiError {
            request: "POST http://b/debug/execute".into(),
            status,
            code: Some(code),
            code_text: code.as_str().into(),
            message: message.into(),
            details,
            retry_after: None,
        }
    }

    fn target() -> Target {
        Target {
            broker: "http://b:1".into(),
            api_key: "k".into(),
            ca_file: None,
        }
    }

    #[test]
    fn every_refusal_has_its_exit_code_and_a_hint() {
        let cases = [
            (
                api(
                    401,
                    ErrorCode::Unauthorized,
                    "Invalid API key",
                    json!({"code": "invalid_credentials"}),
                ),
                exit::UNAUTHORIZED,
                "kubeline login --broker http://b:1",
            ),
            (
                api(
                    403,
                    ErrorCode::Forbidden,
                    "no",
                    json!({"code": "cluster_not_granted"}),
                ),
                exit::FORBIDDEN,
                "not granted cluster bed",
            ),
            (
                api(
                    404,
                    ErrorCode::NotFound,
                    "Cluster not found: bed",
                    json!(null),
                ),
                exit::NOT_FOUND,
                "kubeline clusters",
            ),
            (
                api(
                    400,
                    ErrorCode::InvalidRequest,
                    "Command refused: `delete` is a write",
                    json!({}),
                ),
                exit::REFUSED,
                "read-only",
            ),
            (
                api(
                    429,
                    ErrorCode::RateLimited,
                    "Rate limit",
                    json!({"retry_after": 7}),
                ),
                exit::RATE_LIMITED,
                "Retry in 7 s",
            ),
            (
                api(
                    503,
                    ErrorCode::ServiceUnavailable,
                    "Cluster agent is not connected",
                    json!({"last_seen": null}),
                ),
                exit::UNAVAILABLE,
                "check the kubeline agent in that cluster",
            ),
            (
                api(504, ErrorCode::Timeout, "command timed out", json!({})),
                exit::TIMEOUT,
                "--timeout",
            ),
            (
                api(
                    500,
                    ErrorCode::InternalError,
                    "bug",
                    json!({"request_id": "req_1"}),
                ),
                exit::BROKER_ERROR,
                "req_1",
            ),
        ];
        for (e, code, hint) in cases {
            let f = explain(
                &ClientError::Api(Box::new(e.clone())),
                &target(),
                Some("bed"),
            );
            assert_eq!(f.code, code, "{e:?}");
            assert!(f.message.starts_with(&e.message), "{}", f.message);
            assert!(f.message.contains("from http://b:1)"), "{}", f.message);
            assert!(f.message.contains(hint), "{hint:?} not in {}", f.message);
        }
        let f = explain(
            &ClientError::Unreachable {
                url: "http://b:1".into(),
                cause: "connection refused".into(),
            },
            &target(),
            None,
        );
        assert_eq!(f.code, exit::UNREACHABLE);
        assert!(
            f.message
                .starts_with("cannot reach the broker at http://b:1: connection refused")
        );
    }

    #[test]
    fn only_session_refusals_open_a_new_session() {
        let yes = [
            api(
                404,
                ErrorCode::NotFound,
                "Session not found: sess_1",
                json!(null),
            ),
            api(
                400,
                ErrorCode::InvalidRequest,
                "closed",
                json!({"code": "session_closed"}),
            ),
            api(
                400,
                ErrorCode::InvalidRequest,
                "expired",
                json!({"code": "session_expired"}),
            ),
            api(
                403,
                ErrorCode::Forbidden,
                "not yours",
                json!({"code": "session_not_owned"}),
            ),
        ];
        let no = [
            api(
                400,
                ErrorCode::InvalidRequest,
                "Command refused",
                json!({"code": "forbidden_verb"}),
            ),
            api(
                403,
                ErrorCode::Forbidden,
                "no",
                json!({"code": "cluster_not_granted"}),
            ),
            api(
                503,
                ErrorCode::ServiceUnavailable,
                "Cluster agent is not connected",
                json!({}),
            ),
            api(
                404,
                ErrorCode::NotFound,
                "Not found: /debug/execute",
                json!(null),
            ),
        ];
        assert!(yes.iter().all(session_unusable));
        assert!(!no.iter().any(session_unusable));
    }

    #[test]
    fn tables_and_ages_read_as_kubectls() {
        let rows = [
            ["CLUSTER".to_owned(), "STATUS".to_owned(), "X".to_owned()],
            ["bed".to_owned(), "connected".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&rows),
            "CLUSTER   STATUS      X\nbed       connected\n"
        );
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(5), now), "5s ago");
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5m ago");
        assert_eq!(ago(now - chrono::Duration::hours(5), now), "5h ago");
        assert_eq!(ago(now - chrono::Duration::days(5), now), "5d ago");
        assert_eq!(ago(now + chrono::Duration::seconds(5), now), "0s ago");
    }
}
