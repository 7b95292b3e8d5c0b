//! `rootwarden healthcheck`: exits 0 when the local daemon's /healthz answers 200.

use std::process::ExitCode;

/// A minimal HTTP/1.0 GET, so distroless images need no curl. `rest` is the URL without its
/// `http://`.
pub(crate) async fn healthcheck(rest: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
