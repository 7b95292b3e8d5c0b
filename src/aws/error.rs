//! The error of a failed AWS call, and its classification into throttling, transient failure,
//! expired token or permanent failure: what the caller should do about it.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;

use super::diagnose::{Chain, Variant, diagnose};

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

/// A failed AWS call, with the context needed to report it. Its text (`Display`) is one sentence
/// for a person: the call, the cause, and what to do next. It never carries credentials: only
/// the service's own error code and message, or the cause found in the SDK's error chain.
#[derive(Debug, Clone)]
pub struct AwsCallError {
    /// Signing name of the service (`sts`, `iam`, `s3`, `sqs`, `organizations`).
    pub service: &'static str,
    /// API operation name.
    pub operation: &'static str,
    /// AWS error code, or a short name for errors without one: `NoCredentials`,
    /// `CredentialsNotRenewed`, `InvalidCredentialsConfiguration`, `CredentialsProviderFailed`,
    /// `ConnectionRefused`, `DnsFailure`, `Timeout`, `DispatchFailure` (another network
    /// failure), `ResponseError`, `ConstructionFailure`.
    pub code: String,
    /// AWS's message, or the cause found in the SDK's error chain (the endpoint or host, the
    /// operating system's words, where the credentials were looked for).
    pub message: String,
    /// What to do about it.
    pub class: ErrorClass,
    /// The region S3 names (`x-amz-bucket-region`) when it answers 301 `PermanentRedirect` to a
    /// request signed for another region than the bucket's: where to ask again.
    pub redirect_region: Option<String>,
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

pub(super) const EXPIRED_CODES: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"];

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
    /// Converts an SDK error: a service error keeps AWS's code and message; any other error is
    /// named by the cause found in its chain of sources. The whole chain is logged at DEBUG
    /// (field `error.chain`).
    pub fn from_sdk<E, R>(service: &'static str, operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: RawResponse + fmt::Debug + 'static,
    {
        let (code, message, class) = match &error {
            SdkError::ServiceError(context) => {
                let status = context.raw().status_code();
                let message = context.err().message().unwrap_or_default().to_owned();
                match context.err().code() {
                    Some(code) => (code.to_owned(), message, classify(code, status)),
                    None => {
                        let answer = status.map_or_else(|| "an answer".to_owned(), |s| format!("HTTP {s}"));
                        let message = if message.is_empty() {
                            format!("the endpoint answered {answer} without an AWS error code")
                        } else {
                            format!("the endpoint answered {answer} without an AWS error code: {message}")
                        };
                        ("Unknown".to_owned(), message, classify("Unknown", status))
                    }
                }
            }
            other => {
                let variant = match other {
                    SdkError::TimeoutError(_) => Variant::Timeout,
                    SdkError::DispatchFailure(_) => Variant::Dispatch,
                    SdkError::ResponseError(_) => Variant::Response,
                    SdkError::ConstructionFailure(_) => Variant::Construction,
                    _ => Variant::Other,
                };
                diagnose(variant, error.source())
            }
        };
        let redirect_region = match &error {
            SdkError::ServiceError(context) if code == "PermanentRedirect" => {
                context.raw().header("x-amz-bucket-region").map(str::to_owned)
            }
            _ => None,
        };
        let call_error = Self { service, operation, code, message, class, redirect_region };
        tracing::debug!(
            aws.service = service,
            aws.operation = operation,
            aws.error_code = %call_error.code,
            error.class = ?call_error.class,
            error.chain = %Chain(&error),
            "{call_error}"
        );
        call_error
    }

    /// A call that did not answer within rootwarden's own deadline.
    pub fn timed_out(service: &'static str, operation: &'static str) -> Self {
        Self {
            service,
            operation,
            code: "Timeout".into(),
            message: "no answer within the call's deadline".into(),
            class: ErrorClass::Transient,
            redirect_region: None,
        }
    }

    /// True when the code is one of those listed (for "already in the wanted state" checks).
    pub fn is(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
    }
}

impl StdError for AwsCallError {}

/// Access to the HTTP status of a raw response, whichever response type the SDK uses.
pub trait RawResponse {
    /// The status code, when there is a response.
    fn status_code(&self) -> Option<u16>;
    /// A header's value, when there is a response with that header.
    fn header(&self, name: &str) -> Option<&str>;
}

impl RawResponse for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }
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
}
