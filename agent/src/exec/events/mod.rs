//! `events`: events, as `kubectl events` lists them.

use kubeline_shared::command::Events;

use super::{Executor, Outcome};

/// Runs `events`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Events) -> Outcome {
    Outcome::failed("error: `events` is not implemented by this agent yet".to_owned())
}
