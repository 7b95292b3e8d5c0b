//! AWS plumbing: one SDK configuration (and so one HTTP connection pool) for every client, the
//! clients a root session needs, and the classification of AWS errors into retry, expiry or
//! permanent failure.

use std::future::Future;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use tracing::Instrument;

use crate::config::AwsConfig;
use crate::metrics::Metrics;

/// Builds the SDK configuration all clients share. `credentials` replaces the SDK's standard
/// chain (environment, profile, ECS task role, EKS IRSA); tests use it to avoid process-wide
/// environment variables.
pub async fn sdk_config(aws: &AwsConfig, credentials: Option<Credentials>) -> SdkConfig {
    // One HTTP client for the whole process: every client built from this configuration, the
    // root sessions' included, draws on its connection pool.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(aws.max_attempts));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
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

/// What the caller should do about an AWS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling: retry later, and slow down.
    Throttled,
    /// 5xx, network, timeout: retry later.
    Transient,
    /// The session's token expired: drop the session and retry with a fresh one.
    ExpiredToken,
    /// Retrying cannot help (AccessDenied, NoSuchBucket, validation…).
    Permanent,
}

/// A failed AWS call, with the context needed to report it. Its text never carries
/// credentials: only the service's own error code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}:{operation} failed with {code}: {message}")]
pub struct AwsCallError {
    /// Signing name of the service (`sts`, `iam`, `s3`, `sqs`, `organizations`).
    pub service: &'static str,
    /// API operation name.
    pub operation: &'static str,
    /// AWS error code, or a short name for errors without one (`DispatchFailure`, `Timeout`…).
    pub code: String,
    /// AWS's message.
    pub message: String,
    /// What to do about it.
    pub class: ErrorClass,
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "AWS.SimpleQueueService.RequestThrottled",
];

const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ConcurrentModification",
    "ConcurrentModificationException",
];

const EXPIRED_CODES: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"];

/// Classifies an AWS error code (and HTTP status, when known).
pub fn classify(code: &str, status: Option<u16>) -> ErrorClass {
    if THROTTLING_CODES.contains(&code) || status == Some(429) {
        ErrorClass::Throttled
    } else if EXPIRED_CODES.contains(&code) {
        ErrorClass::ExpiredToken
    } else if TRANSIENT_CODES.contains(&code) || status.is_some_and(|s| s >= 500) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl AwsCallError {
    /// Converts an SDK error.
    pub fn from_sdk<E, R>(service: &'static str, operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata,
        R: HasStatus,
    {
        let (code, message, class) = match &error {
            SdkError::ServiceError(context) => {
                let status = context.raw().status_code();
                let code = context.err().code().unwrap_or("Unknown").to_owned();
                let message = context.err().message().unwrap_or_default().to_owned();
                let class = classify(&code, status);
                (code, message, class)
            }
            SdkError::TimeoutError(_) => ("Timeout".into(), "the call timed out".into(), ErrorClass::Transient),
            SdkError::DispatchFailure(failure) => (
                "DispatchFailure".into(),
                format!("{:?}", failure.as_connector_error().map(|e| e.to_string())),
                ErrorClass::Transient,
            ),
            SdkError::ResponseError(_) => {
                ("ResponseError".into(), "the response could not be read".into(), ErrorClass::Transient)
            }
            SdkError::ConstructionFailure(_) => {
                ("ConstructionFailure".into(), "the request could not be built".into(), ErrorClass::Permanent)
            }
            _ => ("Unknown".into(), "unknown SDK error".into(), ErrorClass::Transient),
        };
        Self { service, operation, code, message, class }
    }

    /// A call that did not answer within rootwarden's own deadline.
    pub fn timed_out(service: &'static str, operation: &'static str) -> Self {
        Self {
            service,
            operation,
            code: "Timeout".into(),
            message: "no answer within the call's deadline".into(),
            class: ErrorClass::Transient,
        }
    }

    /// True when the code is one of those listed (for "already in the wanted state" checks).
    pub fn is(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
    }
}

/// Access to the HTTP status of a raw response, whichever response type the SDK uses.
pub trait HasStatus {
    /// The status code, when there is a response.
    fn status_code(&self) -> Option<u16>;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
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
    E: ProvideErrorMetadata,
    R: HasStatus,
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
fn metric_code(code: &str) -> &str {
    if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') { code } else { "Other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_aws_retry_semantics() {
        assert_eq!(classify("Throttling", Some(400)), ErrorClass::Throttled);
        assert_eq!(classify("SlowDown", Some(503)), ErrorClass::Throttled);
        assert_eq!(classify("ServiceUnavailable", Some(503)), ErrorClass::Transient);
        assert_eq!(classify("Weird", Some(502)), ErrorClass::Transient);
        assert_eq!(classify("ExpiredToken", Some(400)), ErrorClass::ExpiredToken);
        assert_eq!(classify("AccessDenied", Some(403)), ErrorClass::Permanent);
        assert_eq!(classify("NoSuchBucket", Some(404)), ErrorClass::Permanent);
    }

    #[test]
    fn metric_codes_stay_bounded() {
        assert_eq!(metric_code("AccessDenied"), "AccessDenied");
        assert_eq!(metric_code("AWS.SimpleQueueService.NonExistentQueue"), "AWS.SimpleQueueService.NonExistentQueue");
        assert_eq!(metric_code("an error: with text"), "Other");
    }
}
