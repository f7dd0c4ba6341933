//! `api-versions`: every group/version the server serves, sorted, one per line (kubectl
//! `pkg/cmd/apiresources/apiversions.go`).

use kubeline_shared::command::ApiVersions;

use crate::exec::{Executor, Outcome};

pub(crate) async fn run(ex: &Executor, _cmd: &ApiVersions) -> Outcome {
    match ex.server_resources().await {
        Ok(resources) => {
            let mut output = String::new();
            for gv in resources.group_versions() {
                output.push_str(&gv);
                output.push('\n');
            }
            Outcome {
                output,
                error: None,
                exit_code: 0,
            }
        }
        Err(e) => Outcome::failed(format!(
            "error: couldn't get available api versions from server: {}",
            e.kubectl_message()
        )),
    }
}
