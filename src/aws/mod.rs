//! AWS plumbing: one SDK configuration (and so one HTTP connection pool) for every client, the
//! clients a root session needs, and the classification of AWS errors into retry, expiry or
//! permanent failure, each with the sentence a person reads: the cause, found in the SDK's error
//! chain, and what to do next.
//!
//! - `error`: the error of a failed call and its classification; `explain`: its sentence, the
//!   cause and what to do next; `diagnose`: the cause found in the SDK's error chain.
//! - `endpoint`: the HTTP client whose connection errors name the endpoint; `credentials`: the
//!   credentials provider that tells lapsed credentials from missing ones.

mod credentials;
mod diagnose;
mod endpoint;
mod error;
mod explain;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicBool;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::result::SdkError;
use tracing::Instrument;

use crate::config::AwsConfig;
use crate::metrics::Metrics;
use credentials::Renewing;
use endpoint::EndpointNaming;
pub use error::{AwsCallError, ErrorClass, RawResponse, classify};

/// Builds the SDK configuration all clients share. `credentials` replaces the SDK's standard
/// chain (environment, profile, ECS task role, EKS IRSA); tests use it to avoid process-wide
/// environment variables.
pub async fn sdk_config(aws: &AwsConfig, credentials: Option<Credentials>) -> SdkConfig {
    // One HTTP client for the whole process: every client built from this configuration, the
    // root sessions' included, draws on its connection pool. Its errors name the endpoint they
    // were sending to, which the SDK's own connector errors do not.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .http_client(SharedHttpClient::new(EndpointNaming(http_client)))
        .retry_config(RetryConfig::standard().with_max_attempts(aws.max_attempts));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    let sdk = loader.load().await;
    match sdk.credentials_provider() {
        Some(provider) => sdk
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Renewing { inner: provider, loaded: AtomicBool::new(false) }))
            .build(),
        None => sdk,
    }
}

/// The daemon's own clients (its own identity, not a root session).
#[derive(Clone, Debug)]
pub struct Clients {
    /// The shared configuration, from which root session clients are derived.
    pub sdk: SdkConfig,
    /// Intake, dead-letter and results queues.
    pub sqs: aws_sdk_sqs::Client,
    /// AssumeRoot, on the daemon's regional endpoint.
    pub sts: aws_sdk_sts::Client,
    /// Organization features.
    pub iam: aws_sdk_iam::Client,
    /// Membership checks.
    pub organizations: aws_sdk_organizations::Client,
}

impl Clients {
    /// Creates the daemon's clients from one configuration.
    pub fn new(sdk: SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            organizations: aws_sdk_organizations::Client::new(&sdk),
            sdk,
        }
    }

    /// IAM acting as a member account's root user, with a root session's credentials.
    pub fn root_iam(&self, credentials: &Credentials) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build();
        aws_sdk_iam::Client::from_conf(config)
    }

    /// S3 in `region` with a root session's credentials.
    pub fn root_s3(&self, credentials: &Credentials, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .region(Region::new(region.to_owned()))
            // Virtual-hosted addressing needs DNS for `<bucket>.<endpoint>`, which a custom
            // endpoint (the local AWS environment) does not have.
            .force_path_style(self.sdk.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// SQS in `region` with a root session's credentials.
    pub fn root_sqs(&self, credentials: &Credentials, region: &str) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::from(&self.sdk)
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// The daemon's region.
    pub fn region(&self) -> &str {
        self.sdk.region().map_or("us-east-1", |r| r.as_ref())
    }
}

/// Runs one AWS call inside its own span (OpenTelemetry RPC conventions) and counts its error,
/// so every call site reports the same way.
pub async fn call<T, E, R, F>(
    metrics: &Metrics,
    service: &'static str,
    operation: &'static str,
    request: F,
) -> Result<T, AwsCallError>
where
    F: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + StdError + 'static,
    R: RawResponse + fmt::Debug + 'static,
{
    // A span only as a child of a job's (or a root session's) span: the poller's long polls and
    // the batch flushes would otherwise each export a trace of their own, noise at the collector.
    let span = if tracing::Span::current().is_none() {
        tracing::Span::none()
    } else {
        tracing::info_span!(
        "aws.call",
        otel.name = %format_args!("{service}.{operation}"),
        otel.kind = "client",
        rpc.system = "aws-api",
        rpc.service = service,
        rpc.method = operation,
            otel.status_code = tracing::field::Empty,
            aws.error_code = tracing::field::Empty,
        )
    };
    let result = request.instrument(span.clone()).await;
    result.map_err(|error| {
        let error = AwsCallError::from_sdk(service, operation, error);
        span.record("otel.status_code", "ERROR");
        span.record("aws.error_code", error.code.as_str());
        metrics.aws_errors.with_label_values(&[service, operation, metric_code(&error.code)]).inc();
        error
    })
}

/// Keeps the `code` label a bounded set: AWS codes are identifiers, anything else is `Other`.
pub fn metric_code(code: &str) -> &str {
    if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') { code } else { "Other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_codes_stay_bounded() {
        assert_eq!(metric_code("AccessDenied"), "AccessDenied");
        assert_eq!(metric_code("AWS.SimpleQueueService.NonExistentQueue"), "AWS.SimpleQueueService.NonExistentQueue");
        assert_eq!(metric_code("an error: with text"), "Other");
        for code in ["NoCredentials", "CredentialsNotRenewed", "ConnectionRefused", "DnsFailure", "Timeout"] {
            assert_eq!(metric_code(code), code);
        }
    }
}
