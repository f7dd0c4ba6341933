//! `rollout status|history`: a workload's rollout.

use kubeline_shared::command::Rollout;

use super::{Executor, Outcome};

/// Runs `rollout`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Rollout) -> Outcome {
    Outcome::failed("error: `rollout` is not implemented by this agent yet".to_owned())
}
