//! The builder of a running kubeline (crates.io's `TestApp` is the model): a private Redis if
//! asked, one or more broker replicas, and the real agent on the test bed, started in that order
//! and waited for; everything stops when the [`Stack`] is dropped.
//!
//! ```ignore
//! let stack = Stack::build("streams").redis().replicas(2).agent().start().await;
//! let (a, b) = (stack.api(0), stack.api(1)); // the agent links to replica 0
//! ```

use super::{
    AGENT_TOKEN, Api, BrokerOpts, CLUSTER, Proc, Redis, start_agent_with, start_broker,
    wait_connected,
};

/// What to start; see [`Stack::build`].
#[must_use = "nothing runs until .start()"]
pub struct StackBuilder {
    name: String,
    redis: Store,
    replicas: usize,
    flags: Vec<String>,
    agent: Option<AgentSpec>,
}

enum Store {
    Embedded,
    /// A private `redis-server` the stack starts.
    Private,
    /// A Redis (or Redis Cluster) the test runs itself.
    Url(String),
}

struct AgentSpec {
    replica: usize,
    flags: Vec<String>,
}

/// Running processes: the store, the broker replicas (with an API client each, as the admin)
/// and the agent. Dropping it stops them all.
pub struct Stack {
    /// The private Redis, with [`StackBuilder::redis`].
    pub redis: Option<Redis>,
    /// The broker replicas, in order.
    pub brokers: Vec<Proc>,
    apis: Vec<Api>,
    /// The agent, with [`StackBuilder::agent`].
    pub agent: Option<Proc>,
}

impl Stack {
    /// Starts describing a stack; `name` prefixes its processes' log files.
    pub fn build(name: &str) -> StackBuilder {
        StackBuilder {
            name: name.to_owned(),
            redis: Store::Embedded,
            replicas: 1,
            flags: Vec::new(),
            agent: None,
        }
    }

    /// The admin's client of replica `i`.
    pub fn api(&self, i: usize) -> Api {
        self.apis[i].clone()
    }

    /// The agent process.
    pub fn agent(&mut self) -> &mut Proc {
        self.agent
            .as_mut()
            .expect("the stack was built with .agent()")
    }

    /// The private Redis.
    pub fn redis(&mut self) -> &mut Redis {
        self.redis
            .as_mut()
            .expect("the stack was built with .redis()")
    }
}

impl StackBuilder {
    /// The brokers share a private `redis-server` (started first).
    pub fn redis(mut self) -> Self {
        self.redis = Store::Private;
        self
    }

    /// The brokers use the store at `url` (a Redis Cluster, TLS, …) that the test runs.
    pub fn store_url(mut self, url: &str) -> Self {
        self.redis = Store::Url(url.to_owned());
        self
    }

    /// `n` broker replicas (more than one needs a shared store).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// More `kubeline broker` flags, for every replica.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|f| (*f).to_owned()));
        self
    }

    /// The real agent on the bed, as the test cluster, linked to replica 0.
    pub fn agent(self) -> Self {
        self.agent_with(&[])
    }

    /// Like [`StackBuilder::agent`], with more `kubeline agent` flags.
    pub fn agent_with(mut self, flags: &[&str]) -> Self {
        self.agent = Some(AgentSpec {
            replica: 0,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        });
        self
    }

    /// The agent links to replica `i` instead of 0.
    pub fn agent_on(mut self, i: usize) -> Self {
        self.agent.as_mut().expect("call .agent() first").replica = i;
        self
    }

    /// Starts the store, the replicas (each answering `/health`) and the agent; with an agent,
    /// returns once every replica reports the test cluster connected.
    pub async fn start(self) -> Stack {
        assert!(
            self.replicas == 1 || !matches!(self.redis, Store::Embedded),
            "replicas share a store: add .redis()"
        );
        let redis = match self.redis {
            Store::Private => Some(Redis::start().await),
            _ => None,
        };
        let url = match (&self.redis, &redis) {
            (Store::Url(url), _) => Some(url.clone()),
            (_, Some(redis)) => Some(redis.url()),
            _ => None,
        };
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        let mut brokers = Vec::new();
        let mut apis = Vec::new();
        for i in 0..self.replicas {
            let name = match self.replicas {
                1 => self.name.clone(),
                _ => format!("{}-{}", self.name, char::from(b'a' + i as u8)),
            };
            let mut opts = BrokerOpts::embedded().with(&flags);
            opts.redis_url = url.clone();
            let (proc, api) = start_broker(&name, opts).await;
            brokers.push(proc);
            apis.push(api);
        }
        let agent = match &self.agent {
            Some(spec) => {
                let flags: Vec<&str> = spec.flags.iter().map(String::as_str).collect();
                let agent = start_agent_with(
                    &format!("{}-agent", self.name),
                    apis[spec.replica].port(),
                    CLUSTER,
                    AGENT_TOKEN,
                    &flags,
                );
                for api in &apis {
                    wait_connected(api).await;
                }
                Some(agent)
            }
            None => None,
        };
        Stack {
            redis,
            brokers,
            apis,
            agent,
        }
    }
}
