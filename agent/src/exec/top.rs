//! `top nodes|pods`: resource usage from `metrics.k8s.io`.

use kubeline_shared::command::Top;

use super::{Executor, Outcome};

/// Runs `top`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Top) -> Outcome {
    Outcome::failed("error: `top` is not implemented by this agent yet".to_owned())
}
