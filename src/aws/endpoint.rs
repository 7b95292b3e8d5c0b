//! The HTTP client every SDK client shares, wrapped so that its connection errors name the
//! endpoint they were sending to (the SDK's errors name neither the URL nor the host).

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;

/// The HTTP client, its connector errors carrying the endpoint of the request that failed (the
/// SDK's errors name neither the URL nor the host).
#[derive(Debug)]
pub(super) struct EndpointNaming(pub(super) SharedHttpClient);

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
pub(super) fn name_endpoint(error: ConnectorError, endpoint: String) -> ConnectorError {
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
pub(super) struct RequestFailed {
    pub(super) endpoint: String,
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
pub(super) fn host(endpoint: &str) -> &str {
    let authority = endpoint.find("://").map_or(endpoint, |i| &endpoint[i + 3..]);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

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
