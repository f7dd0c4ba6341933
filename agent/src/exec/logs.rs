//! `logs`: container logs of a pod or of a workload's pods.

use kubeline_shared::command::Logs;

use super::{Executor, Outcome};

/// Runs `logs`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Logs) -> Outcome {
    Outcome::failed("error: `logs` is not implemented by this agent yet".to_owned())
}
