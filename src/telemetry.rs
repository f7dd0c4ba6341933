//! Logging: `RUST_LOG` filters (default `info`; `warn` for the client commands), plain or JSON
//! lines on standard error; with the `otlp` feature and `--otlp-endpoint`, the command spans are
//! also exported over OTLP/HTTP.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// A layer of the global subscriber (under the `RUST_LOG` filter).
pub type BoxedLayer =
    Box<dyn Layer<tracing_subscriber::layer::Layered<EnvFilter, Registry>> + Send + Sync>;

/// Log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// What must outlive the program's work: the OTLP exporter and the log lines not yet written,
/// flushed by [`Telemetry::shutdown`] (or when dropped, for the log lines).
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    otlp: Option<crate::otlp::Exporter>,
    log: kubeline_broker::logging::Flusher,
}

impl Telemetry {
    /// Exports the spans still buffered (OTLP) and writes the last log lines; call once the
    /// work is done.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(otlp) = self.otlp {
            otlp.shutdown();
        }
        drop(self.log);
    }
}

/// Installs the global subscriber, filtered by `RUST_LOG`, else by `default_filter` (`info` for
/// the servers; the client commands keep standard error for their own messages). `otlp_endpoint` (`--otlp-endpoint`) turns on OTLP export of
/// spans as `service` (only in a build with the `otlp` feature; otherwise it is an error).
/// Call it outside the async runtime: the exporter's HTTP client is a blocking one.
pub fn init(
    format: Format,
    otlp_endpoint: Option<&str>,
    service: &str,
    default_filter: &str,
) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only on a terminal: a log file or a pipe (`| tee`, a collector) gets plain text.
    let (fmt, log): (BoxedLayer, _) =
        kubeline_broker::logging::stderr_layer(matches!(format, Format::Json));
    #[cfg(feature = "otlp")]
    let (otlp, otlp_layer) = match otlp_endpoint {
        Some(endpoint) => {
            let (exporter, layer) = crate::otlp::install(endpoint, service)?;
            (Some(exporter), Some(layer))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let otlp_layer: Option<BoxedLayer> = match otlp_endpoint {
        Some(_) => anyhow::bail!(
            "--otlp-endpoint (KUBELINE_OTLP_ENDPOINT) given for {service}, but this kubeline was \
             built without the `otlp` feature and cannot export traces: build it with `cargo \
             build --release --features otlp`, or drop the option"
        ),
        None => None,
    };
    let layers: Vec<BoxedLayer> = std::iter::once(fmt).chain(otlp_layer).collect();
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()?;
    Ok(Telemetry {
        #[cfg(feature = "otlp")]
        otlp,
        log,
    })
}
