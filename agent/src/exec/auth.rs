//! `auth can-i`: what the agent's identity may do.

use kubeline_shared::command::Auth;

use super::{Executor, Outcome};

/// Runs `auth`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Auth) -> Outcome {
    Outcome::failed("error: `auth` is not implemented by this agent yet".to_owned())
}
