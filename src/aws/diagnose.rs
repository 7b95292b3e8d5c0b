//! The cause of an AWS error without an AWS answer, found in the SDK's chain of sources: the
//! endpoint or host, the operating system's words, where the credentials were looked for; and
//! from it the error's code, message and class.

use std::error::Error as StdError;
use std::fmt;

use aws_config::meta::ProviderChainError;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::result::ConnectorError;

use super::credentials::NotRenewed;
use super::endpoint::{RequestFailed, host};
use super::error::ErrorClass;

/// Which kind of SDK error the chain came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Variant {
    Timeout,
    Dispatch,
    Response,
    Construction,
    Other,
}

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
pub(super) struct Chain<'a>(pub(super) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Some errors (the credentials chain's) spread over lines; a log field keeps to one.
        let text = texts(self.0).join(": ");
        f.write_str(&text.split('\n').map(str::trim).collect::<Vec<_>>().join("; "))
    }
}

/// Finds the cause of an error without an AWS answer in its chain: code, message, class.
pub(super) fn diagnose(variant: Variant, source: Option<&(dyn StdError + 'static)>) -> (String, String, ErrorClass) {
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

#[cfg(test)]
mod tests {
    use std::io;

    use aws_credential_types::Credentials;
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_runtime_api::http::Response;

    use super::*;
    use crate::aws::endpoint::name_endpoint;
    use crate::aws::{AwsCallError, sdk_config};
    use crate::config::AwsConfig;

    type Sdk = SdkError<SendMessageError, Response>;

    fn dispatch(error: ConnectorError) -> AwsCallError {
        AwsCallError::from_sdk("sqs", "SendMessage", Sdk::dispatch_failure(error))
    }

    /// A connector error as the HTTP client names it.
    fn failed_at(endpoint: &str, error: ConnectorError) -> AwsCallError {
        dispatch(name_endpoint(error, endpoint.to_owned()))
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
}
