//! OTLP/HTTP (protobuf) export of kubeline's spans (cargo feature `otlp`, `--otlp-endpoint`).
//!
//! Only spans of kubeline's own crates are exported; the broker's `execute` span and the agent's
//! `command` span carry the caller's trace (see `kubeline_shared::trace`), so one trace spans the
//! caller, the broker and the agent. Spans are batched and sent from the SDK's own thread with a
//! blocking HTTP client (plain http; no TLS stack is linked for it).

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::telemetry::BoxedLayer;

/// Path of the traces signal under the collector's base URL (OTLP/HTTP).
const TRACES_PATH: &str = "/v1/traces";
/// How long finished spans wait to be sent, unless `OTEL_BSP_SCHEDULE_DELAY` says otherwise
/// (the SDK's default, 5 s, leaves a trace incomplete for long after its command).
const SCHEDULE_DELAY: Duration = Duration::from_secs(1);

/// The exporter; [`Exporter::shutdown`] sends what is still buffered.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("kubeline: OTLP export at shutdown failed: {e}");
        }
    }
}

/// The traces URL of a collector: `endpoint` is its base URL (`http://collector:4318`), or
/// already the full traces URL (ending in `/v1/traces`).
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with(TRACES_PATH) {
        endpoint.to_owned()
    } else {
        format!("{endpoint}{TRACES_PATH}")
    }
}

/// Builds the exporter and the layer that feeds it. Call outside the async runtime.
pub fn install(endpoint: &str, service: &str) -> anyhow::Result<(Exporter, BoxedLayer)> {
    let url = traces_url(endpoint);
    anyhow::ensure!(
        url.starts_with("http://"),
        "--otlp-endpoint {endpoint:?}: give an http:// URL (this build has no TLS for OTLP; send \
         to a collector next to kubeline, e.g. http://localhost:4318)"
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .with_context(|| format!("--otlp-endpoint {url}"))?;
    let mut batch = BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
        batch = batch.with_scheduled_delay(SCHEDULE_DELAY);
    }
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("kubeline");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("kubeline", LevelFilter::INFO))
        .boxed();
    Ok((Exporter(provider), layer))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_traces_path_is_added_once() {
        for (given, want) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(super::traces_url(given), want);
        }
    }
}
