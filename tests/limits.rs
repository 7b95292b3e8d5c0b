//! SQS's real limits: hostile and oversized bodies among valid jobs each end in exactly one
//! result, and every rejected one reaches the dead-letter queue byte for byte with its reason;
//! a batch SQS finds too long is split, never retried unchanged; a dead-letter queue too small
//! for a message leaves it to SQS's redrive with one result saying so; one failed entry of a
//! batch call is retried alone, nothing lost, nothing sent twice. The local environment
//! enforces SQS's documented size rules (localaws/sqs_limits.py).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(240);
/// How long the results queue must stay quiet before a test concludes no duplicate will come.
const QUIET: Duration = Duration::from_secs(3);
/// `MaximumMessageSize` of the seeded queues: 256 KiB, the limit the defect was found with.
const LIMIT: usize = 262_144;

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().unwrap()
}

/// One hostile body of kind `i % 5`: large garbage, a huge echoed task name, a huge unknown
/// field, a small invalid job, or a body that, with its producer attribute, fills the queue's
/// limit to the byte.
fn hostile(i: usize, account: &str) -> (String, Vec<(String, MessageAttributeValue)>) {
    match i % 5 {
        0 => (format!("{i}:{}", "x".repeat(200_000 + i * 300)), Vec::new()),
        1 => (json!({"version": 1, "job_id": format!("h{i}"), "account_id": account, "task": "T".repeat(240_000)}).to_string(), Vec::new()),
        2 => (json!({"version": 1, "job_id": format!("h{i}"), "account_id": account, "task": "IAMAuditRootUserCredentials", "padding": "p".repeat(150_000)}).to_string(), Vec::new()),
        3 => (format!("{{\"version\": 1, \"job_id\": \"h{i}\"}}"), vec![("traceparent".into(), string_attribute("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))]),
        _ => {
            // body + "note" + "String" + value = LIMIT: the dead-letter copy must drop the
            // note to make room for the outcome and reason, and keep the body whole.
            let note = "n".repeat(10_000);
            let body_len = LIMIT - ("note".len() + "String".len() + note.len());
            let prefix = format!("{i}:");
            (format!("{prefix}{}", "y".repeat(body_len - prefix.len())), vec![("note".into(), string_attribute(&note))])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_oversized_bodies_each_end_in_one_result_and_a_faithful_dead_letter() {
    const HOSTILE: usize = 150;
    const VALID: usize = 30;
    let local = LocalAws::start();
    let seed = local.seed_with(3, 0, 0, &["--max-message-size", &LIMIT.to_string()]);
    let account = seed.accounts()[0].clone();
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;

    let mut expected_dead: HashMap<String, String> = HashMap::new(); // message id -> body
    let mut valid_ids = HashSet::new();
    let sends = (0..HOSTILE + VALID).map(|i| {
        let (sqs, intake, account) = (queues.sqs.clone(), seed.queue("intake"), account.clone());
        async move {
            let (body, attributes, valid) = if i % 6 == 5 {
                (job(&format!("valid-{i}"), &account, "IAMAuditRootUserCredentials", json!({})), Vec::new(), true)
            } else {
                let (body, attributes) = hostile(i, &account);
                (body, attributes, false)
            };
            let mut request = sqs.send_message().queue_url(intake).message_body(&body);
            for (name, value) in attributes {
                request = request.message_attributes(name, value);
            }
            let id = request.send().await.expect("the intake accepts every body within its limit").message_id.unwrap();
            (id, body, valid)
        }
    });
    for (id, body, valid) in futures::future::join_all(sends).await {
        if valid {
            valid_ids.insert(id);
        } else {
            expected_dead.insert(id, body);
        }
    }
    assert_eq!((expected_dead.len(), valid_ids.len()), (HOSTILE, VALID));

    let results = queues.results_until_quiet(HOSTILE + VALID, QUIET, WAIT).await;
    let mut per_message: HashMap<&str, Vec<&Value>> = HashMap::new();
    for result in &results {
        per_message.entry(result["message_id"].as_str().unwrap()).or_default().push(result);
        let size = result.to_string().len();
        assert!(size < 16 * 1024, "a result stays small however large its message: {size} bytes");
    }
    let duplicates = per_message.values().filter(|r| r.len() > 1).count();
    assert_eq!(duplicates, 0, "exactly one result per message");
    for id in expected_dead.keys() {
        let result = per_message.get(id.as_str()).unwrap_or_else(|| panic!("message {id} has a result"))[0];
        assert_eq!(result["outcome"], "rejected", "{result}");
    }
    for id in &valid_ids {
        assert_eq!(per_message[id.as_str()][0]["outcome"], "succeeded");
    }
    let echoed = results
        .iter()
        .find(|r| r["reason"].as_str().unwrap_or("").contains("TTTT"))
        .expect("a huge task name is echoed");
    assert!(echoed["reason"].as_str().unwrap().contains("more characters cut]"), "{}", echoed["reason"]);

    let dead = queues.dead_letters_raw(HOSTILE, WAIT).await;
    let mut dead_bodies: Vec<&String> = dead.iter().map(|(body, _)| body).collect();
    let mut sent_bodies: Vec<&String> = expected_dead.values().collect();
    dead_bodies.sort();
    sent_bodies.sort();
    assert!(dead_bodies == sent_bodies, "every rejected body is in the dead-letter queue byte for byte, once");
    for (body, attributes) in &dead {
        let attribute = |name: &str| attributes.get(name).and_then(|v| v.string_value()).unwrap_or_default();
        assert_eq!(attribute("rootwarden-outcome"), "rejected");
        assert!(!attribute("rootwarden-reason").is_empty());
        if body.contains(":yyyy") {
            assert!(attribute("rootwarden-reason").starts_with("[attributes note dropped"), "{}", attribute("rootwarden-reason"));
        } else if body.starts_with("{\"version\": 1") {
            assert!(attributes.contains_key("traceparent"), "the producer's attributes are kept when they fit");
        }
    }
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    let text = metrics.render();
    assert_eq!(metric_value(&text, "rootwarden_messages_dead_lettered_total{outcome=\"rejected\"}"), HOSTILE as f64);
    assert_eq!(queues.intake_depth().await, (0, 0));
    assert!(!text.contains("BatchRequestTooLong"), "batches are planned within the limit:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sqs_finds_too_long_is_split_not_retried_unchanged() {
    let local = LocalAws::start();
    let seed = local.seed_with(2, 0, 0, &["--max-message-size", &LIMIT.to_string()]);
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    // The daemon reads the dead-letter queue's limit at its first dead letter...
    queues.send("first").await;
    queues.dead_letters(1, WAIT).await;
    queues.results(1, WAIT).await;
    // ...then an operator lowers it: the daemon's batches, planned by the old limit, are too long.
    queues
        .sqs
        .set_queue_attributes()
        .queue_url(seed.queue("dead_letter"))
        .attributes(QueueAttributeName::MaximumMessageSize, "102400")
        .send()
        .await
        .unwrap();
    // The first send stalls, so the others gather into one batch behind it.
    local.fault(json!({"service": "sqs", "operation": "SendMessageBatch", "latency_ms": 1000, "count": 1}));
    let bodies: Vec<String> = (0..6).map(|i| format!("{i}:{}", "z".repeat(60_000))).collect();
    for body in &bodies {
        queues.send(body).await;
    }
    let results = queues.results_until_quiet(6, QUIET, WAIT).await;
    assert_eq!(results.len(), 6, "one result each");
    let dead = queues.dead_letters(6, WAIT).await;
    let dead_bodies: HashSet<&String> = dead.iter().map(|(body, _, _)| body).collect();
    assert_eq!(dead_bodies, bodies.iter().collect(), "every body dead-lettered once");
    let too_long = daemon.metric(
        "rootwarden_aws_errors_total{code=\"AWS.SimpleQueueService.BatchRequestTooLong\",operation=\"SendMessageBatch\",service=\"sqs\"}",
    );
    assert!(too_long >= 1.0, "the gathered batch met SQS's limit at least once");
    daemon.stop().await;
    assert_eq!(queues.intake_depth().await, (0, 0));
}

/// An intake of 256 KiB whose redrive (after 2 receives) goes to a dead-letter queue of 64 KiB:
/// (intake URL, dead-letter queue URL).
async fn large_intake_small_dead_letter_queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let small_dead_letter = sqs
        .create_queue()
        .queue_name("small-dlq")
        .attributes(QueueAttributeName::MaximumMessageSize, "65536")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dead_letter_arn = sqs
        .get_queue_attributes()
        .queue_url(&small_dead_letter)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let intake = sqs
        .create_queue()
        .queue_name("large-intake")
        .attributes(QueueAttributeName::MaximumMessageSize, LIMIT.to_string())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (intake, small_dead_letter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_warns_at_start_up_when_the_dead_letter_queue_is_smaller_than_the_intake() {
    let local = LocalAws::start();
    let seed = local.seed(1, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    let (intake, small_dead_letter) = large_intake_small_dead_letter_queue(&queues.sqs).await;
    // The dead-letter URL first: the intake's URL is a prefix of it.
    let toml = config_toml(&local, &seed, "")
        .replace(&seed.queue("dead_letter"), &small_dead_letter)
        .replace(&seed.queue("intake"), &intake);
    let daemon = DaemonProcess::start(&toml, &[]);
    let line = daemon.wait_for_line("MaximumMessageSize is smaller than the intake queue's", Duration::from_secs(60));
    assert!(line.contains("\"dead_letter_limit\":65536") && line.contains("\"intake_limit\":262144"), "{line}");
    daemon.signal("TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_dead_letter_queue_cannot_hold_is_left_to_the_redrive_with_one_result() {
    let local = LocalAws::start();
    let seed = local.seed(2, 0, 0);
    let queues = Queues::new(&local, &seed).await;
    let sqs = &queues.sqs;
    let (intake, small_dead_letter) = large_intake_small_dead_letter_queue(sqs).await;
    let mut config = config(&local, &seed);
    config.intake.queue_url = Some(intake.clone());
    config.intake.dead_letter_queue_url = Some(small_dead_letter.clone());
    config.intake.max_receive_count = 2;
    config.intake.visibility_timeout = Duration::from_secs(2);
    let daemon = RunningDaemon::start(config).await;

    let body = "w".repeat(100_000);
    sqs.send_message().queue_url(&intake).message_body(&body).send().await.unwrap();
    let results = queues.results_until_quiet(1, Duration::from_secs(6), WAIT).await;
    assert_eq!(results.len(), 1, "one result, on the last attempt: {results:?}");
    let result = &results[0];
    assert_eq!(result["outcome"], "rejected");
    assert_eq!(result["attempt"], 2);
    assert!(result["reason"].as_str().unwrap().contains("the dead-letter queue cannot hold this message"), "{result}");
    // Never deleted: SQS's redrive policy moved it, body whole, without our attributes.
    let moved = sqs
        .receive_message()
        .queue_url(&small_dead_letter)
        .wait_time_seconds(5)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(moved.len(), 1, "SQS's redrive moved the message");
    assert_eq!(moved[0].body.as_deref(), Some(body.as_str()));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_entry_of_a_batch_is_retried_alone_nothing_lost_nothing_twice() {
    let local = LocalAws::start();
    let seed = local.seed(3, 0, 0);
    let account = seed.accounts()[0].clone();
    for operation in ["SendMessageBatch", "DeleteMessageBatch"] {
        local.fault(json!({"service": "sqs", "operation": operation, "error": "InternalError", "entries": 1, "count": 1}));
    }
    let queues = Queues::new(&local, &seed).await;
    let daemon = RunningDaemon::start(config(&local, &seed)).await;
    let mut invalid = HashSet::new();
    for i in 0..20 {
        if i % 4 == 0 {
            invalid.insert(queues.send(&format!("not a job {i}")).await);
        } else {
            queues.send(&job(&format!("audit-{i}"), &account, "IAMAuditRootUserCredentials", json!({}))).await;
        }
    }
    let results = queues.results_until_quiet(20, QUIET, WAIT).await;
    let ids: Vec<&str> = results.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 20, "no result lost, none sent twice: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 20);
    let dead = queues.dead_letters(invalid.len(), WAIT).await;
    assert_eq!(dead.len(), 5);
    let faults = local.get("/_localaws/faults")["faults"].as_array().unwrap().clone();
    assert!(faults.iter().all(|f| f["fired"].as_u64().unwrap() >= 1), "each entry fault fired: {faults:?}");
    let metrics = daemon.metrics.clone();
    daemon.stop().await;
    assert!(metric_value(&metrics.render(), "rootwarden_delete_failures_total") >= 1.0);
    assert_eq!(metric_value(&metrics.render(), "rootwarden_messages_deleted_total"), 20.0);
    assert_eq!(queues.intake_depth().await, (0, 0), "every delete landed, the failed ones on a retry");
    // The dead-letter queue got each invalid message once: nothing more is waiting there.
    let extra = queues.sqs.receive_message().queue_url(seed.queue("dead_letter")).wait_time_seconds(1).send().await.unwrap();
    assert!(extra.messages.unwrap_or_default().is_empty(), "no dead letter sent twice");
}
