//! `api-versions`: the group/versions the server serves.

use kubeline_shared::command::ApiVersions;

use super::{Executor, Outcome};

/// Runs `api-versions`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &ApiVersions) -> Outcome {
    Outcome::failed("error: `api-versions` is not implemented by this agent yet".to_owned())
}
