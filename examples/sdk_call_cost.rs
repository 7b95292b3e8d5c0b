//! The AWS SDK's own CPU cost per call, measured against an endpoint: the floor under the
//! daemon's CPU per job (every job is a few SDK calls). `bench/drain.py` runs it beside each
//! drain so the two figures come from the same machine and environment.
//!
//! `sdk_call_cost <endpoint-url> [calls] [concurrency]` makes STS GetCallerIdentity calls
//! through rootwarden's own SDK configuration (one shared HTTP client, keep-alive) on the
//! daemon's default one-thread runtime, and prints one JSON line with the process CPU
//! seconds (utime + stime) per call.

use std::time::Instant;

/// utime + stime of this process, in seconds (from /proc/self/stat, in clock ticks of 10 ms).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |index: usize| fields[index].parse::<f64>().expect("a tick count");
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().expect("usage: sdk_call_cost <endpoint-url> [calls] [concurrency]");
    let calls: usize = args.next().map_or(4000, |a| a.parse().expect("calls: a number"));
    let concurrency: usize = args.next().map_or(32, |a| a.parse().expect("concurrency: a number"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let aws = rootwarden::config::AwsConfig { endpoint_url: Some(endpoint), ..Default::default() };
        let credentials = aws_credential_types::Credentials::new("AKIAIOSFODNN7EXAMPLE", "not-a-secret", None, None, "bench");
        let sts = aws_sdk_sts::Client::new(&rootwarden::aws::sdk_config(&aws, Some(credentials)).await);
        // Warm up: connections opened, credentials and endpoint resolved once.
        for _ in 0..concurrency {
            sts.get_caller_identity().send().await.expect("GetCallerIdentity");
        }
        let per_task = calls / concurrency;
        let (cpu_before, started) = (process_cpu_seconds(), Instant::now());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let sts = sts.clone();
            tasks.spawn(async move {
                for _ in 0..per_task {
                    sts.get_caller_identity().send().await.expect("GetCallerIdentity");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let (cpu, seconds) = (process_cpu_seconds() - cpu_before, started.elapsed().as_secs_f64());
        let made = per_task * concurrency;
        println!(
            "{{\"calls\": {made}, \"concurrency\": {concurrency}, \"cpu_seconds\": {cpu:.3}, \"cpu_us_per_call\": {:.1}, \"calls_per_second\": {:.1}}}",
            cpu / made as f64 * 1e6,
            made as f64 / seconds
        );
    });
}
