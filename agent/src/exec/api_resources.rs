//! `api-resources`: the resource types the server serves.

use kubeline_shared::command::ApiResources;

use super::{Executor, Outcome};

/// Runs `api-resources`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &ApiResources) -> Outcome {
    Outcome::failed("error: `api-resources` is not implemented by this agent yet".to_owned())
}
