//! AWS plumbing: one SDK configuration (and so one HTTP connection pool) for every client, the
//! clients a root session needs, and the classification of AWS errors into retry, expiry or
//! permanent failure, each with the sentence a person reads: the cause, found in the SDK's error
//! chain, and what to do next.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_config::meta::ProviderChainError;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self as credentials_provider, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use tracing::Instrument;

use crate::config::AwsConfig;
use crate::metrics::Metrics;

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

/// The process's credentials provider (the SDK's default chain, or the credentials given),
/// remembering whether it ever produced credentials. Credentials that were found once and can no
/// longer be renewed (instance metadata or the ECS agent not answering, a web identity token
/// being rotated) are an outage of their source: the error says so, and is retried like one.
/// Credentials never found are a set-up problem a retry cannot fix.
#[derive(Debug)]
struct Renewing {
    inner: SharedCredentialsProvider,
    loaded: AtomicBool,
}

impl ProvideCredentials for Renewing {
    fn provide_credentials<'a>(&'a self) -> credentials_provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        credentials_provider::future::ProvideCredentials::new(async move {
            match self.inner.provide_credentials().await {
                Ok(credentials) => {
                    self.loaded.store(true, Ordering::Relaxed);
                    Ok(credentials)
                }
                Err(error) if self.loaded.load(Ordering::Relaxed) => Err(CredentialsError::provider_error(NotRenewed(error))),
                Err(error) => Err(error),
            }
        })
    }

    fn fallback_on_interrupt(&self) -> Option<Credentials> {
        self.inner.fallback_on_interrupt()
    }
}

/// Credentials that worked earlier in this process failed to load again.
#[derive(Debug)]
struct NotRenewed(CredentialsError);

impl fmt::Display for NotRenewed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the AWS credentials that worked until now could not be renewed")
    }
}

impl StdError for NotRenewed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

/// The HTTP client, its connector errors carrying the endpoint of the request that failed (the
/// SDK's errors name neither the URL nor the host).
#[derive(Debug)]
struct EndpointNaming(SharedHttpClient);

impl HttpClient for EndpointNaming {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(EndpointNamingConnector(self.0.http_connector(settings, components)))
    }

    fn validate_base_client_config(&self, components: &RuntimeComponentsBuilder, config: &ConfigBag) -> Result<(), BoxError> {
        self.0.validate_base_client_config(components, config)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, config: &ConfigBag) -> Result<(), BoxError> {
        self.0.validate_final_config(components, config)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct EndpointNamingConnector(SharedHttpConnector);

impl HttpConnector for EndpointNamingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let endpoint = origin(request.uri()).to_owned();
        let response = self.0.call(request);
        HttpConnectorFuture::new(async move { response.await.map_err(|error| name_endpoint(error, endpoint)) })
    }
}

/// Wraps a connector error in one naming the endpoint, keeping its kind (the SDK's retry
/// classification reads it) and its connection.
fn name_endpoint(error: ConnectorError, endpoint: String) -> ConnectorError {
    let (timeout, io, user, other) = (error.is_timeout(), error.is_io(), error.is_user(), error.as_other());
    let connection = error.connection_metadata().cloned();
    let source: BoxError = Box::new(RequestFailed { endpoint, source: error });
    let named = if timeout {
        ConnectorError::timeout(source)
    } else if io {
        ConnectorError::io(source)
    } else if user {
        ConnectorError::user(source)
    } else {
        ConnectorError::other(source, other)
    };
    match connection {
        Some(connection) => named.with_connection(connection),
        None => named,
    }
}

/// A request to `endpoint` failed before an answer.
#[derive(Debug)]
struct RequestFailed {
    endpoint: String,
    source: ConnectorError,
}

impl fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request to {} failed", self.endpoint)
    }
}

impl StdError for RequestFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// `scheme://host[:port]` of a URI: no path, query or user information.
fn origin(uri: &str) -> &str {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..].find(['/', '?', '#']).map_or(uri.len(), |i| start + i);
    match uri[start..end].rfind('@') {
        // User information never goes into a message; such an endpoint is shown by its host.
        Some(at) => &uri[start + at + 1..end],
        None => &uri[..end],
    }
}

/// The host of an endpoint (`scheme://host[:port]`).
fn host(endpoint: &str) -> &str {
    let authority = endpoint.find("://").map_or(endpoint, |i| &endpoint[i + 3..]);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
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

/// AWS refused the action to the identity that asked.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "AWS.SimpleQueueService.AccessDenied",
];

/// AWS did not recognise the credentials, or their signature.
const INVALID_CREDENTIALS_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];

/// The request's time is off: nearly always the machine's clock.
const CLOCK_CODES: &[&str] = &["RequestExpired", "RequestTimeTooSkewed", "SignatureExpired"];

const NO_QUEUE_CODES: &[&str] = &["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"];

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

/// Which kind of SDK error the chain came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Timeout,
    Dispatch,
    Response,
    Construction,
    Other,
}

impl AwsCallError {
    /// Converts an SDK error: a service error keeps AWS's code and message; any other error is
    /// named by the cause found in its chain of sources. The whole chain is logged at DEBUG
    /// (field `error.chain`).
    pub fn from_sdk<E, R>(service: &'static str, operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: HasStatus + fmt::Debug + 'static,
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
        let call_error = Self { service, operation, code, message, class };
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
        }
    }

    /// True when the code is one of those listed (for "already in the wanted state" checks).
    pub fn is(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code.as_str())
    }
}

impl fmt::Display for AwsCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (service, operation, code) = (self.service, self.operation, self.code.as_str());
        let message = self.message.trim().trim_end_matches('.');
        // AWS's own words: the code, and its message when there is one.
        let words = if message.is_empty() { code.to_owned() } else { format!("{code}: {message}") };
        write!(f, "{service}:{operation} failed")?;
        match code {
            "CredentialsNotRenewed" => write!(
                f,
                ": {message}; check their source (EC2 instance metadata, the ECS agent, the web identity token and STS, the SSO session: aws sso login), which answered before and does not now."
            ),
            "NoCredentials" => write!(
                f,
                ": {message}; set AWS credentials (the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile of ~/.aws/config, after aws sso login for SSO) or run on a role (EC2 instance profile, ECS task role, EKS IRSA)."
            ),
            "InvalidCredentialsConfiguration" | "CredentialsProviderFailed" => write!(
                f,
                ": {message}; fix the credentials source it names (the profile, its credential_process or role, an expired SSO session: aws sso login) or set AWS credentials another way, or run on a role."
            ),
            "ConnectionRefused" => write!(
                f,
                ": {message}; check the endpoint (aws.endpoint_url, or a proxy set in HTTPS_PROXY) and that it is up and reachable from here."
            ),
            "DnsFailure" => {
                write!(f, ": {message}; check the host name (aws.endpoint_url, aws.region) and this machine's DNS settings.")
            }
            "Timeout" => write!(
                f,
                ": {message}; check that the endpoint is reachable from here (network, firewall, proxy, VPC endpoint), then try again."
            ),
            "DispatchFailure" => {
                write!(f, ": {message}; check the network path to it (proxy, firewall, TLS inspection), then try again.")
            }
            "ResponseError" => {
                write!(f, ": {message}; try again, and if it lasts, check for a proxy changing AWS's answers.")
            }
            "ConstructionFailure" => write!(f, ": {message}; check the values given (queue URL, region, endpoint URL)."),
            "Unknown" if self.class == ErrorClass::Transient => write!(f, ": {message}; try again later."),
            "Unknown" => write!(f, ": {message}; check that the endpoint (aws.endpoint_url, or a proxy) leads to AWS."),
            _ if ACCESS_DENIED_CODES.contains(&code) || code.ends_with(".AccessDenied") => write!(
                f,
                ": AWS denied it to the identity in use ({words}); allow {service}:{operation} for that identity (aws sts get-caller-identity names it; deploy/iam/ has rootwarden's policies) or use one that has it."
            ),
            _ if INVALID_CREDENTIALS_CODES.contains(&code) => write!(
                f,
                ": AWS did not accept the credentials in use ({words}); check which credentials are set (AWS_ACCESS_KEY_ID, AWS_PROFILE) and replace them with valid ones."
            ),
            _ if CLOCK_CODES.contains(&code) => write!(
                f,
                ": AWS found the request's time wrong ({words}), usually because this machine's clock is off; synchronise the clock (NTP), then try again."
            ),
            _ if EXPIRED_CODES.contains(&code) => write!(
                f,
                ": the credentials have expired ({words}); refresh them (a new session token, aws sso login) or run on a role, whose credentials renew themselves (an expired root session is replaced by a fresh one)."
            ),
            _ if NO_QUEUE_CODES.contains(&code) => {
                write!(
                    f,
                    ": the queue does not exist ({words}); check the queue URL, and that it is in the region and account meant."
                )
            }
            _ => match self.class {
                ErrorClass::Throttled => write!(f, ": AWS throttled it ({words}); try again in a moment, at a slower pace."),
                ErrorClass::Transient => write!(f, ": AWS had a temporary problem ({words}); try again later."),
                ErrorClass::ExpiredToken | ErrorClass::Permanent => {
                    write!(f, " with {words}; retrying alone will not help: correct what AWS names.")
                }
            },
        }
    }
}

impl StdError for AwsCallError {}

/// The errors of a chain, outermost first. After an `io::Error` comes its payload (`get_ref`):
/// `io::Error::source` skips it.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&error| match error.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => error.source(),
    })
}

/// The texts of a chain, a text repeated by the next error (an `io::Error` and its payload)
/// given once.
fn texts(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for error in causes(error) {
        let text = error.to_string();
        if texts.last() != Some(&text) {
            texts.push(text);
        }
    }
    texts
}

/// A whole chain on one line (`outer: inner: …`), formatted only if logged.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Some errors (the credentials chain's) spread over lines; a log field keeps to one.
        let text = texts(self.0).join(": ");
        f.write_str(&text.split('\n').map(str::trim).collect::<Vec<_>>().join("; "))
    }
}

/// Finds the cause of an error without an AWS answer in its chain: code, message, class.
fn diagnose(variant: Variant, source: Option<&(dyn StdError + 'static)>) -> (String, String, ErrorClass) {
    let chain: Vec<&(dyn StdError + 'static)> = source.map(|source| causes(source).collect()).unwrap_or_default();
    let deepest = source.and_then(|source| texts(source).pop()).unwrap_or_else(|| "no detail from the SDK".to_owned());
    let endpoint = chain.iter().find_map(|e| e.downcast_ref::<RequestFailed>()).map(|r| r.endpoint.as_str());
    let transient = |code: &str, message: String| (code.to_owned(), message, ErrorClass::Transient);

    if let Some(at) = chain.iter().position(|e| e.downcast_ref::<CredentialsError>().is_some()) {
        return credentials_failure(&chain[at..]);
    }
    if chain.iter().any(|e| e.to_string().starts_with("identity resolver timed out")) {
        let message = format!("the AWS credentials could not be loaded in time ({deepest})");
        return transient("CredentialsProviderFailed", message);
    }
    let io_kind =
        |kind: std::io::ErrorKind| chain.iter().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind));
    let endpoint_or = |fallback: &str| endpoint.map_or_else(|| fallback.to_owned(), str::to_owned);
    if variant == Variant::Timeout
        || chain.iter().any(|e| e.downcast_ref::<ConnectorError>().is_some_and(ConnectorError::is_timeout))
        || io_kind(std::io::ErrorKind::TimedOut)
    {
        return transient("Timeout", format!("{} did not answer in time ({deepest})", endpoint_or("AWS")));
    }
    if io_kind(std::io::ErrorKind::ConnectionRefused) {
        let message = format!("the connection to {} was refused ({deepest})", endpoint_or("the endpoint"));
        return transient("ConnectionRefused", message);
    }
    let dns = chain.iter().any(|e| {
        let text = e.to_string();
        e.downcast_ref::<ResolveDnsError>().is_some()
            || text == "dns error"
            || text.starts_with("failed to lookup address information")
    });
    if dns {
        let message = match endpoint {
            Some(endpoint) => format!("the host name {} (of {endpoint}) could not be resolved ({deepest})", host(endpoint)),
            None => format!("a host name could not be resolved ({deepest})"),
        };
        return transient("DnsFailure", message);
    }
    match variant {
        Variant::Dispatch | Variant::Timeout => {
            transient("DispatchFailure", format!("the request to {} failed before an answer ({deepest})", endpoint_or("AWS")))
        }
        Variant::Response => transient("ResponseError", format!("the answer could not be read ({deepest})")),
        Variant::Construction => {
            ("ConstructionFailure".to_owned(), format!("the request could not be built ({deepest})"), ErrorClass::Permanent)
        }
        Variant::Other => transient("Unknown", format!("an unexpected SDK error ({deepest})")),
    }
}

/// A credentials provider's error, `chain[0]` being the outermost `CredentialsError`.
fn credentials_failure(chain: &[&(dyn StdError + 'static)]) -> (String, String, ErrorClass) {
    let renewal = chain.iter().position(|e| e.downcast_ref::<NotRenewed>().is_some());
    // Past a failed renewal, the provider's own error says what happened.
    let inner =
        renewal.and_then(|at| chain[at..].iter().position(|e| e.downcast_ref::<CredentialsError>().is_some()).map(|i| at + i));
    let chain = &chain[inner.unwrap_or(0)..];
    let error = chain[0].downcast_ref::<CredentialsError>().expect("the chain starts with a credentials error");
    let detail = || texts(chain[0]).join(": ").trim_end_matches('.').to_owned();
    let (code, message, class) = match error {
        CredentialsError::CredentialsNotLoaded(_) => {
            ("NoCredentials", format!("no AWS credentials were found ({})", looked_at(chain)), ErrorClass::Permanent)
        }
        CredentialsError::InvalidConfiguration(_) => (
            "InvalidCredentialsConfiguration",
            format!("the AWS credentials are configured wrongly ({})", detail()),
            ErrorClass::Permanent,
        ),
        CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => (
            "CredentialsProviderFailed",
            format!("the AWS credentials could not be loaded ({})", detail()),
            ErrorClass::Transient,
        ),
        _ => (
            "CredentialsProviderFailed",
            format!("the AWS credentials could not be loaded ({})", detail()),
            ErrorClass::Permanent,
        ),
    };
    match renewal {
        // Credentials that worked in this process: their source is out for now, so retry.
        Some(_) => (
            "CredentialsNotRenewed".to_owned(),
            format!("the AWS credentials that worked until now could not be renewed: {message}"),
            ErrorClass::Transient,
        ),
        None => (code.to_owned(), message, class),
    }
}

/// Where the SDK's default chain looked for credentials, and what each source said.
fn looked_at(chain: &[&(dyn StdError + 'static)]) -> String {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let config = std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".to_owned());
    let credentials = std::env::var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|_| "~/.aws/credentials".to_owned());
    let name = |provider: &str| match provider {
        "Environment" => "the environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned(),
        "Profile" => format!("profile {profile} in the shared files {config} and {credentials}"),
        "WebIdentityToken" => "web identity for EKS IRSA".to_owned(),
        "EcsContainer" => "ECS container credentials".to_owned(),
        "Ec2InstanceMetadata" => "EC2 instance metadata".to_owned(),
        other => other.to_owned(),
    };
    let attempts = chain.iter().find_map(|e| e.downcast_ref::<ProviderChainError<CredentialsError>>()).map(|c| c.attempts());
    match attempts {
        Some(attempts) if !attempts.is_empty() => {
            let said: Vec<String> = attempts
                .iter()
                .map(|attempt| {
                    // The provider's own reason is the error under its generic "not enabled".
                    let reason = attempt.error().source().map_or_else(|| "nothing found".to_owned(), |s| texts(s).join(": "));
                    format!("{}: {}", name(attempt.name()), reason.trim_end_matches('.'))
                })
                .collect();
            format!("the SDK's default chain looked at {}", said.join("; "))
        }
        _ => {
            let sources = ["Environment", "Profile", "WebIdentityToken", "EcsContainer", "Ec2InstanceMetadata"].map(name);
            format!("the SDK's default chain looks at {}", sources.join(", "))
        }
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
    E: ProvideErrorMetadata + StdError + 'static,
    R: HasStatus + fmt::Debug + 'static,
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
        for code in ["NoCredentials", "CredentialsNotRenewed", "ConnectionRefused", "DnsFailure", "Timeout"] {
            assert_eq!(metric_code(code), code);
        }
    }

    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    type Sdk = SdkError<SendMessageError, Response>;

    fn dispatch(error: ConnectorError) -> AwsCallError {
        AwsCallError::from_sdk("sqs", "SendMessage", Sdk::dispatch_failure(error))
    }

    /// A connector error as the HTTP client names it.
    fn failed_at(endpoint: &str, error: ConnectorError) -> AwsCallError {
        dispatch(name_endpoint(error, endpoint.to_owned()))
    }

    fn service(code: &str, message: &str, status: u16) -> AwsCallError {
        let mut metadata = ErrorMetadata::builder();
        if !code.is_empty() {
            metadata = metadata.code(code);
        }
        if !message.is_empty() {
            metadata = metadata.message(message);
        }
        let response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        AwsCallError::from_sdk("sqs", "SendMessage", Sdk::service_error(SendMessageError::generic(metadata.build()), response))
    }

    #[test]
    fn a_refused_connection_names_the_endpoint_and_what_to_check() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let error = failed_at("http://127.0.0.1:9", ConnectorError::io(Box::new(refused)));
        assert_eq!((error.code.as_str(), error.class), ("ConnectionRefused", ErrorClass::Transient));
        assert_eq!(
            error.to_string(),
            "sqs:SendMessage failed: the connection to http://127.0.0.1:9 was refused (connection refused); check the endpoint \
             (aws.endpoint_url, or a proxy set in HTTPS_PROXY) and that it is up and reachable from here."
        );
    }

    #[test]
    fn a_dns_failure_names_the_host() {
        let lookup = io::Error::other("failed to lookup address information: Name or service not known");
        let error =
            failed_at("https://sqs.eu-nowhere-1.amazonaws.com", ConnectorError::io(Box::new(ResolveDnsError::new(lookup))));
        assert_eq!((error.code.as_str(), error.class), ("DnsFailure", ErrorClass::Transient));
        assert_eq!(
            error.to_string(),
            "sqs:SendMessage failed: the host name sqs.eu-nowhere-1.amazonaws.com (of https://sqs.eu-nowhere-1.amazonaws.com) \
             could not be resolved (failed to lookup address information: Name or service not known); check the host name \
             (aws.endpoint_url, aws.region) and this machine's DNS settings."
        );
    }

    #[test]
    fn timeouts_are_transient_and_say_who_did_not_answer() {
        let slow = io::Error::new(io::ErrorKind::TimedOut, "HTTP connect timeout occurred after 3.1s");
        let error = failed_at("https://sqs.us-east-1.amazonaws.com", ConnectorError::timeout(Box::new(slow)));
        assert_eq!((error.code.as_str(), error.class), ("Timeout", ErrorClass::Transient));
        assert!(
            error.to_string().starts_with(
                "sqs:SendMessage failed: https://sqs.us-east-1.amazonaws.com did not answer in time (HTTP connect timeout occurred \
                 after 3.1s); check that the endpoint is reachable from here"
            ),
            "{error}"
        );

        let operation =
            AwsCallError::from_sdk("sqs", "SendMessage", Sdk::timeout_error("operation timeout (all attempts) after 5s"));
        assert_eq!((operation.code.as_str(), operation.class), ("Timeout", ErrorClass::Transient));
        assert!(operation.to_string().contains("AWS did not answer in time (operation timeout (all attempts) after 5s)"));
    }

    #[test]
    fn other_network_failures_keep_the_operating_systems_words() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let error = failed_at("https://sqs.us-east-1.amazonaws.com", ConnectorError::io(Box::new(reset)));
        assert_eq!((error.code.as_str(), error.class), ("DispatchFailure", ErrorClass::Transient));
        assert!(
            error.to_string().starts_with(
                "sqs:SendMessage failed: the request to https://sqs.us-east-1.amazonaws.com failed before an answer (connection reset)"
            ),
            "{error}"
        );
    }

    #[test]
    fn missing_credentials_are_permanent_and_say_where_to_put_them() {
        let missing = CredentialsError::not_loaded("no providers in chain provided credentials");
        let error = dispatch(ConnectorError::other(Box::new(missing), None));
        assert_eq!((error.code.as_str(), error.class), ("NoCredentials", ErrorClass::Permanent));
        let text = error.to_string();
        assert!(
            text.starts_with("sqs:SendMessage failed: no AWS credentials were found (the SDK's default chain looks at"),
            "{text}"
        );
        for needle in [
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            "in the shared files",
            "web identity for EKS IRSA",
            "ECS container credentials",
            "EC2 instance metadata",
            "; set AWS credentials (",
            "or run on a role (EC2 instance profile, ECS task role, EKS IRSA).",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
        // Built before transmission, the same error comes as a construction failure.
        let built = AwsCallError::from_sdk(
            "sqs",
            "SendMessage",
            Sdk::construction_failure(CredentialsError::not_loaded("no providers in chain provided credentials")),
        );
        assert_eq!((built.code.as_str(), built.class), ("NoCredentials", ErrorClass::Permanent));
    }

    #[test]
    fn a_failing_credentials_provider_is_named() {
        let failing = CredentialsError::provider_error("Error retrieving credentials: external process exited with code 1.");
        let error = dispatch(ConnectorError::other(Box::new(failing), None));
        assert_eq!((error.code.as_str(), error.class), ("CredentialsProviderFailed", ErrorClass::Transient));
        assert_eq!(
            error.to_string(),
            "sqs:SendMessage failed: the AWS credentials could not be loaded (an error occurred while loading credentials: Error \
             retrieving credentials: external process exited with code 1); fix the credentials source it names (the profile, its \
             credential_process or role, an expired SSO session: aws sso login) or set AWS credentials another way, or run on a role."
        );
        let invalid = CredentialsError::invalid_configuration("profile `ci` has a source_profile loop");
        let error = dispatch(ConnectorError::other(Box::new(invalid), None));
        assert_eq!((error.code.as_str(), error.class), ("InvalidCredentialsConfiguration", ErrorClass::Permanent));
        assert!(error.to_string().contains("profile `ci` has a source_profile loop"), "{error}");
    }

    /// Gives credentials once, then none.
    #[derive(Debug, Default)]
    struct Once(AtomicUsize);

    impl ProvideCredentials for Once {
        fn provide_credentials<'a>(&'a self) -> credentials_provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
            credentials_provider::future::ProvideCredentials::ready(if first {
                Ok(Credentials::new("AKIDONCE", "secret-once", None, None, "test"))
            } else {
                Err(CredentialsError::not_loaded("IMDS did not answer"))
            })
        }
    }

    #[tokio::test]
    async fn credentials_that_worked_and_lapse_are_an_outage_to_retry() {
        let renewing = Renewing { inner: SharedCredentialsProvider::new(Once::default()), loaded: AtomicBool::new(false) };
        let never = Renewing {
            inner: SharedCredentialsProvider::new(Arc::new(Once(AtomicUsize::new(1))) as Arc<dyn ProvideCredentials>),
            loaded: AtomicBool::new(false),
        };
        assert!(renewing.provide_credentials().await.is_ok());
        let lapsed = renewing.provide_credentials().await.unwrap_err();
        let error = dispatch(ConnectorError::other(Box::new(lapsed), None));
        assert_eq!((error.code.as_str(), error.class), ("CredentialsNotRenewed", ErrorClass::Transient));
        assert!(
            error.to_string().starts_with(
                "sqs:SendMessage failed: the AWS credentials that worked until now could not be renewed: no AWS credentials were found"
            ),
            "{error}"
        );
        assert!(error.to_string().ends_with("which answered before and does not now."), "{error}");

        let missing = never.provide_credentials().await.unwrap_err();
        let error = dispatch(ConnectorError::other(Box::new(missing), None));
        assert_eq!((error.code.as_str(), error.class), ("NoCredentials", ErrorClass::Permanent));
    }

    #[test]
    fn access_denied_names_the_action_to_allow() {
        let error = service(
            "AccessDenied",
            "User: arn:aws:iam::111122223333:user/ci is not authorized to perform: sqs:sendmessage on resource: \
             arn:aws:sqs:us-east-1:111122223333:intake.",
            403,
        );
        assert_eq!((error.code.as_str(), error.class), ("AccessDenied", ErrorClass::Permanent));
        assert_eq!(
            error.to_string(),
            "sqs:SendMessage failed: AWS denied it to the identity in use (AccessDenied: User: arn:aws:iam::111122223333:user/ci \
             is not authorized to perform: sqs:sendmessage on resource: arn:aws:sqs:us-east-1:111122223333:intake); allow \
             sqs:SendMessage for that identity (aws sts get-caller-identity names it; deploy/iam/ has rootwarden's policies) or \
             use one that has it."
        );
    }

    #[test]
    fn service_errors_say_what_to_do_by_kind() {
        let expired = service("ExpiredToken", "The security token included in the request is expired", 400);
        assert_eq!(expired.class, ErrorClass::ExpiredToken);
        assert!(
            expired.to_string().starts_with(
                "sqs:SendMessage failed: the credentials have expired (ExpiredToken: The security token included in the request \
                 is expired); refresh them"
            ),
            "{expired}"
        );
        let invalid = service("InvalidClientTokenId", "The security token included in the request is invalid.", 403);
        assert!(invalid.to_string().contains("AWS did not accept the credentials in use (InvalidClientTokenId: "), "{invalid}");
        let clock = service("RequestExpired", "Request has expired.", 400);
        assert!(clock.to_string().contains("synchronise the clock (NTP)"), "{clock}");
        let throttled = service("ThrottlingException", "Rate exceeded", 400);
        assert_eq!(throttled.class, ErrorClass::Throttled);
        assert!(
            throttled.to_string().contains("AWS throttled it (ThrottlingException: Rate exceeded); try again"),
            "{throttled}"
        );
        let unavailable = service("ServiceUnavailable", "", 503);
        assert_eq!(
            unavailable.to_string(),
            "sqs:SendMessage failed: AWS had a temporary problem (ServiceUnavailable); try again later."
        );
        let no_queue = service("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.", 400);
        assert!(no_queue.to_string().contains("the queue does not exist ("), "{no_queue}");
        assert!(no_queue.to_string().contains("check the queue URL"), "{no_queue}");
        let other = service("InvalidParameterValue", "Value for parameter MessageBody is invalid.", 400);
        assert_eq!(
            other.to_string(),
            "sqs:SendMessage failed with InvalidParameterValue: Value for parameter MessageBody is invalid; retrying alone will \
             not help: correct what AWS names."
        );
        let no_code = service("", "", 404);
        assert_eq!((no_code.code.as_str(), no_code.class), ("Unknown", ErrorClass::Permanent));
        assert_eq!(
            no_code.to_string(),
            "sqs:SendMessage failed: the endpoint answered HTTP 404 without an AWS error code; check that the endpoint \
             (aws.endpoint_url, or a proxy) leads to AWS."
        );
    }

    #[tokio::test]
    async fn no_secret_reaches_a_message_or_the_logged_chain() {
        let (secret, token) = ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY", "IQoJb3JpZ2luX2VjSESSIONTOKEN");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let aws = AwsConfig { endpoint_url: Some(endpoint.clone()), max_attempts: 1, ..AwsConfig::default() };
        let credentials = Credentials::new("AKIDEXAMPLE", secret, Some(token.to_owned()), None, "test");
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(&aws, Some(credentials)).await);
        let raw = sqs
            .send_message()
            .queue_url(format!("{endpoint}/123456789012/intake"))
            .message_body("{}")
            .send()
            .await
            .unwrap_err();
        let chain = Chain(&raw).to_string();
        let error = AwsCallError::from_sdk("sqs", "SendMessage", raw);
        assert_eq!(error.code, "ConnectionRefused", "{error}");
        assert!(error.to_string().contains(&format!("the connection to {endpoint} was refused")), "{error}");
        for text in [error.to_string(), format!("{error:?}"), chain] {
            assert!(!text.contains(secret) && !text.contains(token), "{text}");
        }
    }

    #[test]
    fn endpoints_are_shown_without_path_or_user_information() {
        assert_eq!(origin("https://sqs.us-east-1.amazonaws.com/"), "https://sqs.us-east-1.amazonaws.com");
        assert_eq!(origin("http://127.0.0.1:4566/123456789012/intake?x=1"), "http://127.0.0.1:4566");
        assert_eq!(origin("http://user:pw@proxy.example:8080/"), "proxy.example:8080");
        assert_eq!(host("https://sqs.us-east-1.amazonaws.com"), "sqs.us-east-1.amazonaws.com");
        assert_eq!(host("http://127.0.0.1:4566"), "127.0.0.1");
        assert_eq!(host("http://[::1]:4566"), "::1");
    }
}
