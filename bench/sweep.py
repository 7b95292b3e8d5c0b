#!/usr/bin/env python3
"""The sweep benchmark: an audit sweep of 500 accounts against the local AWS environment, beside
a sequential one-account-at-a-time loop and the environment's own capacity, measured in the same
run on the same environment.

Starts the local AWS environment (`python -m localaws serve --port 0`), seeds an organization of
`--accounts` members in mixed states, then, for each `--latency-ms` value (a delay the
environment adds to every STS and IAM call, through its faults API, to stand in for a real AWS
round trip; 0 = the bare local environment, bound by its CPU):

1. capacity: AssumeRoot calls/s and IAM calls/s (the audit's reads) that the environment serves
   with `--threads` concurrent minimal HTTP clients (keep-alive connections, hand-made unsigned
   requests: the environment does not check signatures, so the client costs next to nothing and
   the figure is the environment's, not a client's); the best of `--capacity-runs` measurements
   (a capacity is a peak, and a single measurement varied by up to a third from run to run);
2. sequential: the scripts' loop, one account at a time: AssumeRoot, GetAccountSummary, GetUser
   per account, with the same minimal client (the fastest such loop can be; the AWS CLI adds a
   process start per call);
3. sweep: the release daemon (`rootwarden run`, `workers.concurrency = --concurrency`,
   `policy.assume_root_rate = --rate` so the token bucket is not the bound) and
   `rootwarden sweep --task IAMAuditRootUserCredentials` as operators run them; the time is the
   sweep command's, from start to exit (the daemon is already running, as in production); the
   median of `--sweeps` sweeps, each a new sweep with a daemon of its own. Each report is
   checked: one `succeeded` row per account.

Then: speed-up = sequential / sweep (the median); capacity time = AssumeRoot calls the sweep made / AssumeRoot
rate + IAM calls it made / IAM rate (from /_localaws/call-counts); target: speed-up >= 10 and
sweep <= 1.5 x capacity time. SQS calls are shown but not in the capacity time (the issue's
definition).

Writes its section of BENCHMARKS.md between `<!-- sweep-benchmark:start -->` and
`<!-- sweep-benchmark:end -->` (the file is created with only that section if missing) and the
raw figures to target/bench/sweep.json. Every process it starts is stopped by its PID, also on
error. Only 127.0.0.1.

Usage (from the repository root, after `cargo build --release`):
    .venv/bin/python bench/sweep.py [--accounts 500] [--latency-ms 0,50] [--threads 64]
                                    [--capacity-runs 3] [--sweeps 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.common import BINARY, OUT_DIR, REPO, free_port, write_section  # noqa: E402
from localaws.seed import seed  # noqa: E402

BEGIN, END = "<!-- sweep-benchmark:start -->", "<!-- sweep-benchmark:end -->"
REGION = "us-east-1"
MANAGEMENT_KEY = "AKIDMANAGEMENT000001"
AUDIT_POLICY = "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"
# The audit's reads of one account without access keys (GetAccessKeyLastUsed is per key).
AUDIT_IAM_READS = ("GetAccountSummary", "GetUser", "GetLoginProfile", "ListAccessKeys", "ListMFADevices",
                   "ListSigningCertificates")
TARGET_SPEEDUP, TARGET_CAPACITY_RATIO = 10.0, 1.5


def log(message: str) -> None:
    print(f"[sweep-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Every child this harness starts, stopped by PID at the end."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        child = subprocess.Popen(args, cwd=REPO, **kwargs)
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen, timeout: float = 30) -> None:
        common.stop(child, timeout)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child, timeout=10)


def start_localaws(processes: Processes) -> tuple[subprocess.Popen, str]:
    child, endpoint = common.start_localaws(sys.executable, OUT_DIR / "sweep-localaws.log")
    processes.children.append(child)
    return child, endpoint


# ---------------------------------------------------------------------------------------------
# A minimal AWS query client (one keep-alive connection per thread, unsigned)


class Client:
    def __init__(self, endpoint: str) -> None:
        self.host = endpoint.split("//", 1)[1]
        self.local = threading.local()

    def connection(self) -> http.client.HTTPConnection:
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection(self.host, timeout=60)
        return self.local.connection

    def call(self, service: str, params: dict, key: str, token: str | None = None) -> str:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/{service}/aws4_request, "
                             "SignedHeaders=host, Signature=0",
            "X-Amz-Date": "20260101T000000Z",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        connection = self.connection()
        connection.request("POST", "/", urllib.parse.urlencode(params), headers)
        response = connection.getresponse()
        body = response.read().decode()
        # NoSuchEntity is an answer (GetLoginProfile of a root user without a password).
        if response.status != 200 and "<Code>NoSuchEntity</Code>" not in body:
            raise RuntimeError(f"{service}.{params['Action']}: HTTP {response.status}: {body[:300]}")
        return body

    def assume_root(self, account: str) -> tuple[str, str]:
        body = self.call("sts", {"Action": "AssumeRoot", "Version": "2011-06-15", "TargetPrincipal": account,
                                 "TaskPolicyArn.arn": AUDIT_POLICY}, MANAGEMENT_KEY)
        key = re.search(r"<AccessKeyId>(.*?)</AccessKeyId>", body).group(1)
        token = re.search(r"<SessionToken>(.*?)</SessionToken>", body).group(1)
        return key, token

    def iam(self, action: str, session: tuple[str, str]) -> str:
        return self.call("iam", {"Action": action, "Version": "2010-05-08"}, *session)

    def sqs(self, action: str, params: dict) -> str:
        return self.call("sqs", {"Action": action, "Version": "2012-11-05", **params}, MANAGEMENT_KEY)

    def sqs_round(self, queue_url: str) -> int:
        """A sweep's SQS work for ten jobs, once: send a batch of ten, receive up to ten, delete
        what came. Returns the calls made."""
        entries = {}
        for n in range(10):
            entries[f"SendMessageBatchRequestEntry.{n + 1}.Id"] = str(n)
            entries[f"SendMessageBatchRequestEntry.{n + 1}.MessageBody"] = f'{{"n": {n}}}'
        self.sqs("SendMessageBatch", {"QueueUrl": queue_url, **entries})
        body = self.sqs("ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": "10"})
        handles = re.findall(r"<ReceiptHandle>(.*?)</ReceiptHandle>", body)
        if not handles:
            return 2
        deletes = {}
        for n, handle in enumerate(handles):
            deletes[f"DeleteMessageBatchRequestEntry.{n + 1}.Id"] = str(n)
            deletes[f"DeleteMessageBatchRequestEntry.{n + 1}.ReceiptHandle"] = handle
        self.sqs("DeleteMessageBatch", {"QueueUrl": queue_url, **deletes})
        return 3


def control(endpoint: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{endpoint}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else {}


# ---------------------------------------------------------------------------------------------
# Measurements


def capacity(client: Client, accounts: list[str], threads: int) -> dict:
    """AssumeRoot/s over every account, then IAM calls/s (the audit's reads) with those sessions,
    then SQS calls/s in rounds of send-10, receive, delete-batch on one queue by one client (the
    sweep's SQS work has this shape: jobs posted, received and deleted in tens, results the same)."""
    queue_url = re.search(r"<QueueUrl>(.*?)</QueueUrl>",
                          client.sqs("CreateQueue", {"QueueName": f"capacity-{time.monotonic_ns()}"})).group(1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        sessions = list(pool.map(client.assume_root, accounts))
        assume_root_seconds = time.perf_counter() - start
        calls = [(action, session) for session in sessions for action in AUDIT_IAM_READS]
        start = time.perf_counter()
        list(pool.map(lambda item: client.iam(*item), calls))
        iam_seconds = time.perf_counter() - start
    # One client: moto's SQS serves fewer calls/s the more clients share a queue (353/s with one,
    # 129/s with 64, measured), so its best is what one client gets.
    start = time.perf_counter()
    sqs_calls = sum(client.sqs_round(queue_url) for _ in range(len(accounts) // 10 * 2))
    sqs_seconds = time.perf_counter() - start
    client.sqs("DeleteQueue", {"QueueUrl": queue_url})
    return {"assume_root_per_s": len(accounts) / assume_root_seconds, "iam_per_s": len(calls) / iam_seconds,
            "sqs_per_s": sqs_calls / sqs_seconds, "threads": threads}


def sequential(client: Client, accounts: list[str]) -> float:
    """The scripts' loop: one account at a time, AssumeRoot, GetAccountSummary, GetUser."""
    start = time.perf_counter()
    for account in accounts:
        session = client.assume_root(account)
        client.iam("GetAccountSummary", session)
        client.iam("GetUser", session)
    return time.perf_counter() - start


def config_toml(endpoint: str, queues: dict, listen: str, concurrency: int, rate: float) -> str:
    return f"""
[aws]
endpoint_url = "{endpoint}"
[intake]
queue_url = "{queues['intake']}"
dead_letter_queue_url = "{queues['dead_letter']}"
wait_time = "2s"
[results]
queue_url = "{queues['results']}"
[workers]
concurrency = {concurrency}
[policy]
assume_root_rate = {rate}
[telemetry]
listen = "{listen}"
log_format = "json"
"""


def wait_ready(listen: str, daemon: subprocess.Popen, deadline: float = 60) -> None:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if daemon.poll() is not None:
            raise RuntimeError("the daemon exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://{listen}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling an HTTP probe, bounded by the deadline
    raise RuntimeError("the daemon was not ready in time")


def sweep(processes: Processes, endpoint: str, queues: dict, accounts: list[str], label: str,
          concurrency: int, rate: float, max_in_flight: int) -> dict:
    work = OUT_DIR / f"sweep-{label}"
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("audit*"):
        stale.unlink()
    listen = f"127.0.0.1:{free_port()}"
    (work / "rootwarden.toml").write_text(config_toml(endpoint, queues, listen, concurrency, rate))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": MANAGEMENT_KEY, "AWS_SECRET_ACCESS_KEY": "bench", "RUST_LOG": "warn"}
    env.pop("AWS_PROFILE", None)
    config = ["--config", str(work / "rootwarden.toml")]
    daemon = processes.start([str(BINARY), *config, "run"], env=env, stdout=open(work / "daemon.log", "w"),
                             stderr=subprocess.STDOUT)
    try:
        wait_ready(listen, daemon)
        control(endpoint, "DELETE", "/_localaws/call-counts")
        start = time.perf_counter()
        command = processes.start([str(BINARY), *config, "sweep", "--task", "IAMAuditRootUserCredentials",
                                   "--report", str(work / "audit"), "--idle-timeout", "2m",
                                   "--max-in-flight", str(max_in_flight)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = command.communicate(timeout=900)
        seconds = time.perf_counter() - start
        counts = control(endpoint, "GET", "/_localaws/call-counts")["counts"]
    finally:
        processes.stop(daemon)
    if command.returncode != 0:
        raise RuntimeError(f"the sweep exited {command.returncode}: {err[-2000:]}")
    with open(work / "audit.csv") as f:
        rows = list(csv.DictReader(f))
    succeeded = sorted(r["AccountId"] for r in rows if r["Outcome"] == "succeeded")
    if succeeded != sorted(accounts):
        raise RuntimeError(f"the report has {len(succeeded)} succeeded rows for {len(accounts)} accounts")
    return {
        "seconds": seconds,
        "assume_root_calls": counts.get("sts.AssumeRoot", 0),
        "iam_calls": sum(v for k, v in counts.items() if k.startswith("iam.")),
        "sqs_calls": sum(v for k, v in counts.items() if k.startswith("sqs.")),
        "organizations_calls": sum(v for k, v in counts.items() if k.startswith("organizations.")),
        "summary": out,
    }


# ---------------------------------------------------------------------------------------------
# The run


def run(args: argparse.Namespace) -> dict:
    processes = Processes()
    try:
        _, endpoint = start_localaws(processes)
        log(f"localaws on {endpoint}; seeding {args.accounts} accounts")
        made = seed(endpoint, args.accounts, locked_buckets=0, locked_queues=0)
        accounts = [a["id"] for a in made["accounts"]]
        queues = {k: made["queues"][k] for k in ("intake", "dead_letter", "results")}
        client = Client(endpoint)
        figures = []
        for latency in args.latency_ms:
            control(endpoint, "DELETE", "/_localaws/faults")
            if latency:
                for service in ("sts", "iam"):
                    control(endpoint, "POST", "/_localaws/faults",
                            {"service": service, "operation": "*", "latency_ms": latency})
            log(f"latency {latency} ms: capacity, best of {args.capacity_runs}")
            measured = [capacity(client, accounts, args.threads) for _ in range(args.capacity_runs)]
            cap = {rate: max(m[rate] for m in measured) for rate in ("assume_root_per_s", "iam_per_s", "sqs_per_s")}
            cap["threads"] = args.threads
            cap["measured"] = measured
            log(f"latency {latency} ms: sequential loop")
            seq = sequential(client, accounts)
            log(f"latency {latency} ms: {args.sweeps} sweeps")
            runs = [sweep(processes, endpoint, queues, accounts, f"{latency}ms-{n}", args.concurrency, args.rate,
                          args.max_in_flight) for n in range(args.sweeps)]
            swept = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            swept["all_seconds"] = [r["seconds"] for r in runs]
            capacity_seconds = (swept["assume_root_calls"] / cap["assume_root_per_s"]
                                + swept["iam_calls"] / cap["iam_per_s"])
            # Not the definition, which leaves SQS out: context for how much of the
            # environment's time the sweep's SQS work takes.
            with_sqs_seconds = capacity_seconds + swept["sqs_calls"] / cap["sqs_per_s"]
            figures.append({
                "latency_ms": latency, "capacity": cap, "sequential_seconds": seq, "sweep": swept,
                "capacity_seconds": capacity_seconds, "speedup": seq / swept["seconds"],
                "capacity_ratio": swept["seconds"] / capacity_seconds,
                "capacity_with_sqs_seconds": with_sqs_seconds,
                "capacity_with_sqs_ratio": swept["seconds"] / with_sqs_seconds,
            })
            log(f"latency {latency} ms: sweep {swept['seconds']:.1f}s, sequential {seq:.1f}s, "
                f"capacity {capacity_seconds:.1f}s")
        control(endpoint, "DELETE", "/_localaws/faults")
        return {"accounts": args.accounts, "concurrency": args.concurrency, "rate": args.rate,
                "max_in_flight": args.max_in_flight, "threads": args.threads,
                "capacity_runs": args.capacity_runs, "sweeps": args.sweeps, "figures": figures}
    finally:
        processes.stop_all()


def markdown(result: dict) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        BEGIN,
        "## Sweep: an audit of every member account",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine} "
        "(the environment, the daemon, the sweep and the clients share these cores)",
        f"- method: `.venv/bin/python bench/sweep.py --accounts {result['accounts']}` (see its docstring): "
        f"{result['accounts']} member accounts seeded in mixed states; the release daemon with "
        f"`workers.concurrency = {result['concurrency']}`, the sweep's `--max-in-flight "
        f"{result['max_in_flight']}`, and `policy.assume_root_rate = {result['rate']:g}` "
        "(raised so that rootwarden's own AssumeRoot pace, 20/s by default, is not what is measured: with "
        "the default a 500-account sweep takes at least 25 s by design); `rootwarden sweep --task "
        "IAMAuditRootUserCredentials` timed from start to exit, the median of "
        f"{result['sweeps']} sweeps (each a new sweep with a daemon of its own; the range in brackets); each "
        "report checked (one `succeeded` row per account).",
        "- sequential: the scripts' loop (AssumeRoot, GetAccountSummary, GetUser per account, one account "
        "at a time) with a minimal keep-alive HTTP client: the fastest such a loop can be.",
        f"- capacity: the environment's AssumeRoot and IAM (audit reads) rates with {result['threads']} "
        f"concurrent minimal clients, the best of {result['capacity_runs']} measurements; capacity time = the sweep's AssumeRoot calls / that rate + its IAM "
        "calls / that rate (the issue's definition). Beside it, for context, the same plus the sweep's SQS "
        "calls / the environment's SQS rate (rounds of SendMessageBatch of 10, ReceiveMessage, DeleteMessageBatch "
        "on one queue by one client, the shape of the sweep's SQS work; moto's SQS serves fewer calls/s to more "
        "clients): in the local environment SQS runs in the same "
        "single Python process as IAM and STS and costs several times more per call, so it takes a large "
        "share of the time the sweep needs; against AWS it is a separate, scaled service.",
        "- latency: added by the environment to every STS and IAM call (faults API) to stand in for an AWS "
        "round trip; 0 ms is the bare local environment, which is CPU-bound.",
        "",
        "| STS/IAM latency | sweep | sequential loop | speed-up (target ≥ 10) | capacity time | sweep / capacity (target ≤ 1.5) | capacity time with SQS | sweep / it | AssumeRoot/s | IAM calls/s | SQS calls/s | calls by the sweep (AssumeRoot, IAM, SQS, Organizations) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in result["figures"]:
        s = f["sweep"]
        lines.append(
            f"| {f['latency_ms']} ms | {s['seconds']:.1f} s ({min(s['all_seconds']):.1f}–{max(s['all_seconds']):.1f}) | "
            f"{f['sequential_seconds']:.1f} s | "
            f"{f['speedup']:.1f}× {'✅' if f['speedup'] >= TARGET_SPEEDUP else '❌'} | {f['capacity_seconds']:.1f} s | "
            f"{f['capacity_ratio']:.2f} {'✅' if f['capacity_ratio'] <= TARGET_CAPACITY_RATIO else '❌'} | "
            f"{f['capacity_with_sqs_seconds']:.1f} s | {f['capacity_with_sqs_ratio']:.2f} | "
            f"{f['capacity']['assume_root_per_s']:.0f} | {f['capacity']['iam_per_s']:.0f} | "
            f"{f['capacity']['sqs_per_s']:.0f} | "
            f"{s['assume_root_calls']}, {s['iam_calls']}, {s['sqs_calls']}, {s['organizations_calls']} |")
    per_account_iam = result["figures"][0]["sweep"]["iam_calls"] / result["accounts"]
    lines += [
        "",
        "The sequential loop makes 3 calls per account (AssumeRoot, GetAccountSummary, GetUser); the sweep's "
        f"audit makes {per_account_iam:.1f} IAM calls per account on this mix of states plus one AssumeRoot: "
        "GetAccountSummary and GetUser always, and the password, access keys (with each key's last use), "
        "MFA devices and signing certificates only where the summary reports them, read at once.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--latency-ms", type=lambda s: [int(x) for x in s.split(",")], default=[0, 50])
    parser.add_argument("--threads", type=int, default=64, help="concurrent clients measuring capacity")
    parser.add_argument("--concurrency", type=int, default=64, help="the daemon's workers.concurrency")
    parser.add_argument("--max-in-flight", type=int, default=64, help="the sweep's --max-in-flight")
    parser.add_argument("--rate", type=float, default=10000, help="the daemon's policy.assume_root_rate")
    parser.add_argument("--capacity-runs", type=int, default=3, help="capacity measurements; the best counts")
    parser.add_argument("--sweeps", type=int, default=3, help="sweeps per latency; the median counts")
    args = parser.parse_args()
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: cargo build --release first")
    result = run(args)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "sweep.json").write_text(json.dumps(result, indent=2))
    section = markdown(result)
    write_section(BEGIN, END, section)
    print(section)


if __name__ == "__main__":
    main()
