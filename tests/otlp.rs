//! Traces as a collector receives them: the `rootwarden` binary exports over OTLP/HTTP to a
//! receiver in this test, which decodes the protobuf requests (opentelemetry-proto). One job
//! must arrive as its span tree under the producer's `traceparent`, with the attributes
//! DESIGN.md promises, and no root session secret may appear in a span or a log line. README's
//! configuration promises are checked too: `telemetry.otlp_endpoint` alone turns export on, and
//! the resource carries `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and `service.version`.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

/// Everything the receiver got: the raw request bodies and the decoded requests.
#[derive(Default)]
struct Received {
    bodies: Vec<Vec<u8>>,
    requests: Vec<ExportTraceServiceRequest>,
}

/// A minimal OTLP/HTTP trace receiver (`POST /v1/traces`, binary protobuf).
struct OtlpReceiver {
    endpoint: String,
    received: Arc<Mutex<Received>>,
}

impl OtlpReceiver {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/v1/traces", post(export)).with_state(received.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { endpoint, received }
    }

    /// Every span received, with its resource's attributes.
    fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        let received = self.received.lock().unwrap();
        let mut spans = Vec::new();
        for request in &received.requests {
            for resource_spans in &request.resource_spans {
                let resource = resource_spans.resource.clone().map(|r| r.attributes).unwrap_or_default();
                for scope_spans in &resource_spans.scope_spans {
                    spans.extend(scope_spans.spans.iter().map(|s| (resource.clone(), s.clone())));
                }
            }
        }
        spans
    }

    /// The raw bodies, concatenated: protobuf stores strings as plain UTF-8, so a secret in any
    /// span name, attribute, event or status would show up here.
    fn raw(&self) -> Vec<u8> {
        self.received.lock().unwrap().bodies.concat()
    }
}

async fn export(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(content_type, "application/x-protobuf", "the exporter speaks OTLP/HTTP binary protobuf");
    assert!(headers.get(header::CONTENT_ENCODING).is_none(), "uncompressed export expected");
    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("a valid ExportTraceServiceRequest");
    let mut received = received.lock().unwrap();
    received.bodies.push(body.to_vec());
    received.requests.push(request);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// A TCP proxy in front of the local AWS environment that keeps a copy of every response. The
/// daemon talks to AWS through it, so the test learns the exact SecretAccessKey and SessionToken
/// that AssumeRoot handed the daemon, without taking part in the exchange.
struct TeeProxy {
    endpoint: String,
    responses: Arc<Mutex<Vec<u8>>>,
}

impl TeeProxy {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let responses = Arc::new(Mutex::new(Vec::new()));
        let recorded = responses.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                });
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(n) = server_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        recorded.lock().unwrap().extend_from_slice(&buffer[..n]);
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                });
            }
        });
        Self { endpoint, responses }
    }

    /// The text of every `<tag>…</tag>` element in the responses so far.
    fn elements(&self, tag: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.responses.lock().unwrap()).into_owned();
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        text.split(open.as_str())
            .skip(1)
            .filter_map(|rest| rest.split_once(close.as_str()).map(|(v, _)| v.to_owned()))
            .collect()
    }
}

/// A W3C traceparent with fresh random ids: (header, trace id bytes, span id bytes).
fn upstream_traceparent() -> (String, Vec<u8>, Vec<u8>) {
    let trace_id: u128 = rand::random::<u128>() | 1;
    let span_id: u64 = rand::random::<u64>() | 1;
    (
        format!("00-{trace_id:032x}-{span_id:016x}-01"),
        trace_id.to_be_bytes().to_vec(),
        span_id.to_be_bytes().to_vec(),
    )
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

/// Whether `span` is below `ancestor` in the tree of `spans`.
fn descends_from(span: &Span, ancestor: &[u8], spans: &[Span]) -> bool {
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let mut current = span;
    for _ in 0..64 {
        if current.parent_span_id == ancestor {
            return true;
        }
        match by_id.get(current.parent_span_id.as_slice()) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// The JSON log lines inside the job span of message `message_id`, each with that span's fields.
fn job_log_lines(log: &str, message_id: &str) -> Vec<(String, Value)> {
    log.lines()
        .filter_map(|line| {
            let parsed: Value = serde_json::from_str(line).ok()?;
            let job =
                parsed["spans"].as_array()?.iter().find(|s| s["name"] == "job" && s["messaging.message.id"] == message_id)?;
            Some((line.to_owned(), job.clone()))
        })
        .collect()
}

fn describe(spans: &[Span]) -> String {
    spans.iter().map(|s| format!("{} {:?}", s.name, attributes(&s.attributes))).collect::<Vec<_>>().join("\n")
}

/// What one run of the binary left behind.
struct Run {
    receiver: OtlpReceiver,
    result: Value,
    message_id: String,
    log: String,
    proxy: Option<TeeProxy>,
    _local: LocalAws,
}

/// Where the binary learns the receiver's address.
#[derive(Clone, Copy)]
enum Endpoint {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`
    Environment,
    /// `telemetry.otlp_endpoint` in the configuration file
    Configuration,
}

/// Runs the binary with OTLP export to a receiver (and, with `through_proxy`, AWS behind a
/// `TeeProxy`), posts one S3 unlock carrying `traceparent`, waits for its result, and stops the
/// daemon with SIGTERM: the exporter flushes its spans on the way out.
async fn run_one_job(rust_log: &str, through_proxy: bool, traceparent: &str) -> Run {
    run_one_job_with(
        Endpoint::Environment,
        &[("OTEL_SERVICE_NAME", "rootwarden-test"), ("RUST_LOG", rust_log)],
        through_proxy,
        traceparent,
    )
    .await
}

/// [`run_one_job`], the endpoint given through `endpoint`, and `env` the child's only other
/// variables.
async fn run_one_job_with(endpoint: Endpoint, env: &[(&str, &str)], through_proxy: bool, traceparent: &str) -> Run {
    let local = LocalAws::start();
    let seed = local.seed(2, 1, 0);
    let (bucket, account) = seed.locked_buckets().remove(0);
    let receiver = OtlpReceiver::start().await;
    // `config_toml` puts the extra lines in its [telemetry] section.
    let telemetry = match endpoint {
        Endpoint::Configuration => format!("otlp_endpoint = \"{}\"", receiver.endpoint),
        Endpoint::Environment => String::new(),
    };
    let mut config = config_toml(&local, &seed, &telemetry);
    assert!(config.contains(&format!("[telemetry]\nlisten = \"127.0.0.1:0\"\n{telemetry}\n")));
    let proxy = if through_proxy { Some(TeeProxy::start(&local.endpoint).await) } else { None };
    if let Some(proxy) = &proxy {
        let direct = format!("endpoint_url = \"{}\"", local.endpoint);
        assert!(config.contains(&direct));
        config = config.replace(&direct, &format!("endpoint_url = \"{}\"", proxy.endpoint));
    }
    let mut env = env.to_vec();
    if let Endpoint::Environment = endpoint {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()));
    }
    let mut daemon = DaemonProcess::start(&config, &env);
    let queues = Queues::new(&local, &seed).await;
    let body = job("otlp-unlock", &account, "S3UnlockBucketPolicy", json!({"bucket": bucket}));
    let message_id = queues.send_with(&body, Some(traceparent)).await;
    let result = queues.results(1, WAIT).await.remove(0);
    assert_eq!(result["outcome"], "succeeded", "{result}");
    daemon.signal("TERM");
    let status = tokio::task::block_in_place(|| daemon.wait(Duration::from_secs(30)));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    // Exited and its log readers joined: every line is in.
    let log = daemon.log();
    Run { receiver, result, message_id, log, proxy, _local: local }
}

/// The one `rootwarden.job` span of the trace `trace_id`, and the resource attributes of every
/// span received (after checking that some arrived).
fn job_span_and_resources(run: &Run, trace_id: &[u8]) -> (Span, Vec<HashMap<String, String>>) {
    let with_resources = run.receiver.spans();
    assert!(!with_resources.is_empty(), "no span was exported\n{}", run.log);
    let spans: Vec<Span> = with_resources.iter().map(|(_, s)| s.clone()).collect();
    let jobs: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id && s.name == "rootwarden.job").collect();
    assert_eq!(jobs.len(), 1, "one job span in the upstream trace; exported:\n{}", describe(&spans));
    let resources = with_resources.iter().map(|(resource, _)| attributes(resource)).collect();
    (jobs[0].clone(), resources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_is_exported_as_its_span_tree_under_the_upstream_trace() {
    let (traceparent, trace_id, parent_span_id) = upstream_traceparent();
    // The default filter, as in production: the AWS call spans must not depend on debug logging.
    let Run { receiver, result, message_id, log, .. } = run_one_job("info", false, &traceparent).await;

    let with_resources = receiver.spans();
    assert!(!with_resources.is_empty(), "no span was exported\n{log}");
    for (resource, span) in &with_resources {
        let resource = attributes(resource);
        assert_eq!(resource.get("service.name").map(String::as_str), Some("rootwarden-test"), "{} {resource:?}", span.name);
    }
    let spans: Vec<Span> = with_resources.into_iter().map(|(_, s)| s).collect();
    let trace: Vec<Span> = spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect();

    // The job span continues the producer's trace.
    let jobs: Vec<&Span> = trace.iter().filter(|s| s.name == "rootwarden.job").collect();
    assert_eq!(jobs.len(), 1, "one job span in the upstream trace; exported:\n{}", describe(&spans));
    let job_span = jobs[0];
    assert_eq!(job_span.parent_span_id, parent_span_id, "the job span's parent is the upstream span");
    assert_eq!(job_span.kind, SpanKind::Consumer as i32);
    let job_attributes = attributes(&job_span.attributes);
    let expected = [
        ("messaging.system", "aws_sqs"),
        ("messaging.operation", "process"),
        ("messaging.message.id", message_id.as_str()),
        ("cloud.account.id", result["account_id"].as_str().unwrap()),
        ("rootwarden.task", "S3UnlockBucketPolicy"),
        ("rootwarden.job_id", "otlp-unlock"),
        ("rootwarden.outcome", "succeeded"),
        ("rootwarden.root_session.access_key_id", result["root_session_access_key_id"].as_str().unwrap()),
    ];
    for (key, value) in expected {
        assert_eq!(job_attributes.get(key).map(String::as_str), Some(value), "job span attribute {key}: {job_attributes:?}");
    }
    assert!(job_attributes["rootwarden.root_session.access_key_id"].starts_with("ASIA"));

    // The job's JSON log lines name the trace a collector holds: the producer's.
    let trace_hex: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    let job_lines = job_log_lines(&log, &message_id);
    assert!(!job_lines.is_empty(), "no log line of the job\n{log}");
    for (line, job) in &job_lines {
        assert_eq!(job["trace_id"], trace_hex.as_str(), "{line}");
    }

    // AssumeRoot and every AWS call of the job are below the job span, with the RPC attributes.
    let rpc: Vec<&Span> =
        trace.iter().filter(|s| attributes(&s.attributes).get("rpc.system").is_some_and(|v| v == "aws-api")).collect();
    let names: Vec<&str> = rpc.iter().map(|s| s.name.as_str()).collect();
    for name in ["sts.AssumeRoot", "s3.GetBucketPolicy", "s3.DeleteBucketPolicy"] {
        assert!(names.contains(&name), "no {name} span in the job's trace; its spans:\n{}", describe(&trace));
    }
    for span in &rpc {
        let attrs = attributes(&span.attributes);
        let (service, method) = span.name.split_once('.').unwrap();
        assert_eq!(attrs.get("rpc.service").map(String::as_str), Some(service), "{} {attrs:?}", span.name);
        assert_eq!(attrs.get("rpc.method").map(String::as_str), Some(method), "{} {attrs:?}", span.name);
        assert_eq!(span.kind, SpanKind::Client as i32, "{} is a client span", span.name);
        assert!(descends_from(span, &job_span.span_id, &trace), "{} is not below the job span", span.name);
    }
}

/// The root session's SecretAccessKey and SessionToken must appear nowhere the daemon writes:
/// not in an exported span, not in a log line, even at RUST_LOG=trace.
///
/// How the secrets are known: the daemon reaches the local AWS environment through `TeeProxy`,
/// which keeps a copy of every response, so the exact values in AssumeRoot's
/// `<SecretAccessKey>` and `<SessionToken>` elements are searched for. As a second net, the
/// local environment's session tokens all start with moto's fixed prefix (`FQoGZXIvYXdzEBYaD`,
/// `moto.sts.utils.SESSION_TOKEN_PREFIX`), which is searched for too, so a token would be
/// caught even if the proxy missed a response. Secret keys have no such prefix (40 random
/// base64 characters, `localaws/assume_root.py`), and a pattern for them would also match
/// signatures and hashes, so they are only checked by exact value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_session_secrets_stay_out_of_traces_and_logs() {
    const MOTO_SESSION_TOKEN_PREFIX: &str = "FQoGZXIvYXdzEBYaD";
    let (traceparent, trace_id, _) = upstream_traceparent();
    let run = run_one_job("trace", true, &traceparent).await;
    let proxy = run.proxy.as_ref().unwrap();

    let secret_keys = proxy.elements("SecretAccessKey");
    let tokens = proxy.elements("SessionToken");
    assert_eq!(secret_keys.len(), 1, "the test saw the one AssumeRoot answer");
    assert_eq!(tokens.len(), 1, "the test saw the one AssumeRoot answer");
    assert!(tokens[0].starts_with(MOTO_SESSION_TOKEN_PREFIX), "the local environment's token format changed");
    assert!(secret_keys[0].len() >= 16 && tokens[0].len() >= 16);
    // The run did produce what is being searched: spans of the job and a verbose log.
    assert!(run.receiver.spans().iter().any(|(_, s)| s.trace_id == trace_id && s.name == "rootwarden.job"));
    assert!(run.log.lines().count() > 50, "a RUST_LOG=trace log is verbose:\n{}", run.log);

    let spans = String::from_utf8_lossy(&run.receiver.raw()).into_owned();
    let mut leaks = Vec::new();
    for (what, needle) in [
        ("the SecretAccessKey", secret_keys[0].as_str()),
        ("the SessionToken", tokens[0].as_str()),
        ("a local session token (by its prefix)", MOTO_SESSION_TOKEN_PREFIX),
    ] {
        if spans.contains(needle) {
            leaks.push(format!("{what} is in the exported spans"));
        }
        for line in run.log.lines().filter(|line| line.contains(needle)) {
            leaks.push(format!("{what} is in a log line: {line}"));
        }
    }
    assert!(leaks.is_empty(), "root session secrets leaked:\n{}", leaks.join("\n"));
}

/// README, configuration: `telemetry.otlp_endpoint` turns export on as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` does. Only the configuration file names the receiver here, and
/// the job's spans arrive with the default resource. `OTEL_EXPORTER_OTLP_ENDPOINT` and
/// `OTEL_SERVICE_NAME` are set empty, which OpenTelemetry reads as unset: so a variable in the
/// test's own environment cannot stand in for the key, and an empty name is no name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_key_alone_turns_on_trace_export() {
    let (traceparent, trace_id, parent_span_id) = upstream_traceparent();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", ""), ("OTEL_SERVICE_NAME", "")];
    let run = run_one_job_with(Endpoint::Configuration, &env, false, &traceparent).await;

    let (job_span, resources) = job_span_and_resources(&run, &trace_id);
    assert_eq!(job_span.parent_span_id, parent_span_id, "the job span's parent is the upstream span");
    let job_attributes = attributes(&job_span.attributes);
    assert_eq!(job_attributes.get("rootwarden.job_id").map(String::as_str), Some("otlp-unlock"), "{job_attributes:?}");
    assert_eq!(job_attributes.get("messaging.message.id"), Some(&run.message_id), "{job_attributes:?}");
    let names: Vec<String> =
        run.receiver.spans().into_iter().filter(|(_, s)| s.trace_id == trace_id).map(|(_, s)| s.name).collect();
    assert!(names.iter().any(|n| n == "sts.AssumeRoot"), "the AWS call spans come too: {names:?}");
    for resource in &resources {
        assert_eq!(resource.get("service.name").map(String::as_str), Some("rootwarden"), "{resource:?}");
        assert_eq!(resource.get("service.version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")), "{resource:?}");
    }
    assert_eq!(run.result["root_session_access_key_id"], job_attributes["rootwarden.root_session.access_key_id"].as_str());
}

/// README, "Logs and traces": `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are honored.
/// Every exported span's resource carries the attributes and `service.version`, and the service
/// name is `OTEL_SERVICE_NAME`'s, which takes precedence over a `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES` (OpenTelemetry's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_carries_otel_service_name_and_otel_resource_attributes() {
    let (traceparent, trace_id, _) = upstream_traceparent();
    let env = [
        ("OTEL_SERVICE_NAME", "rootwarden-staging"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,team=security,service.name=overridden-by-otel-service-name",
        ),
    ];
    let run = run_one_job_with(Endpoint::Environment, &env, false, &traceparent).await;

    let (_, resources) = job_span_and_resources(&run, &trace_id);
    let expected = [
        ("service.name", "rootwarden-staging"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("deployment.environment", "test"),
        ("team", "security"),
    ];
    for resource in &resources {
        for (key, value) in expected {
            assert_eq!(resource.get(key).map(String::as_str), Some(value), "resource attribute {key}: {resource:?}");
        }
    }
}

/// Without `OTEL_SERVICE_NAME`, a `service.name` in `OTEL_RESOURCE_ATTRIBUTES` names the
/// service; `rootwarden` is only the default when neither variable names one
/// (`the_configuration_key_alone_turns_on_trace_export`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_name_in_otel_resource_attributes_stands_without_otel_service_name() {
    let (traceparent, trace_id, _) = upstream_traceparent();
    let env = [("OTEL_RESOURCE_ATTRIBUTES", "service.name=rootwarden-payments,team=security")];
    let run = run_one_job_with(Endpoint::Environment, &env, false, &traceparent).await;

    let (_, resources) = job_span_and_resources(&run, &trace_id);
    for resource in &resources {
        assert_eq!(resource.get("service.name").map(String::as_str), Some("rootwarden-payments"), "{resource:?}");
        assert_eq!(resource.get("team").map(String::as_str), Some("security"), "{resource:?}");
        assert_eq!(resource.get("service.version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")), "{resource:?}");
    }
}
