//! `describe`: a detailed, human description of objects with their events.

use kubeline_shared::command::Describe;

use super::{Executor, Outcome};

/// Runs `describe`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Describe) -> Outcome {
    Outcome::failed("error: `describe` is not implemented by this agent yet".to_owned())
}
