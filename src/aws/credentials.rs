//! The process's credentials provider, which remembers whether it ever produced credentials:
//! credentials that lapse are an outage of their source (retried), credentials never found a
//! set-up problem.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self as credentials_provider, ProvideCredentials, SharedCredentialsProvider};

/// The process's credentials provider (the SDK's default chain, or the credentials given),
/// remembering whether it ever produced credentials. Credentials that were found once and can no
/// longer be renewed (instance metadata or the ECS agent not answering, a web identity token
/// being rotated) are an outage of their source: the error says so, and is retried like one.
/// Credentials never found are a set-up problem a retry cannot fix.
#[derive(Debug)]
pub(super) struct Renewing {
    pub(super) inner: SharedCredentialsProvider,
    pub(super) loaded: AtomicBool,
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
pub(super) struct NotRenewed(CredentialsError);

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::Response;

    use super::*;
    use crate::aws::{AwsCallError, ErrorClass};

    fn dispatch(error: ConnectorError) -> AwsCallError {
        AwsCallError::from_sdk("sqs", "SendMessage", SdkError::<SendMessageError, Response>::dispatch_failure(error))
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
}
