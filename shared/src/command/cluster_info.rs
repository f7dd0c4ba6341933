//! `cluster-info`: where the control plane and the cluster services run.
//!
//! Only the summary is supported; `cluster-info dump` writes every object and log of the cluster
//! and is refused.

use super::flags::{self, FlagSpec};
use super::{CommandError, namespace_value};

const FLAGS: &[FlagSpec] = &[FlagSpec::value("namespace", Some('n'))];

/// A parsed `cluster-info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    /// `-n/--namespace` to look for cluster services in; `None` means `kube-system`.
    pub namespace: Option<String>,
}

pub(super) fn parse(args: &[String]) -> Result<ClusterInfo, CommandError> {
    let scanned = flags::scan("cluster-info", args, FLAGS)?;
    if let Some(p) = scanned.positionals.first() {
        return Err(if p == "dump" {
            CommandError::new(
                "unsupported_command",
                Some(p.clone()),
                "`cluster-info dump` is not supported: it dumps every object and log of the \
                 cluster; use `get` on what you need"
                    .to_string(),
            )
        } else {
            CommandError::new(
                "unexpected_argument",
                Some(p.clone()),
                format!("`cluster-info` takes no arguments, got `{p}`"),
            )
        });
    }
    let namespace = scanned.last("namespace").map(namespace_value).transpose()?;
    Ok(ClusterInfo { namespace })
}
