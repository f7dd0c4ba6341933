//! Runs parsed commands against the local API server with `kube`, printing what kubectl prints.

use kubeline_shared::command::Command;

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

/// Runs commands with one shared API client.
#[derive(Clone)]
pub struct Executor {
    client: kube::Client,
}

impl Executor {
    /// Builds an executor over a client for the local cluster.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// The API server's `gitVersion`, if it answers.
    pub async fn kubernetes_version(&self) -> Option<String> {
        self.client
            .apiserver_version()
            .await
            .ok()
            .map(|v| v.git_version)
    }

    /// Runs one command to completion.
    pub async fn run(&self, command: &Command) -> Outcome {
        match command {
            Command::Version => match self.client.apiserver_version().await {
                Ok(v) => Outcome {
                    output: format!("Server Version: {}\n", v.git_version),
                    error: None,
                    exit_code: 0,
                },
                Err(e) => Outcome {
                    output: String::new(),
                    error: Some(e.to_string()),
                    exit_code: 1,
                },
            },
        }
    }
}
