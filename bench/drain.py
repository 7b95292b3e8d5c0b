#!/usr/bin/env python3
"""The core benchmark: rootwarden drains S3-unlock jobs from the local AWS environment.

Starts the local AWS environment (`python -m localaws serve --port 0`) on a free port, seeds an
organization of 20 member accounts with 2,000 locked buckets, then, once per run, starts the
release binary (`target/release/rootwarden --config X run`) as a child process and feeds the
intake queue so that about 100 messages wait at a time (moto's SQS receive slows as a queue
grows), until 2,000 jobs are posted; it drains the results queue as it goes and stops when every
job has a `succeeded` result. Per run it records jobs/s, AWS calls per job (from
/_localaws/call-counts, minus the harness's own calls, which it counts itself), daemon CPU
seconds per 1,000 jobs (/proc/<pid>/stat, start-up CPU subtracted) and peak RSS (VmHWM).

Runs differ only in telemetry: the log level (RUST_LOG) and whether spans are exported over
OTLP/HTTP to a sink inside this harness (ROOTWARDEN_TELEMETRY__OTLP_ENDPOINT).

Writes the figures between the markers of BENCHMARKS.md and the raw figures (JSON) and logs to
target/bench/. Every process it starts is stopped by its PID, also on error. Only 127.0.0.1.

Usage (from the repository root, with the localaws venv's python; `make bench` does it all):
    .venv/bin/python bench/drain.py [--jobs 2000] [--accounts 20] [--runs warn,info,info+otlp]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from bench.common import BENCHMARKS_MD, BINARY, OUT_DIR, REPO, SDK_CALL_COST, free_port, stop, write_section  # noqa: E402
from bench import common  # noqa: E402
from localaws.seed import deny_all_bucket_policy, seed  # noqa: E402

BEGIN, END = "<!-- bench:figures:begin -->", "<!-- bench:figures:end -->"
REGION = "us-east-1"
TASK = "S3UnlockBucketPolicy"
TASK_CALLS = ("s3.GetBucketPolicy", "s3.DeleteBucketPolicy")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets of the issue.
TARGET_OVERHEAD_CALLS = 0.3
TARGET_CPU_PER_1000 = 0.3
TARGET_RSS_MB = 40.0

RUNS = {
    # name: (RUST_LOG, export spans over OTLP)
    "warn": ("warn", False),
    "warn+otlp": ("warn", True),
    "info": ("info", False),
    "info+otlp": ("info", True),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Child:
    """A child process stopped by its PID (SIGTERM, then SIGKILL after a deadline)."""

    def __init__(self, name: str, popen: subprocess.Popen) -> None:
        self.name, self.popen = name, popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, deadline: float = 30.0) -> int | None:
        return stop(self.popen, deadline)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start_localaws(python: str, log_path: Path) -> tuple[Child, str]:
    popen, endpoint = common.start_localaws(python, log_path)
    return Child("localaws", popen), endpoint


# ---------------------------------------------------------------------------------------------
# AWS clients of the harness; every HTTP attempt they make is counted, so it can be subtracted.


class Harness:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.config = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                             max_pool_connections=16, connect_timeout=5, read_timeout=30)

    def client(self, service: str, **credentials):
        credentials = credentials or {"aws_access_key_id": "AKIDBENCHHARNESS0001", "aws_secret_access_key": "bench"}
        client = boto3.session.Session().client(service, endpoint_url=self.endpoint, region_name=REGION,
                                                config=self.config, **credentials)
        client.meta.events.register("before-send", self._count)
        return client

    def _count(self, event_name: str, **_kwargs) -> None:
        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.calls[f"{service}.{operation}"] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.calls)

    def control(self, method: str, path: str) -> dict:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def call_counts(self) -> Counter[str]:
        return Counter(self.control("GET", "/_localaws/call-counts")["counts"])


def member_credentials(harness: Harness, account_id: str) -> dict:
    role = f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
    creds = harness.client("sts").assume_role(RoleArn=role, RoleSessionName="bench")["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}


def seed_organization(harness: Harness, accounts: int, jobs: int) -> dict:
    """The organization (localaws.seed) and `jobs` locked buckets spread round-robin over the
    members, made the way seed.py makes them (OrganizationAccountAccessRole), but one role session
    per account and in parallel, which 2,000 buckets need."""
    started = time.monotonic()
    made = seed(harness.endpoint, accounts, locked_buckets=0, locked_queues=0)
    members = [a["id"] for a in made["accounts"]]
    s3_by_account = {account: harness.client("s3", **member_credentials(harness, account)) for account in members}
    buckets = [(f"bench-{members[i % len(members)]}-{i + 1:04d}", members[i % len(members)]) for i in range(jobs)]

    def create(bucket_account):
        bucket, account = bucket_account
        s3_by_account[account].create_bucket(Bucket=bucket)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, buckets))
    made["bench_buckets"] = buckets
    made["s3_by_account"] = s3_by_account
    lock_buckets(made)
    log(f"seeded {accounts} accounts and {jobs} buckets in {time.monotonic() - started:.1f} s")
    return made


def lock_buckets(made: dict) -> None:
    """(Re)puts the deny-all policy on every benchmark bucket."""
    def lock(bucket_account):
        bucket, account = bucket_account
        made["s3_by_account"][account].put_bucket_policy(Bucket=bucket, Policy=deny_all_bucket_policy(bucket))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lock, made["bench_buckets"]))


def queue_depth(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def sdk_call_cost(endpoint: str) -> dict:
    """The AWS SDK's own CPU per call against the environment (examples/sdk_call_cost: 4,000
    GetCallerIdentity calls, 32 at a time, rootwarden's SDK configuration, one-thread runtime).
    Times a job's calls, it is the floor under the daemon's CPU per job."""
    out = subprocess.run([str(SDK_CALL_COST), endpoint, "4000", "32"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def environment_capacity(harness: Harness, made: dict, seconds: float = 3.0, threads: int = 4) -> float:
    """S3 GetBucketPolicy calls/s the environment serves to a boto3 client (threads in this
    process), for context: the S3 half of a job alone, without SQS or the daemon."""
    buckets = made["bench_buckets"][:threads]
    s3s = [harness.client("s3", **member_credentials(harness, account)) for _, account in buckets]
    deadline = time.monotonic() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        while time.monotonic() < deadline:
            s3s[i].get_bucket_policy(Bucket=buckets[i][0])
            counts[i] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    return sum(counts) / (time.monotonic() - started)


# ---------------------------------------------------------------------------------------------
# The OTLP/HTTP sink: accepts POST /v1/traces with 200 and counts what arrives.


class OtlpSink:
    def __init__(self) -> None:
        sink = self
        self.requests, self.bytes, self.lock = 0, 0, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.rstrip("/") == "/v1/traces":
                    with sink.lock:
                        sink.requests += 1
                        sink.bytes += len(body)
                    self.send_response(200)
                else:
                    self.send_response(404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


# ---------------------------------------------------------------------------------------------
# One run


def config_toml(made: dict, queues: dict, listen_port: int) -> str:
    return f"""# Written by bench/drain.py
[aws]
region = "{REGION}"
endpoint_url = "{made['endpoint']}"
[intake]
queue_url = "{queues['intake']}"
dead_letter_queue_url = "{queues['dead_letter']}"
[results]
queue_url = "{queues['results']}"
[workers]
concurrency = 32
[telemetry]
listen = "127.0.0.1:{listen_port}"
log_format = "json"
"""


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def metric_samples(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_queues(harness: Harness, run: str) -> dict:
    """Fresh intake, dead-letter and results queues for one run, like seed.py's. A stopped
    daemon's abandoned long poll goes on in the environment for up to its wait time and would
    take (and hide for a visibility timeout) the next run's first messages from a shared queue."""
    sqs = harness.client("sqs")
    prefix = f"bench-{run}"
    dead_letter = sqs.create_queue(QueueName=f"{prefix}-intake-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    intake = sqs.create_queue(QueueName=f"{prefix}-intake", Attributes={
        "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]
    results = sqs.create_queue(QueueName=f"{prefix}-results")["QueueUrl"]
    return {"intake": intake, "dead_letter": dead_letter, "results": results}


def run_once(name: str, rust_log: str, export: bool, made: dict, harness: Harness, localaws: Child,
             jobs: int, depth: int, deadline_s: float, perf: bool = False) -> dict:
    run_id = f"{len(made.setdefault('runs_done', [])) + 1}-{name.replace('+', '-')}"
    made["runs_done"].append(run_id)
    queues = run_queues(harness, run_id)
    sqs_feed, sqs_drain = harness.client("sqs"), harness.client("sqs")

    run_dir = OUT_DIR / name.replace("+", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (run_dir / "rootwarden.toml").write_text(config_toml(made, queues, port))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "AWS_", "ROOTWARDEN_")) and k not in ("NOTIFY_SOCKET", "RUST_LOG")}
    env.update({"AWS_ACCESS_KEY_ID": "AKIDBENCHDAEMON00001", "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_EC2_METADATA_DISABLED": "true",
                "RUST_LOG": rust_log + os.environ.get("BENCH_RUST_LOG_EXTRA", "")})
    sink = OtlpSink() if export else None
    if sink:
        env["ROOTWARDEN_TELEMETRY__OTLP_ENDPOINT"] = sink.url

    counts_before_start = harness.call_counts()
    localaws_cpu_before = proc_cpu_seconds(localaws.pid)
    daemon_log = open(run_dir / "rootwarden.log", "w")
    daemon = Child("rootwarden", subprocess.Popen(
        [str(BINARY), "--config", str(run_dir / "rootwarden.toml"), "run"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=daemon_log, stderr=subprocess.STDOUT))
    exit_code: int | None = None
    profiler: Child | None = None
    try:
        ready_by = time.monotonic() + 30
        while http_get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
            if daemon.popen.poll() is not None or time.monotonic() > ready_by:
                raise RuntimeError(f"rootwarden did not become ready; see {run_dir / 'rootwarden.log'}")
            time.sleep(0.05)
        time.sleep(0.5)  # let the first long poll start
        startup_cpu = proc_cpu_seconds(daemon.pid)
        startup_rss_kb = proc_status_kb(daemon.pid, "VmRSS")
        if perf:
            profiler = Child("perf", subprocess.Popen(
                ["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,32768", "-p", str(daemon.pid),
                 "-o", str(run_dir / "perf.data")], stdout=subprocess.DEVNULL, stderr=open(run_dir / "perf.log", "w")))
            time.sleep(1)
        harness_before = harness.snapshot()
        counts_before = harness.call_counts()
        localaws_cpu_start = proc_cpu_seconds(localaws.pid)
        harness_cpu_start = time.process_time()

        outcomes: Counter[str] = Counter()
        job_ids: set[str] = set()
        redelivered: list[str] = []
        stop = threading.Event()
        errors: list[BaseException] = []
        timing: dict[str, float] = {}
        depth_samples: list[int] = []
        hard_deadline = time.monotonic() + deadline_s

        def feed() -> None:
            try:
                posted = 0
                while posted < jobs and not stop.is_set() and time.monotonic() < hard_deadline:
                    visible, _ = queue_depth(sqs_feed, queues["intake"])
                    depth_samples.append(visible)
                    batches = min(max(0, depth - visible) // 10, (jobs - posted + 9) // 10)
                    if batches == 0:
                        time.sleep(0.1)
                        continue
                    for _ in range(batches):
                        entries = []
                        for i in range(posted, min(posted + 10, jobs)):
                            bucket, account = made["bench_buckets"][i]
                            body = {"version": 1, "job_id": f"bench-{run_id}-{i + 1:05d}",
                                    "account_id": account, "task": TASK, "bucket": bucket,
                                    "requested_by": "bench", "ticket": "BENCH-1"}
                            entries.append({"Id": str(i), "MessageBody": json.dumps(body)})
                        timing.setdefault("first_job", time.monotonic())
                        answer = sqs_feed.send_message_batch(QueueUrl=queues["intake"], Entries=entries)
                        if answer.get("Failed"):
                            raise RuntimeError(f"SendMessageBatch failed entries: {answer['Failed']}")
                        posted += len(entries)
                timing["last_job_posted"] = time.monotonic()
            except BaseException as err:  # reported by the main thread
                errors.append(err)
                stop.set()

        def drain() -> None:
            try:
                while len(job_ids) < jobs and not stop.is_set() and time.monotonic() < hard_deadline:
                    messages = sqs_drain.receive_message(
                        QueueUrl=queues["results"], MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
                    if not messages:
                        continue
                    for message in messages:
                        result = json.loads(message["Body"])
                        if result.get("job_id") not in job_ids:
                            outcomes[result.get("outcome")] += 1
                            job_ids.add(result.get("job_id"))
                            if result.get("attempt", 1) > 1:
                                redelivered.append(result.get("job_id"))
                    timing["last_result"] = time.monotonic()
                    sqs_drain.delete_message_batch(QueueUrl=queues["results"], Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            except BaseException as err:
                errors.append(err)
                stop.set()

        threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain, daemon=True)]
        for thread in threads:
            thread.start()
        progress_at = time.monotonic()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
            if time.monotonic() - progress_at > 10:
                progress_at = time.monotonic()
                log(f"{name}: {len(job_ids)}/{jobs} results")
            if daemon.popen.poll() is not None:
                stop.set()
                raise RuntimeError(f"rootwarden exited early with {daemon.popen.returncode}; see its log")
        if errors:
            raise errors[0]
        if len(job_ids) < jobs:
            raise RuntimeError(f"{name}: only {len(job_ids)} of {jobs} results within {deadline_s:.0f} s")

        # Just before stopping: CPU and peak memory of the daemon.
        cpu_total = proc_cpu_seconds(daemon.pid)
        peak_rss_kb = proc_status_kb(daemon.pid, "VmHWM")
        localaws_cpu_end = proc_cpu_seconds(localaws.pid)
        harness_cpu_end = time.process_time()
        _, metrics_text = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        if profiler:
            os.kill(profiler.pid, signal.SIGINT)
            profiler.popen.wait(60)
        exit_code = daemon.stop()
    finally:
        if exit_code is None:
            daemon.stop()
        if profiler:
            profiler.stop()
        daemon_log.close()
        if sink:
            sink.stop()

    harness_after = harness.snapshot()
    counts_after = harness.call_counts()
    harness_calls = harness_after - harness_before
    daemon_calls = Counter({k: v for k, v in (counts_after - counts_before).items()})
    daemon_calls.subtract(harness_calls)
    daemon_calls = Counter({k: v for k, v in daemon_calls.items() if v})
    startup_calls = counts_before - counts_before_start
    dead_letters = queue_depth(sqs_feed, queues["dead_letter"])
    wall = timing["last_result"] - timing["first_job"]
    drain_cpu = cpu_total - startup_cpu
    total_calls = sum(daemon_calls.values())
    task_calls = sum(daemon_calls[k] for k in TASK_CALLS)
    all_calls = total_calls + sum(startup_calls.values())
    result = {
        "name": name, "rust_log": rust_log, "otlp_export": export, "jobs": jobs,
        "outcomes": dict(outcomes), "dead_letter_messages": dead_letters[0] + dead_letters[1],
        "exit_code": exit_code, "redelivered": redelivered,
        "wall_s": wall, "jobs_per_s": jobs / wall,
        "daemon_cpu_startup_s": startup_cpu, "daemon_cpu_total_s": cpu_total, "daemon_cpu_drain_s": drain_cpu,
        "cpu_s_per_1000_jobs": drain_cpu / jobs * 1000,
        "daemon_cpu_utilisation": drain_cpu / wall,
        "startup_rss_mb": startup_rss_kb / 1024, "peak_rss_mb": peak_rss_kb / 1024,
        "localaws_cpu_utilisation": (localaws_cpu_end - localaws_cpu_start) / wall,
        "localaws_cpu_startup_s": localaws_cpu_start - localaws_cpu_before,
        "harness_cpu_utilisation": (harness_cpu_end - harness_cpu_start) / wall,
        "daemon_calls": dict(sorted(daemon_calls.items())),
        "daemon_startup_calls": dict(sorted(startup_calls.items())),
        "harness_calls": dict(sorted(harness_calls.items())),
        "calls_per_job": total_calls / jobs,
        "calls_per_job_with_startup": all_calls / jobs,
        "task_calls_per_job": task_calls / jobs,
        "overhead_calls_per_job": (total_calls - task_calls) / jobs,
        "overhead_calls_per_job_with_startup": (all_calls - task_calls) / jobs,
        "intake_depth_mean": sum(depth_samples) / max(1, len(depth_samples)),
        "intake_depth_max": max(depth_samples, default=0),
        "metrics": {m: metric_samples(metrics_text, m) for m in (
            "rootwarden_session_cache_hits_total", "rootwarden_session_cache_misses_total",
            "rootwarden_assume_root_requests_total", "rootwarden_visibility_extensions_total",
            "rootwarden_aws_errors_total", "rootwarden_messages_deleted_total")},
        "otlp_requests": sink.requests if sink else None,
        "otlp_bytes": sink.bytes if sink else None,
        "log_bytes": (run_dir / "rootwarden.log").stat().st_size,
        "loadavg_1m_at_end": os.getloadavg()[0],
    }
    log(f"{name}: {result['jobs_per_s']:.1f} jobs/s, {result['calls_per_job']:.3f} calls/job, "
        f"{result['cpu_s_per_1000_jobs']:.3f} CPU-s/1000 jobs, peak RSS {result['peak_rss_mb']:.1f} MB, "
        f"outcomes {dict(outcomes)}, exit {exit_code}")
    return result


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip() or "rustc ?"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
            "rustc": rustc, "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def revision() -> str:
    """The commit measured, and whether the working tree differed from it."""
    git = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()  # noqa: E731
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    return head + (" with uncommitted changes in src/" if dirty else "")


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def sdk_floor(run: dict, context: dict) -> float:
    """CPU-s per 1,000 jobs that the SDK calls alone cost: calls per job × CPU per bare call."""
    return run["calls_per_job"] * context["sdk_cpu_us_per_call"] / 1000


def render(results: list[dict], context: dict) -> str:
    m = context["machine"]

    lines = [
        BEGIN,
        "<!-- Written by bench/drain.py (`make bench`); edits here are overwritten. -->",
        "",
        f"- date: {context['date']}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"{m['rustc']}, Python {m['python']}; the daemon, the local AWS environment and the harness share these CPUs",
        f"- command: `make bench` (`scripts/bench` → `bench/drain.py --jobs {context['jobs']} "
        f"--accounts {context['accounts']} --depth {context['depth']}`), release build of {context['revision']}, "
        "`workers.concurrency = 32`, `workers.runtime_threads = 1` (the default), other settings default",
        f"- environment capacity for context: the local AWS environment serves {context['s3_capacity']:.0f} "
        "S3 GetBucketPolicy calls/s to a 4-thread boto3 client (the S3 half of a job alone, no SQS), "
        f"so about {context['s3_capacity'] / 2:.0f} jobs/s is its ceiling before any SQS work",
        f"- the AWS SDK's own cost on this machine: {context['sdk_cpu_us_per_call']:.0f} µs of CPU per bare call "
        "(`examples/sdk_call_cost`: 4,000 STS GetCallerIdentity calls, 32 at a time, rootwarden's SDK "
        "configuration and one-thread runtime, keep-alive connections), so a job's calls alone cost "
        f"{sdk_floor(results[0], context):.3f} CPU-s per 1,000 jobs before rootwarden does anything",
        "",
        "| run | RUST_LOG | OTLP export | jobs/s | AWS calls/job | overhead calls/job | daemon CPU-s per 1,000 jobs "
        "| daemon CPU use | localaws CPU use | harness CPU use | peak RSS (MB) | outcomes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        outcomes = ", ".join(f"{v} {k}" for k, v in sorted(r["outcomes"].items()))
        lines.append(
            f"| {r['name']} | {r['rust_log']} | {'yes' if r['otlp_export'] else 'no'} | {r['jobs_per_s']:.1f} "
            f"| {r['calls_per_job']:.3f} | {r['overhead_calls_per_job']:.3f} | {r['cpu_s_per_1000_jobs']:.3f} "
            f"| {r['daemon_cpu_utilisation'] * 100:.0f}% | {r['localaws_cpu_utilisation'] * 100:.0f}% "
            f"| {r['harness_cpu_utilisation'] * 100:.0f}% | {r['peak_rss_mb']:.1f} | {outcomes} |")
    lines += [
        "",
        "Columns: jobs/s from the first job posted to the last result received; AWS calls/job = the daemon's "
        "calls while draining (environment call counts minus the harness's own) / jobs; overhead = those "
        "minus the task's own GetBucketPolicy + DeleteBucketPolicy; CPU = utime + stime of the daemon "
        "from readiness to just before SIGTERM (its start-up CPU subtracted); CPU use = CPU seconds / wall "
        "seconds (100% = one CPU; localaws is one Python process, so about 100% means it is saturated; "
        "harness = this script's feeder and drain threads, so the three together show how busy the machine was).",
        "",
        "Start-up (not in the figures above): " + "; ".join(
            f"{r['name']}: {r['daemon_cpu_startup_s']:.2f} CPU-s, {r['startup_rss_mb']:.1f} MB RSS, "
            f"{sum(r['daemon_startup_calls'].values())} calls" for r in results) + ".",
        "",
        "Telemetry overhead (daemon CPU-s per 1,000 jobs, difference to the `warn` run): " + "; ".join(
            f"{r['name']}: {r['cpu_s_per_1000_jobs'] - results[0]['cpu_s_per_1000_jobs']:+.3f}"
            + (f" ({r['otlp_requests']} OTLP requests, {r['otlp_bytes'] / 1024:.0f} KiB)" if r["otlp_export"] else "")
            + (f" ({r['log_bytes'] / 1024:.0f} KiB of log)" if r["log_bytes"] > 4096 else "")
            for r in results[1:]) + "." if len(results) > 1 else "",
        "",
        "### AWS calls per job, by operation (daemon only)",
        "",
    ]
    operations = sorted({op for r in results for op in r["daemon_calls"]})
    lines.append("| operation | " + " | ".join(r["name"] for r in results) + " |")
    lines.append("|---|" + "---:|" * len(results))
    for op in operations:
        lines.append(f"| {op} | " + " | ".join(
            f"{r['daemon_calls'].get(op, 0) / r['jobs']:.4f} ({r['daemon_calls'].get(op, 0)})" for r in results) + " |")
    lines.append("| **total** | " + " | ".join(
        f"**{r['calls_per_job']:.4f}** ({sum(r['daemon_calls'].values())})" for r in results) + " |")
    batch = lambda op, r: r["jobs"] / r["daemon_calls"][op] if r["daemon_calls"].get(op) else float("nan")  # noqa: E731
    lines += [
        "",
        "Entries per batch call (jobs / calls): " + "; ".join(
            f"{r['name']}: ReceiveMessage {batch('sqs.ReceiveMessage', r):.1f}, DeleteMessageBatch "
            f"{batch('sqs.DeleteMessageBatch', r):.1f}, SendMessageBatch (results) {batch('sqs.SendMessageBatch', r):.1f}"
            for r in results) + ".",
        "",
        "### Targets",
        "",
        "| target | " + " | ".join(r["name"] for r in results) + " |",
        "|---|" + "---|" * len(results),
        f"| AWS calls per job ≤ task's own ({len(TASK_CALLS)}) + {TARGET_OVERHEAD_CALLS} | " + " | ".join(
            f"{r['calls_per_job']:.3f}: {verdict(r['overhead_calls_per_job'] <= TARGET_OVERHEAD_CALLS)}" for r in results) + " |",
        f"| < {TARGET_CPU_PER_1000} daemon CPU-s per 1,000 jobs | " + " | ".join(
            f"{r['cpu_s_per_1000_jobs']:.3f}: {verdict(r['cpu_s_per_1000_jobs'] < TARGET_CPU_PER_1000)}" for r in results) + " |",
        "| (for reference: the SDK floor, calls/job × the SDK's CPU per call) | " + " | ".join(
            f"{sdk_floor(r, context):.3f} ({r['cpu_s_per_1000_jobs'] / sdk_floor(r, context):.2f}× of it)" for r in results) + " |",
        f"| < {TARGET_RSS_MB:.0f} MB peak RSS | " + " | ".join(
            f"{r['peak_rss_mb']:.1f}: {verdict(r['peak_rss_mb'] < TARGET_RSS_MB)}" for r in results) + " |",
        "| throughput limited by the environment (localaws CPU ≥ 90% of one CPU, daemon well below) | " + " | ".join(
            f"{r['localaws_cpu_utilisation'] * 100:.0f}% vs {r['daemon_cpu_utilisation'] * 100:.0f}%: "
            f"{verdict(r['localaws_cpu_utilisation'] >= 0.9 and r['daemon_cpu_utilisation'] < 0.5)}" for r in results) + " |",
        "",
        f"Raw figures: `target/bench/drain.json`; daemon logs: `target/bench/<run>/rootwarden.log` "
        f"(not committed). 1-minute load average at the end of each run: "
        + ", ".join(f"{r['name']} {r['loadavg_1m_at_end']:.2f}" for r in results) + ". Mean intake depth seen by the feeder: "
        + ", ".join(f"{r['name']} {r['intake_depth_mean']:.0f} (max {r['intake_depth_max']})" for r in results) + ".",
        END,
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--depth", type=int, default=100, help="messages kept waiting in the intake queue")
    parser.add_argument("--runs", default="warn,warn+otlp,info,info+otlp",
                        help=f"comma-separated, from {', '.join(RUNS)}; the first is the reference")
    parser.add_argument("--deadline", type=float, default=600, help="seconds a run may take")
    parser.add_argument("--perf", action="store_true",
                        help="profile the daemon with perf record during each drain (target/bench/<run>/perf.data)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; known: {list(RUNS)}")
    for built in (BINARY, SDK_CALL_COST):
        if not built.exists():
            parser.error(f"{built} is missing: scripts/bench builds it (cargo build --release --example sdk_call_cost)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    localaws, endpoint = start_localaws(sys.executable, OUT_DIR / "localaws.log")
    log(f"localaws (pid {localaws.pid}) at {endpoint}")
    try:
        harness = Harness(endpoint)
        made = seed_organization(harness, args.accounts, args.jobs)
        capacity = environment_capacity(harness, made)
        log(f"environment: {capacity:.0f} S3 GetBucketPolicy calls/s")
        sdk = sdk_call_cost(endpoint)
        log(f"AWS SDK alone: {sdk['cpu_us_per_call']:.0f} µs of CPU per call")
        results = []
        for index, name in enumerate(runs):
            if index:
                lock_buckets(made)
            rust_log, export = RUNS[name]
            results.append(run_once(name, rust_log, export, made, harness, localaws,
                                    args.jobs, args.depth, args.deadline, args.perf))
    finally:
        code = localaws.stop()
        log(f"localaws stopped ({code})")

    context = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": machine(), "revision": revision(), "jobs": args.jobs, "accounts": args.accounts, "depth": args.depth,
               "s3_capacity": capacity, "sdk_cpu_us_per_call": sdk["cpu_us_per_call"]}
    (OUT_DIR / "drain.json").write_text(json.dumps({"context": context, "runs": results}, indent=2))
    failures = [r["name"] for r in results
                if r["exit_code"] != 0 or r["outcomes"] != {"succeeded": args.jobs} or r["dead_letter_messages"]]
    if failures:
        log(f"runs without a clean drain (not written to BENCHMARKS.md): {failures}")
        return 1
    if not args.no_write:
        write_section(BEGIN, END, render(results, context))
        log(f"figures written to {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
