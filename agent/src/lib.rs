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

    /// Streams (`logs -f`, `get -w`, …) run at once, apart from --max-concurrency so long
    /// streams never hold up commands; one more is refused with a failed result saying so.
    #[arg(long, env = "KUBELINE_MAX_STREAMS", default_value_t = link::DEFAULT_MAX_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_streams: u32,

    /// Address to serve Prometheus metrics on (`GET /metrics`), e.g. 0.0.0.0:9090. Off by
    /// default: without it the agent opens no port at all.
    #[arg(long, env = "KUBELINE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// A label of this cluster as KEY=VALUE (Kubernetes label syntax, e.g. env=prod), for
    /// `GET /clusters?selector=` and fleet calls; at most 32. Repeat, or comma-separate in the
    /// environment variable.
    #[arg(
        long = "label",
        env = "KUBELINE_AGENT_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<kubeline_shared::labels::Label>,

    /// How a https:// broker is trusted: --ca-file, --insecure.
    #[command(flatten)]
    pub tls: tls::ClientTlsArgs,
}

impl AgentArgs {
    /// The labels as a set: refuses a key given twice and more than
    /// [`kubeline_shared::limits::MAX_CLUSTER_LABELS`], with a message naming `--label`. (Each
    /// label's syntax was checked when the flag was parsed.)
    pub fn labels(&self) -> anyhow::Result<kubeline_shared::labels::Labels> {
        kubeline_shared::labels::collect(&self.labels).map_err(|e| anyhow::anyhow!("--label: {e}"))
    }
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec![
            "agent",
            "--broker-url",
            "http://b",
            "--cluster-id",
            "c",
            "--token",
            "t",
        ];
        argv.extend(extra);
        Cli::try_parse_from(argv)
    }

    #[test]
    fn labels_from_flags() {
        Cli::command().debug_assert();
        let cli = parse(&["--label", "env=prod", "--label", "region=eu,tier=1"]).unwrap();
        let labels = cli.agent.labels().unwrap();
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [("env", "prod"), ("region", "eu"), ("tier", "1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse(&[]).unwrap().agent.labels().unwrap().is_empty());
    }

    #[test]
    fn bad_labels_are_refused_naming_the_flag() {
        let e = parse(&["--label", "env"]).unwrap_err().to_string();
        assert!(
            e.contains("--label") && e.contains("write KEY=VALUE"),
            "{e}"
        );
        let e = parse(&["--label=-x=1"]).unwrap_err().to_string();
        assert!(e.contains("--label") && e.contains("start and end"), "{e}");
        let e = parse(&["--label", "env=a", "--label", "env=b"])
            .unwrap()
            .agent
            .labels()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--label: ") && e.contains("given twice"),
            "{e}"
        );
        let many: Vec<String> = (0..33).map(|i| format!("--label=k{i}=v")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = parse(&many)
            .unwrap()
            .agent
            .labels()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--label: 33 labels given; at most 32"), "{e}");
    }
}
