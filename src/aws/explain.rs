//! The sentence a person reads of a failed AWS call (its `Display`): the call, the cause, and
//! what to do next, by the kind of error.

use std::fmt;

use super::error::{AwsCallError, EXPIRED_CODES, ErrorClass};

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

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type Sdk = SdkError<SendMessageError, Response>;

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
}
