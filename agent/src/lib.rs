//! The kubeline agent: runs in a cluster, dials out to the broker, and runs read-only commands
//! against the local API server with `kube`.
//!
//! **Invariant:** the agent only dials out for commands; it never listens unless
//! `--metrics-listen` is given, and then serves only `GET /metrics`.

pub mod exec;
pub mod link;
pub mod metrics;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

/// Agent configuration; every flag has a `KUBELINE_*` environment equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Broker URL (http(s)://host:port); the agent dials out to it.
    #[arg(long, env = "KUBELINE_BROKER_URL")]
    pub broker_url: String,

    /// This cluster's id, as configured on the broker.
    #[arg(long, env = "KUBELINE_CLUSTER_ID")]
    pub cluster_id: String,

    /// This cluster's agent token.
    #[arg(long, env = "KUBELINE_AGENT_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = "KUBELINE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Commands run at once; more wait their turn.
    #[arg(long, env = "KUBELINE_MAX_CONCURRENCY", default_value_t = 16)]
    pub max_concurrency: usize,

    /// Address to serve Prometheus metrics on (`GET /metrics`), e.g. 0.0.0.0:9090. Off by
    /// default: without it the agent opens no port at all.
    #[arg(long, env = "KUBELINE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// How a https:// broker is trusted: --ca-file, --insecure.
    #[command(flatten)]
    pub tls: tls::ClientTlsArgs,
}

/// An executor for the local API server: from `kubeconfig` (its current context) if given,
/// otherwise the in-cluster service account or `$KUBECONFIG`, as kubectl would. The executor
/// knows the server URL (for `cluster-info`) and the default namespace of that configuration.
pub async fn executor(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<exec::Executor> {
    let config = match kubeconfig {
        Some(path) => {
            let raw = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(raw, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig given and no in-cluster service account found")?,
    };
    let server_url = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
    Ok(exec::Executor::new(client)
        .with_server_url(server_url)
        .with_default_namespace(namespace))
}

/// The current context's name in a kubeconfig, used as the default cluster id by `kubeline dev`.
pub fn current_context(kubeconfig: &std::path::Path) -> anyhow::Result<Option<String>> {
    let raw = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("cannot read kubeconfig {}", kubeconfig.display()))?;
    Ok(raw.current_context)
}
