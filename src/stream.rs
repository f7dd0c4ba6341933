//! `kubeline kubectl` for the commands that keep running (`logs -f`, `get -w`, `events -w`,
//! `rollout status -w`): the broker's `GET /debug/stream` WebSocket, its output printed as it
//! arrives, until the stream ends or the operator presses Ctrl-C (which cancels the command on
//! the agent).
//!
//! Exit status: the command's own exit code when it ended on its own (`done`), 124 when the
//! stream reached its lifetime (`--timeout`, as `timeout(1)` says), 130 on Ctrl-C, and the
//! CLI's codes for the rest (see `ops::exit`).

use std::io::Write;
use std::process::ExitCode;

use futures::{SinkExt, StreamExt};
use kubeline_agent::tls::ClientTls;
use kubeline_shared::api::{StreamEnd, StreamEndReason, StreamFrame};
use kubeline_shared::command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::client::{ClientError, decode};
use crate::config::Target;
use crate::ops::exit;

/// Exit status of a stream that reached its lifetime, as `timeout(1)` gives.
const EXIT_LIFETIME: u8 = 124;
/// Exit status after Ctrl-C, as a shell reports SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// Whether `command_type args` keeps running, so it is streamed rather than executed once: the
/// one-shot parser refuses it and the stream parser takes it.
pub fn streams(command_type: &str, args: &[String]) -> bool {
    command::parse(command_type, args).is_err() && command::parse_stream(command_type, args).is_ok()
}

/// What a stream asks for.
pub struct StreamRequest<'a> {
    pub cluster: &'a str,
    pub session_id: &'a str,
    pub command_type: &'a str,
    pub args: &'a [String],
    /// Lifetime in seconds (`--timeout`).
    pub max_seconds: Option<u64>,
    /// Byte budget (`--max-output-bytes`).
    pub max_bytes: Option<u64>,
}

/// A stream that could not start, or the link to the broker that failed.
pub enum StreamError {
    /// The broker refused it (an HTTP error before the upgrade) or could not be reached.
    Client(ClientError),
    /// The WebSocket failed after it opened.
    Broken(String),
}

/// Runs a stream and prints it; gives the exit status.
pub async fn run(target: &Target, request: StreamRequest<'_>) -> Result<ExitCode, StreamError> {
    let mut url = reqwest::Url::parse(&target.broker)
        .map_err(|e| StreamError::Broken(format!("bad broker URL: {e}")))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| StreamError::Broken("bad broker URL".into()))?;
    url.set_path("/debug/stream");
    {
        let args = serde_json::to_string(request.args).expect("strings serialize");
        let mut query = url.query_pairs_mut();
        query
            .append_pair("cluster_id", request.cluster)
            .append_pair("session_id", request.session_id)
            .append_pair("command_type", request.command_type)
            .append_pair("args", &args);
        if let Some(s) = request.max_seconds {
            query.append_pair("max_seconds", &s.to_string());
        }
        if let Some(b) = request.max_bytes {
            query.append_pair("max_bytes", &b.to_string());
        }
    }
    let url = url.to_string();
    let mut upgrade = url
        .as_str()
        .into_client_request()
        .map_err(|e| StreamError::Broken(format!("bad stream URL: {e}")))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", target.api_key)).map_err(|_| {
        StreamError::Broken("the API key contains characters not allowed in a header".into())
    })?;
    upgrade.headers_mut().insert("authorization", bearer);
    let tls = match &target.ca_file {
        Some(path) => {
            ClientTls::ca_file(path).map_err(|e| StreamError::Broken(format!("--ca-file: {e}")))?
        }
        None => ClientTls::system(),
    };
    let connected = tokio_tungstenite::connect_async_tls_with_config(
        upgrade,
        None,
        false,
        tls.connector_for(&url),
    )
    .await;
    let mut socket = match connected {
        Ok((socket, _)) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let refused = decode::<serde_json::Value>(
                "GET /debug/stream",
                &target.broker,
                response.status().as_u16(),
                retry_after,
                &body,
            );
            return Err(StreamError::Client(match refused {
                Err(e) => e,
                Ok(_) => ClientError::Unexpected {
                    url: target.broker.clone(),
                    status: response.status().as_u16(),
                    what: "a success instead of a WebSocket upgrade".into(),
                },
            }));
        }
        Err(e) => {
            let cause = tls.explain(&url, &e).unwrap_or_else(|| e.to_string());
            return Err(StreamError::Client(ClientError::Unreachable {
                url: target.broker.clone(),
                cause,
            }));
        }
    };
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = &mut interrupt, if !interrupted => {
                // Stop the command on the agent, then read to the end frame the broker sends.
                interrupted = true;
                let cancel = Message::Text(r#"{"type":"cancel"}"#.into());
                if socket.send(cancel).await.is_err() {
                    return Ok(ExitCode::from(EXIT_INTERRUPTED));
                }
                continue;
            }
        };
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => {
                return Err(StreamError::Broken(
                    "the broker closed the stream without saying why".into(),
                ));
            }
            Some(Err(e)) => return Err(StreamError::Broken(format!("the stream broke: {e}"))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<StreamFrame>(&text) {
            Ok(StreamFrame::Started(_)) => {}
            Ok(StreamFrame::Output { data }) => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(data.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // Nobody reads our output any more (`| head`): stop the command.
                    let _ = socket.close(None).await;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(StreamFrame::Dropped { bytes }) => {
                eprintln!(
                    "kubeline: {bytes} bytes of output were dropped here: this terminal read more \
                     slowly than the command wrote"
                );
            }
            Ok(StreamFrame::End(end)) => return Ok(ended(&end, interrupted)),
            Err(e) => {
                return Err(StreamError::Broken(format!(
                    "the broker sent a frame this CLI does not understand ({e}); is the CLI \
                     older than the broker?"
                )));
            }
        }
    }
}

/// Says how a stream ended on standard error; gives the exit status.
fn ended(end: &StreamEnd, interrupted: bool) -> ExitCode {
    let error = end.error.as_deref().unwrap_or("").trim_end();
    let code = match end.reason {
        StreamEndReason::Done => {
            if !error.is_empty() {
                eprintln!("{error}");
            }
            return ExitCode::from(
                end.exit_code
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(1),
            );
        }
        StreamEndReason::Cancelled if interrupted => EXIT_INTERRUPTED,
        StreamEndReason::Cancelled => exit::BROKER_ERROR,
        StreamEndReason::Budget => {
            eprintln!(
                "kubeline: the stream used up its output budget ({} bytes sent); narrow the \
                 command or pass --max-output-bytes",
                end.bytes
            );
            return ExitCode::SUCCESS;
        }
        StreamEndReason::Lifetime => EXIT_LIFETIME,
        StreamEndReason::AgentLost => exit::UNAVAILABLE,
        StreamEndReason::CredentialEnded => exit::UNAUTHORIZED,
        StreamEndReason::SlowConsumer | StreamEndReason::Shutdown => exit::UNAVAILABLE,
    };
    if !error.is_empty() && !interrupted {
        eprintln!("kubeline: {error}");
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn only_commands_that_keep_running_are_streamed() {
        for (command, args) in [
            ("logs", "deploy/web -f"),
            ("logs", "web --follow --tail=5"),
            ("get", "pods -w"),
            ("get", "pods --watch-only"),
            ("events", "-w"),
            ("rollout", "status deploy/web -w"),
        ] {
            assert!(streams(command, &argv(args)), "{command} {args}");
        }
        for (command, args) in [
            ("logs", "deploy/web"),
            ("get", "pods"),
            ("rollout", "status deploy/web --watch=false"),
            ("rollout", "status deploy/web"),
            ("describe", "pods"),
            ("get", "pods --token=x"),
        ] {
            assert!(!streams(command, &argv(args)), "{command} {args}");
        }
    }
}
