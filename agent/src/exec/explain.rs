//! `explain`: field documentation from the OpenAPI v3 documents.

use kubeline_shared::command::Explain;

use super::{Executor, Outcome};

/// Runs `explain`. The parser refuses it until it is implemented, so this is not reached.
pub(super) async fn run(_ex: &Executor, _cmd: &Explain) -> Outcome {
    Outcome::failed("error: `explain` is not implemented by this agent yet".to_owned())
}
