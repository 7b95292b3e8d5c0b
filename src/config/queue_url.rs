//! The form of an SQS queue URL, checked before any call so that a wrong URL is refused at
//! start-up with the form it should have.

use crate::job::is_account_id;

/// Why `url` is not an SQS queue URL, or `None` when it is one:
/// `https://sqs.<region>.amazonaws.com/<account id>/<queue name>` or the legacy
/// `https://<region>.queue.amazonaws.com/…` (and `https://queue.amazonaws.com/…`). With `local`
/// (`aws.endpoint_url` set) any `http://` or `https://` host is accepted, as local environments
/// name their queues `<endpoint>/<account id>/<queue name>`. A queue name has 1 to 80 letters,
/// digits, `-` and `_`, `.fifo` included for a FIFO queue.
pub(super) fn queue_url_problem(url: &str, local: bool) -> Option<String> {
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) if local => return Some("it must start with http:// or https://".into()),
        (None, None) => return Some("it must start with https://".into()),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.contains(|c: char| c.is_whitespace()) {
        return Some(format!("`{host}` is not a host name"));
    }
    if !local && !is_sqs_host(host) {
        return Some(format!("the host `{host}` is not SQS's; for a local environment, set aws.endpoint_url"));
    }
    if !local && !https {
        return Some("SQS is reached over https://".into());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let [account, name] = segments[..] else {
        return Some("its path must be /<12-digit account id>/<queue name>".into());
    };
    if !is_account_id(account) {
        return Some(format!("`{account}` is not a 12-digit account id"));
    }
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let well_formed =
        !base.is_empty() && name.len() <= 80 && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Some(format!(
            "the queue name `{name}` must be 1 to 80 letters, digits, `-` or `_` (ending in `.fifo` for a FIFO queue)"
        ));
    }
    None
}

/// `sqs.<region>.amazonaws.com`, `<region>.queue.amazonaws.com` or `queue.amazonaws.com`
/// (`.amazonaws.com.cn` in China).
fn is_sqs_host(host: &str) -> bool {
    let Some(domain) = host.strip_suffix(".amazonaws.com").or_else(|| host.strip_suffix(".amazonaws.com.cn")) else {
        return false;
    };
    let is_region = |region: &str| {
        region.contains('-')
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-')
    };
    domain == "queue"
        || domain.strip_prefix("sqs.").is_some_and(is_region)
        || domain.strip_suffix(".queue").is_some_and(is_region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_of_aws_and_of_a_local_environment() {
        for url in [
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq.fifo",
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/jobs",
            "https://us-west-2.queue.amazonaws.com/123456789012/jobs_1",
            "https://queue.amazonaws.com/123456789012/jobs",
        ] {
            assert_eq!(queue_url_problem(url, false), None, "{url}");
        }
        let name = "q".repeat(75);
        assert_eq!(queue_url_problem(&format!("http://localhost:4566/000000000000/{name}.fifo"), true), None);
        for (url, local, reason) in [
            ("not a url", false, "it must start with https://"),
            ("http://sqs.us-east-1.amazonaws.com/123456789012/jobs", false, "SQS is reached over https://"),
            ("https://q/123456789012/jobs", false, "the host `q` is not SQS's"),
            ("http://127.0.0.1:4566/123456789012/jobs", false, "the host `127.0.0.1:4566` is not SQS's; for a local"),
            ("https://sqs.us-east-1.amazonaws.com/jobs", false, "its path must be /<12-digit account id>/<queue name>"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/jobs/", false, "its path must be"),
            ("https://sqs.us-east-1.amazonaws.com/1234/jobs", false, "`1234` is not a 12-digit account id"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/my jobs", false, "the queue name `my jobs` must be"),
            ("https://sqs.us-east-1.amazonaws.com/123456789012/.fifo", false, "the queue name `.fifo` must be"),
            ("ftp://localhost/123456789012/jobs", true, "it must start with http:// or https://"),
        ] {
            let found = queue_url_problem(url, local).unwrap_or_default();
            assert!(found.starts_with(reason), "{url}: {found:?}");
        }
        let long = format!("https://sqs.us-east-1.amazonaws.com/123456789012/{}", "q".repeat(81));
        assert!(queue_url_problem(&long, false).is_some(), "more than 80 characters");
    }
}
