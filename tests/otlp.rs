//! OTLP export end to end (cargo feature `otlp`): a real broker and agent on the test bed export
//! to an OTLP/HTTP receiver run here; one traced execute must arrive as one trace, the caller's,
//! with the agent's `command` span the child of the broker's `execute` span.

#![cfg(feature = "otlp")]

// The harness of the other integration tests (`tests/it`); this test is a binary of its own
// because it needs the `otlp` feature (scripts/test runs it with `--features otlp`).
#[path = "it/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::json;
use support::*;

/// A span as received: service, name, trace id, span id, parent span id (hex).
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Spans = Arc<Mutex<Vec<Received>>>;

async fn traces(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut got = spans.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(Received {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            });
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver on a free port: its base URL and what it has received.
async fn receiver() -> (String, Spans) {
    let spans = Spans::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test]
async fn one_trace_spans_broker_and_agent() {
    let (collector, spans) = receiver().await;
    let stack = Stack::build("otlp")
        .flags(&["--otlp-endpoint", &collector])
        .agent_with(&["--otlp-endpoint", &collector])
        .start()
        .await;
    let api = stack.api(0);

    let session = api.session().await;
    let trace_id = "5af92f3577b34da6a3ce929d0e0e4737";
    let caller_span = "00f067aa0ba902b7";
    let body = json!({"cluster_id": CLUSTER, "session_id": session, "command_type": "version", "args": []})
        .to_string();
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let (status, _, result) = api
        .post_raw("/debug/execute", &body, &[("traceparent", &traceparent)])
        .await
        .unwrap();
    assert_eq!(status, 200, "{result}");

    // Batched export: within a few seconds of the command.
    let (execute, command) = eventually("both spans exported", Duration::from_secs(30), || {
        let got = spans.lock().unwrap().clone();
        async move {
            let find = |name: &str| {
                got.iter()
                    .find(|s| s.name == name && s.trace_id == trace_id)
                    .cloned()
            };
            Some((find("execute")?, find("command")?))
        }
    })
    .await;
    assert_eq!(execute.parent_span_id, caller_span, "{execute:?}");
    assert_eq!(command.parent_span_id, execute.span_id, "{command:?}");
    assert!(execute.service.contains("kubeline-broker"), "{execute:?}");
    assert!(command.service.contains("kubeline-agent"), "{command:?}");
    // Nothing of the trace is dangling: every span of it hangs off the caller's span or another
    // span of it.
    let got = spans.lock().unwrap().clone();
    let ours: Vec<_> = got.iter().filter(|s| s.trace_id == trace_id).collect();
    for s in &ours {
        assert!(
            s.parent_span_id == caller_span || ours.iter().any(|p| p.span_id == s.parent_span_id),
            "{s:?} in {ours:#?}"
        );
    }
}
