//! Logs and traces: a `tracing` subscriber writing JSON (or pretty) lines, with an
//! OpenTelemetry layer that exports spans over OTLP/HTTP when an endpoint is configured.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};

/// Keeps the tracer provider alive; dropping it flushes pending spans (on shutdown).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("rootwarden: flushing traces failed: {error}");
        }
    }
}

/// Installs the process-wide subscriber. `env` is the process environment (`RUST_LOG`,
/// `OTEL_*`), passed in so the caller decides where it comes from.
pub fn init(config: &TelemetryConfig, env: &HashMap<String, String>) -> anyhow::Result<TelemetryGuard> {
    let provider = tracer_provider(config, env)?;
    // Traces keep rootwarden's own spans whatever RUST_LOG says: quieter logs must not cost
    // the traces their job and AWS call spans.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rootwarden"))
        .with_filter(EnvFilter::new("rootwarden=info"));
    // RUST_LOG chooses the lines; the lines keep the fields of the rootwarden spans they are in
    // (job id, trace id, …) whatever it says, so those spans always reach the log layer. A span
    // alone writes no line.
    let log_filter = || {
        let lines =
            EnvFilter::try_new(env.get("RUST_LOG").map_or("info", String::as_str)).unwrap_or_else(|_| EnvFilter::new("info"));
        let our_spans = filter_fn(|meta| {
            meta.is_span()
                && *meta.level() <= Level::INFO
                && (meta.target() == "rootwarden" || meta.target().starts_with("rootwarden::"))
        });
        lines.or(our_spans.with_max_level_hint(Level::INFO))
    };
    let registry = tracing_subscriber::registry().with(otel_layer);
    match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_filter(log_filter()),
            )
            .try_init()?,
        LogFormat::Pretty => {
            // Colours only on a terminal: a file or journald would keep the escape codes.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let layer = tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi);
            registry.with(layer.with_filter(log_filter())).try_init()?
        }
    }
    Ok(TelemetryGuard { provider })
}

/// Spans always get trace ids (log lines carry them); they leave the process only when an OTLP
/// endpoint is set in the configuration or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn tracer_provider(config: &TelemetryConfig, env: &HashMap<String, String>) -> anyhow::Result<SdkTracerProvider> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(env));
    let from_env = env.get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.is_empty());
    if !config.otlp_endpoint.is_empty() || from_env.is_some() {
        use opentelemetry_otlp::WithExportConfig;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if !config.otlp_endpoint.is_empty() {
            let base = config.otlp_endpoint.trim_end_matches('/');
            exporter = exporter.with_endpoint(format!("{base}/v1/traces"));
        }
        builder = builder.with_batch_exporter(exporter.build()?);
    }
    Ok(builder.build())
}

/// The exported resource: the SDK's attributes and `OTEL_RESOURCE_ATTRIBUTES` (its detectors),
/// `service.version`, and the service name by OpenTelemetry's precedence: `OTEL_SERVICE_NAME`,
/// else a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `rootwarden`. An empty variable
/// counts as unset. (The SDK alone would let the attribute override `OTEL_SERVICE_NAME`.)
fn resource(env: &HashMap<String, String>) -> opentelemetry_sdk::Resource {
    let set = |key: &str| env.get(key).map(|value| value.trim()).filter(|value| !value.is_empty());
    let from_attributes = || {
        // Parsed as the SDK's detector parses it: `key=value` entries, the last one winning.
        set("OTEL_RESOURCE_ATTRIBUTES")?
            .split_terminator(',')
            .rev()
            .filter_map(|entry| entry.split_once('='))
            .find(|(key, _)| key.trim() == "service.name")
            .map(|(_, value)| value.trim())
    };
    let service_name = set("OTEL_SERVICE_NAME").or_else(from_attributes).unwrap_or("rootwarden");
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Makes `span` a child of the producer's W3C `traceparent`, so a ticket's trace continues into
/// the job, and records the trace id on the span for log lines.
pub fn link_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}
