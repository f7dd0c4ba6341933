//! `kubeline`: the broker, the agent, and `kubeline dev` (both in one process) behind one binary;
//! the operator's client of a broker (`login`, `clusters`, `status`, `kubectl`, `mcp`), and
//! `kubeline audit verify`, which checks a broker's audit log.

mod audit;
mod client;
mod config;
mod mcp;
mod ops;
#[cfg(feature = "otlp")]
mod otlp;
mod stream;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kubeline_agent::AgentArgs;
use kubeline_agent::link::LinkConfig;
use kubeline_broker::auth::Credential;
use kubeline_broker::{Broker, BrokerArgs, DEFAULT_LISTEN};
use kubeline_shared::api::{check_cluster_id, cluster_id_from};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// jemalloc rather than glibc's malloc (see the README's capacity section for the figures).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A safe, fast line into every Kubernetes cluster of a fleet.
#[derive(Debug, Parser)]
#[command(name = "kubeline", version, about)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "KUBELINE_LOG_FORMAT",
        default_value = "plain"
    )]
    log_format: telemetry::Format,

    /// Export the broker's and the agent's command spans to this OTLP/HTTP collector (base URL,
    /// e.g. http://localhost:4318; spans go to /v1/traces). Needs a build with the `otlp`
    /// feature.
    #[arg(
        long,
        global = true,
        env = "KUBELINE_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    otlp_endpoint: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a broker URL and API key, and save them for the other commands (config file, mode
    /// 0600). The key is read from --api-key, KUBELINE_API_KEY, a prompt, or standard input.
    Login(ops::LoginArgs),
    /// Forget the saved broker and key, and close the sessions the CLI opened with them.
    Logout(ops::LogoutArgs),
    /// List the clusters the API key reaches, with their agents' link state.
    Clusters(ops::ClustersArgs),
    /// Show one cluster's status: agent link, versions, sessions, queue.
    Status(ops::StatusArgs),
    /// Run a read-only kubectl command on a cluster through the broker:
    /// `kubeline kubectl -c CLUSTER -- get pods -A`. Prints kubectl's output and error and
    /// exits with kubectl's exit code; a broker refusal exits 2-11 (README, "Operator CLI").
    #[command(visible_alias = "k")]
    Kubectl(ops::KubectlArgs),
    /// Bridge a desktop MCP client that speaks stdio to the broker's MCP endpoint
    /// (POST {broker}/mcp): JSON-RPC lines in on stdin, answers out on stdout, logs on stderr.
    Mcp(mcp::McpArgs),
    /// Print a shell completion script: `source <(kubeline completion bash)`.
    Completion {
        /// Shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the broker: REST API for callers, link endpoint for agents.
    Broker(Box<BrokerArgs>),
    /// Run the agent in a cluster: dial out to the broker and run its commands.
    Agent(AgentArgs),
    /// Run a broker (embedded store) and an agent for one kubeconfig in this process.
    Dev(DevArgs),
    /// Work with a broker's audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Debug, clap::Args)]
struct DevArgs {
    /// Address to serve the REST API on.
    #[arg(long, env = "KUBELINE_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Kubeconfig of the cluster to debug (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "KUBELINE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Cluster id to serve it as (default: the kubeconfig's current context name).
    #[arg(long, env = "KUBELINE_CLUSTER_ID")]
    cluster_id: Option<String>,

    /// Admin API key to accept (default: generated and printed).
    #[arg(long, env = "KUBELINE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let (service, log_filter) = match cli.command {
        Command::Broker(_) => ("kubeline-broker", "info"),
        Command::Agent(_) => ("kubeline-agent", "info"),
        Command::Dev(_) => ("kubeline-dev", "info"),
        Command::Audit(_) => ("kubeline-audit", "info"),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "kubeline", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Login(_)
        | Command::Logout(_)
        | Command::Clusters(_)
        | Command::Status(_)
        | Command::Kubectl(_)
        | Command::Mcp(_) => ("kubeline-cli", "warn"),
    };
    // Before the runtime: the OTLP exporter's HTTP client must not live inside it.
    let telemetry = telemetry::init(
        cli.log_format,
        cli.otlp_endpoint.as_deref(),
        service,
        log_filter,
    )?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli));
    telemetry.shutdown();
    result
}

/// The exit status of a client command.
fn exit_with(result: Result<(), ops::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        // The client commands end with their own exit status.
        Command::Login(args) => return Ok(exit_with(ops::login(args).await)),
        Command::Logout(args) => return Ok(exit_with(ops::logout(args).await)),
        Command::Clusters(args) => return Ok(exit_with(ops::clusters(args).await)),
        Command::Status(args) => return Ok(exit_with(ops::status(args).await)),
        Command::Kubectl(args) => {
            return Ok(ops::kubectl(args)
                .await
                .unwrap_or_else(ops::Failure::report));
        }
        Command::Mcp(args) => return Ok(mcp::run(args).await),
        Command::Audit(command) => return Ok(audit::run(command).await),
        Command::Completion { .. } => unreachable!("answered before the runtime starts"),
        Command::Broker(args) => {
            let shutdown = shutdown_on_signal();
            let broker = Broker::bind(&args).await?;
            broker
                .serve(async move { shutdown.cancelled().await })
                .await?;
        }
        Command::Agent(args) => {
            let shutdown = shutdown_on_signal();
            // Before the kubeconfig: a bad --ca-file is reported as such.
            let tls = kubeline_agent::tls::ClientTls::from_args(&args.tls)?;
            let labels = args.labels()?;
            let executor = kubeline_agent::executor(args.kubeconfig.as_deref()).await?;
            let config = LinkConfig {
                broker_url: args.broker_url,
                cluster_id: args.cluster_id,
                token: args.token,
                max_concurrency: args.max_concurrency,
                max_streams: args.max_streams as usize,
                tls,
                labels,
            };
            config
                .connect_url()
                .map_err(|e| anyhow::anyhow!("--broker-url: {e}"))?;
            check_cluster_id(&config.cluster_id)
                .map_err(|e| anyhow::anyhow!("--cluster-id: {e}"))?;
            if let Some(addr) = args.metrics_listen {
                let metrics = kubeline_agent::metrics::serve(addr, shutdown.clone()).await?;
                tokio::spawn(metrics);
            }
            kubeline_agent::link::run(config, executor, shutdown).await;
        }
        Command::Dev(args) => dev(args, shutdown_on_signal()).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn dev(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let kubeconfig = match args.kubeconfig {
        Some(path) => path,
        None => default_kubeconfig().context(
            "no kubeconfig: pass --kubeconfig or set KUBECONFIG (or create ~/.kube/config)",
        )?,
    };
    let cluster_id = match args.cluster_id {
        Some(id) => id,
        None => cluster_id_from(
            &kubeline_agent::current_context(&kubeconfig)?
                .context("the kubeconfig has no current context; pass --cluster-id")?,
        ),
    };
    check_cluster_id(&cluster_id).map_err(|e| anyhow::anyhow!("--cluster-id: {e}"))?;
    let api_key = args
        .api_key
        .unwrap_or_else(|| format!("kl_{}", uuid::Uuid::new_v4().simple()));
    let agent_token = uuid::Uuid::new_v4().simple().to_string();
    let executor = kubeline_agent::executor(Some(&kubeconfig)).await?;
    let broker_args = BrokerArgs::for_dev(
        args.listen,
        format!("admin={api_key}")
            .parse::<Credential>()
            .map_err(anyhow::Error::msg)?,
        format!("{cluster_id}={agent_token}")
            .parse::<Credential>()
            .map_err(anyhow::Error::msg)?,
    );
    let broker = Broker::bind(&broker_args).await?;
    let url = format!("http://{}", broker.local_addr());
    let link = LinkConfig {
        broker_url: url.clone(),
        cluster_id: cluster_id.clone(),
        token: agent_token,
        max_concurrency: 16,
        max_streams: kubeline_agent::link::DEFAULT_MAX_STREAMS as usize,
        // Unused: the dev broker is plain HTTP on loopback.
        tls: kubeline_agent::tls::ClientTls::default(),
        labels: Default::default(),
    };
    let agent = tokio::spawn(kubeline_agent::link::run(
        link,
        executor,
        shutdown.child_token(),
    ));
    println!(
        "kubeline dev: broker at {url}, cluster {cluster_id:?} from {}",
        kubeconfig.display()
    );
    println!("API key: {api_key}");
    println!("Try:");
    println!(
        "  SID=$(curl -s -X POST {url}/debug/session -H 'Authorization: Bearer {api_key}' \
         -H 'Content-Type: application/json' -d '{{\"cluster_id\":\"{cluster_id}\"}}' | \
         python3 -c 'import sys,json;print(json.load(sys.stdin)[\"session_id\"])')"
    );
    println!(
        "  curl -s -X POST {url}/debug/execute -H 'Authorization: Bearer {api_key}' \
         -H 'Content-Type: application/json' -d '{{\"cluster_id\":\"{cluster_id}\",\
         \"session_id\":\"'$SID'\",\"command_type\":\"get\",\"args\":[\"pods\",\"-A\"]}}'"
    );
    let token = shutdown.clone();
    broker.serve(async move { token.cancelled().await }).await?;
    let _ = agent.await;
    Ok(())
}

fn default_kubeconfig() -> Option<PathBuf> {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return Some(first);
    }
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".kube").join("config");
    path.exists().then_some(path)
}

/// Cancels the returned token on the first SIGINT or SIGTERM; exits at once on the second.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        for n in 0.. {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if n == 0 {
                info!("shutting down; send the signal again to exit at once");
                trigger.cancel();
            } else {
                // A second signal means now: nothing is left to wait for.
                #[allow(clippy::disallowed_methods)]
                std::process::exit(130);
            }
        }
    });
    token
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
