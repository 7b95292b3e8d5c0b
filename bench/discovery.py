#!/usr/bin/env python3
"""The discovery benchmark: a dry-run discovery sweep of `S3UnlockBucketPolicy` over 1,000 member
accounts holding 50 buckets each in two regions (one AssumeRoot per account, every bucket's
policy read and classified), and a smaller `SQSUnlockQueuePolicy` discovery, against the local
AWS environment, with the environment's own capacity for the same calls measured in the same run.

Starts the local AWS environment (`python -m localaws serve --port 0`, as bench/sweep.py does),
seeds an organization of `--accounts` members with `localaws.seed.seed()` (timed: how long the
organization takes to make is a figure of its own), then makes `--buckets` buckets per member
account, alternately in the `--regions` (us-east-1, eu-west-1), with one bulk
`POST /_localaws/resources`: a deterministic sample of one bucket in `--locked-every` (25) gets a
policy that locks everyone out (`DenyAll`: Deny, Principal *, s3:*, no condition), one in
`--tls-every` (5) of the others an ordinary one (a TLS-only deny, `aws:SecureTransport` "false"),
the rest none; and `--queues` queues per account (5) the same way. The locked set is known, so
every report is checked against it. Then, for each `--latency-ms` value (a delay the environment
adds, through its faults API, to every STS call and every call of the discovered service, S3 or
SQS ListQueues/GetQueueAttributes, to stand in for an AWS round trip; 0 = the bare environment,
bound by its one Python process's CPU):

1. capacity: the environment's AssumeRoot, ListBuckets and GetBucketPolicy rates with `--threads`
   concurrent minimal clients (bench/sweep.py's keep-alive, unsigned client), the best of
   `--capacity-runs`; GetBucketPolicy over the buckets of the first `--capacity-accounts`
   accounts (a sample: all 50,000 would take a minute each time). Capacity time = the sweep's
   AssumeRoot, ListBuckets and GetBucketPolicy calls, each divided by its rate: the least time
   the environment needs for the discovery's own calls (SQS transport left out, as in
   bench/sweep.py);
2. S3 discovery: the release daemon (`rootwarden run`) with bench/sweep.py's settings
   (`workers.concurrency = --concurrency`, `policy.assume_root_rate = --rate`, raised so that
   the token bucket, 20/s by default, is not what is measured) and
   `rootwarden sweep --task S3UnlockBucketPolicy` (a dry run: no --apply) timed from start to
   exit; the median of `--runs`, each a new sweep with a daemon of its own. Counted per run:
   AssumeRoot calls (`/_localaws/call-counts`, and `/_localaws/assume-root-log` to check one
   session per account, each for S3UnlockBucketPolicy), ListBuckets, GetBucketPolicy, SQS and
   Organizations calls, and the CPU seconds of the environment, the daemon and the sweep command
   over the sweep. Each report is checked: the CSV's rows naming a resource are exactly the
   locked buckets (account, bucket, region, `DenyAll`), each `dry_run`; every account without
   one has a single `no_change` row; the JSON summary's inspected and locked counts match; no
   policy was written or deleted;
3. SQS discovery: the same with `--task SQSUnlockQueuePolicy --regions <--regions>`
   (`--queue-runs` sweeps).

Then (unless `--no-default-rate-run`) one more S3 discovery at the first latency with the
daemon's default `policy.assume_root_rate` (20/s), for context.

Writes its section of BENCHMARKS.md between `<!-- discovery-benchmark:start -->` and
`<!-- discovery-benchmark:end -->` and the raw figures to target/bench/discovery.json (unless
`--no-write`). Every process it starts is stopped by its PID, also on error. Only 127.0.0.1.

Usage (from the repository root, after `cargo build --release --bin rootwarden`):
    .venv/bin/python bench/discovery.py [--accounts 1000] [--buckets 50] [--queues 5]
        [--latency-ms 0,50] [--runs 3] [--queue-runs 3] [--no-default-rate-run] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import csv
import datetime
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.common import BINARY, OUT_DIR, free_port, write_section  # noqa: E402
from bench.sweep import MANAGEMENT_KEY, Client, Processes, config_toml, control, wait_ready  # noqa: E402
from localaws.seed import seed  # noqa: E402

BEGIN, END = "<!-- discovery-benchmark:start -->", "<!-- discovery-benchmark:end -->"
S3_TASK, SQS_TASK = "S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"
TASK_POLICY = "arn:aws:iam::aws:policy/root-task/{}"
LOCKING_SID = "DenyAll"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[discovery-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The resources


def deny_all(service: str) -> str:
    """Locks everyone out: a Deny of every action to every principal, with no condition."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": LOCKING_SID, "Effect": "Deny", "Principal": "*", "Action": f"{service}:*", "Resource": "*"}]})


def tls_only(service: str) -> str:
    """An ordinary policy: denies only requests not made over TLS."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": f"{service}:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def plan(accounts: list[str], per_account: int, regions: list[str], locked_every: int, tls_every: int,
         service: str, rng: random.Random) -> list[dict]:
    """`per_account` resources per account, alternately in `regions`; a sample of one in
    `locked_every` locked, one in `tls_every` of the rest with a TLS-only policy."""
    items = [{"account_id": account, "n": n, "region": regions[n % len(regions)]}
             for account in accounts for n in range(per_account)]
    indices = range(len(items))
    locked = set(rng.sample(indices, len(items) // locked_every))
    open_ones = [i for i in indices if i not in locked]
    tls = set(rng.sample(open_ones, len(items) // tls_every))
    for i, item in enumerate(items):
        item["kind"] = "locked" if i in locked else "tls" if i in tls else "none"
        item["policy"] = (deny_all(service) if i in locked else tls_only(service) if i in tls else None)
    return items


def make_resources(endpoint: str, accounts: list[str], args: argparse.Namespace) -> dict:
    rng = random.Random(2026)
    buckets = plan(accounts, args.buckets, args.regions, args.locked_every, args.tls_every, "s3", rng)
    for b in buckets:
        b["name"] = f"disc-{b['account_id']}-{b['n']:03d}"
    queues = plan(accounts, args.queues, args.regions, args.locked_every, args.tls_every, "sqs", rng)
    for q in queues:
        q["name"] = f"disc-{q['n']:03d}"
    body = {
        "buckets": [{k: b[k] for k in ("account_id", "name", "region", "policy")} for b in buckets],
        "queues": [{k: q[k] for k in ("account_id", "name", "region", "policy")} for q in queues],
    }
    start = time.perf_counter()
    request = urllib.request.Request(f"{endpoint}/_localaws/resources", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        made = json.loads(response.read())
    seconds = time.perf_counter() - start
    urls = {(q["account_id"], q["region"], q["name"]): q["url"] for q in made["queues"]}
    for q in queues:
        q["url"] = urls[(q["account_id"], q["region"], q["name"])]
    return {"buckets": buckets, "queues": queues, "seconds": seconds}


def expected_rows(items: list[dict], key: str) -> set[tuple[str, str, str, str]]:
    """(account, resource, region, locking statements) of the locked ones, as the CSV has them."""
    return {(i["account_id"], i[key], i["region"], LOCKING_SID) for i in items if i["kind"] == "locked"}


# ---------------------------------------------------------------------------------------------
# Capacity: the environment's rates for the discovery's own calls, minimal clients


class RootClient(Client):
    """bench/sweep.py's minimal client, plus S3 REST GETs (path style) with a root session."""

    def assume_root_for(self, account: str, task: str) -> tuple[str, str]:
        body = self.call("sts", {"Action": "AssumeRoot", "Version": "2011-06-15", "TargetPrincipal": account,
                                 "TaskPolicyArn.arn": TASK_POLICY.format(task)}, MANAGEMENT_KEY)
        key = re.search(r"<AccessKeyId>(.*?)</AccessKeyId>", body).group(1)
        token = re.search(r"<SessionToken>(.*?)</SessionToken>", body).group(1)
        return key, token

    def s3_get(self, path: str, region: str, session: tuple[str, str]) -> str:
        key, token = session
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{region}/s3/aws4_request, "
                             "SignedHeaders=host, Signature=0",
            "X-Amz-Date": "20260101T000000Z", "X-Amz-Security-Token": token,
            "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
        }
        connection = self.connection()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        # NoSuchBucketPolicy is an answer (a bucket without a policy).
        if response.status != 200 and "NoSuchBucketPolicy" not in body:
            raise RuntimeError(f"s3 GET {path}: HTTP {response.status}: {body[:300]}")
        return body


def capacity(client: RootClient, accounts: list[str], buckets: list[dict], sample_accounts: int,
             threads: int) -> dict:
    """AssumeRoot/s over every account, ListBuckets/s (one page of up to 1,000, as the daemon
    asks) over every account, GetBucketPolicy/s over the buckets of the first `sample_accounts`."""
    sample = set(accounts[:sample_accounts])
    reads = [b for b in buckets if b["account_id"] in sample]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        sessions = dict(zip(accounts, pool.map(lambda a: client.assume_root_for(a, S3_TASK), accounts)))
        assume_root_seconds = time.perf_counter() - start
        start = time.perf_counter()
        listed = list(pool.map(lambda a: client.s3_get("/?max-buckets=1000", "us-east-1", sessions[a]), accounts))
        list_seconds = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(lambda b: client.s3_get(f"/{b['name']}?policy", b["region"], sessions[b["account_id"]]), reads))
        read_seconds = time.perf_counter() - start
    per_account = len(re.findall(r"<Bucket>", listed[0]))
    if per_account != sum(1 for b in buckets if b["account_id"] == accounts[0]):
        raise RuntimeError(f"capacity: ListBuckets listed {per_account} buckets of {accounts[0]}")
    return {"assume_root_per_s": len(accounts) / assume_root_seconds, "list_buckets_per_s": len(accounts) / list_seconds,
            "get_bucket_policy_per_s": len(reads) / read_seconds, "get_bucket_policy_sample": len(reads),
            "threads": threads}


# ---------------------------------------------------------------------------------------------
# A discovery sweep


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss(pid: int) -> float:
    """VmHWM of a running process, in MB."""
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def discover(processes: Processes, localaws: subprocess.Popen, endpoint: str, queues: dict, task: str,
             accounts: list[str], items: list[dict], label: str, args: argparse.Namespace, rate: float) -> dict:
    work = OUT_DIR / f"discovery-{label}"
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("report*"):
        stale.unlink()
    listen = f"127.0.0.1:{free_port()}"
    (work / "rootwarden.toml").write_text(config_toml(endpoint, queues, listen, args.concurrency, rate))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": MANAGEMENT_KEY, "AWS_SECRET_ACCESS_KEY": "bench", "RUST_LOG": "warn"}
    env.pop("AWS_PROFILE", None)
    config = ["--config", str(work / "rootwarden.toml")]
    extra = ["--regions", ",".join(args.regions)] if task == SQS_TASK else []
    daemon = processes.start([str(BINARY), *config, "run"], env=env, stdout=open(work / "daemon.log", "w"),
                             stderr=subprocess.STDOUT)
    try:
        wait_ready(listen, daemon)
        control(endpoint, "DELETE", "/_localaws/call-counts")
        control(endpoint, "DELETE", "/_localaws/assume-root-log")
        cpu_before = (cpu_seconds(localaws.pid), cpu_seconds(daemon.pid), children_cpu())
        start = time.perf_counter()
        command = processes.start([str(BINARY), *config, "sweep", "--task", task, *extra,
                                   "--report", str(work / "report"), "--idle-timeout", "2m",
                                   "--max-in-flight", str(args.max_in_flight)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = command.communicate(timeout=1800)
        seconds = time.perf_counter() - start
        cpu_after = (cpu_seconds(localaws.pid), cpu_seconds(daemon.pid), children_cpu())
        counts = control(endpoint, "GET", "/_localaws/call-counts")["counts"]
        assume_roots = control(endpoint, "GET", "/_localaws/assume-root-log")["calls"]
        peak_rss_mb = peak_rss(daemon.pid)
    finally:
        processes.stop(daemon)
    (work / "sweep.out").write_text(out + err)
    if command.returncode != 0:
        raise RuntimeError(f"{label}: the sweep exited {command.returncode}: {err[-2000:]}")
    check_report(work, task, accounts, items, label)
    check_sessions(assume_roots, task, accounts, label)
    writes = {k: v for k, v in counts.items()
              if k in ("s3.PutBucketPolicy", "s3.DeleteBucketPolicy", "sqs.SetQueueAttributes") and v}
    if writes:
        raise RuntimeError(f"{label}: a dry run changed policies: {writes}")
    summary = json.loads((work / "report.json").read_text())["summary"]
    cpu = [after - before for before, after in zip(cpu_before, cpu_after)]
    return {
        "seconds": seconds, "counts": counts,
        "assume_root_calls": counts.get("sts.AssumeRoot", 0),
        "assume_root_log": len(assume_roots),
        "sqs_calls": sum(v for k, v in counts.items() if k.startswith("sqs.")),
        "organizations_calls": sum(v for k, v in counts.items() if k.startswith("organizations.")),
        "inspected": summary["discovery"]["inspected"], "locked": summary["discovery"]["locked"],
        "cpu": {"localaws": cpu[0], "daemon": cpu[1], "sweep": cpu[2]}, "daemon_peak_rss_mb": peak_rss_mb,
        "summary": out,
    }


def check_report(work: Path, task: str, accounts: list[str], items: list[dict], label: str) -> None:
    key = "name" if task == S3_TASK else "url"
    expected = expected_rows(items, key)
    with open(work / "report.csv") as f:
        rows = list(csv.DictReader(f))
    found, outcomes, empty = set(), collections.Counter(), collections.Counter()
    for row in rows:
        if row["Resource"]:
            found.add((row["AccountId"], row["Resource"], row["Region"], row["LockingStatements"]))
            outcomes[row["Outcome"]] += 1
        else:
            empty[(row["AccountId"], row["Outcome"])] += 1
    if found != expected:
        raise RuntimeError(f"{label}: {len(found)} locked rows, {len(expected)} expected; "
                           f"missing {sorted(expected - found)[:3]}, extra {sorted(found - expected)[:3]}")
    if set(outcomes) != {"dry_run"} or sum(outcomes.values()) != len(found):
        raise RuntimeError(f"{label}: outcomes of the locked rows: {dict(outcomes)}")
    with_locked = {account for account, *_ in expected}
    clean = {(account, "no_change") for account in accounts if account not in with_locked}
    if set(empty) != clean or any(n != 1 for n in empty.values()):
        raise RuntimeError(f"{label}: rows without a resource: {len(empty)} ({sorted(set(empty) - clean)[:3]}), "
                           f"{len(clean)} accounts with nothing locked")
    summary = json.loads((work / "report.json").read_text())["summary"]
    discovery = summary["discovery"]
    if (discovery["inspected"], discovery["locked"], discovery["unreadable"]) != (len(items), len(expected), 0):
        raise RuntimeError(f"{label}: summary {discovery}, expected {len(items)} inspected, {len(expected)} locked")


def check_sessions(calls: list[dict], task: str, accounts: list[str], label: str) -> None:
    by_account = collections.Counter(c["target_principal"] for c in calls)
    if by_account != collections.Counter(accounts) or any(c["task"] != task or c["result"] != "ok" for c in calls):
        raise RuntimeError(f"{label}: {len(calls)} AssumeRoot calls for {len(by_account)} accounts "
                           f"(most for one: {by_account.most_common(1)})")


def set_latency(endpoint: str, latency: int, service: str) -> None:
    """Adds `latency` ms to STS and to the discovered service's calls (SQS: only the discovery's
    reads, not the job transport)."""
    control(endpoint, "DELETE", "/_localaws/faults")
    if not latency:
        return
    targets = [("sts", "*"), ("s3", "*")] if service == "s3" else [
        ("sts", "*"), ("sqs", "ListQueues"), ("sqs", "GetQueueAttributes")]
    for svc, operation in targets:
        control(endpoint, "POST", "/_localaws/faults", {"service": svc, "operation": operation, "latency_ms": latency})


# ---------------------------------------------------------------------------------------------
# The run


def median_run(runs: list[dict]) -> dict:
    chosen = dict(sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2])
    chosen["all_seconds"] = [r["seconds"] for r in runs]
    return chosen


def run(args: argparse.Namespace) -> dict:
    processes = Processes()
    try:
        localaws, endpoint = common.start_localaws(sys.executable, OUT_DIR / "discovery-localaws.log")
        processes.children.append(localaws)
        log(f"localaws on {endpoint}; seeding {args.accounts} accounts")
        start = time.perf_counter()
        made = seed(endpoint, args.accounts, locked_buckets=0, locked_queues=0)
        seed_seconds = time.perf_counter() - start
        accounts = [a["id"] for a in made["accounts"]]
        queues = {k: made["queues"][k] for k in ("intake", "dead_letter", "results")}
        log(f"seeded in {seed_seconds:.1f}s; making {args.buckets} buckets and {args.queues} queues per account")
        resources = make_resources(endpoint, accounts, args)
        buckets, member_queues = resources["buckets"], resources["queues"]
        log(f"{len(buckets)} buckets and {len(member_queues)} queues made in {resources['seconds']:.1f}s")
        client = RootClient(endpoint)
        figures = []
        for latency in args.latency_ms:
            set_latency(endpoint, latency, "s3")
            log(f"latency {latency} ms: capacity, best of {args.capacity_runs}")
            measured = [capacity(client, accounts, buckets, args.capacity_accounts, args.threads)
                        for _ in range(args.capacity_runs)]
            cap = {rate: max(m[rate] for m in measured)
                   for rate in ("assume_root_per_s", "list_buckets_per_s", "get_bucket_policy_per_s")}
            cap.update(threads=args.threads, sample=measured[0]["get_bucket_policy_sample"], measured=measured)
            log(f"latency {latency} ms: {args.runs} S3 discoveries")
            s3_runs = []
            for n in range(args.runs):
                s3_runs.append(discover(processes, localaws, endpoint, queues, S3_TASK, accounts, buckets,
                                        f"s3-{latency}ms-{n}", args, args.rate))
                log(f"  s3 run {n}: {s3_runs[-1]['seconds']:.1f}s")
            s3 = median_run(s3_runs)
            counts = s3["counts"]
            capacity_seconds = (counts.get("sts.AssumeRoot", 0) / cap["assume_root_per_s"]
                                + counts.get("s3.ListBuckets", 0) / cap["list_buckets_per_s"]
                                + counts.get("s3.GetBucketPolicy", 0) / cap["get_bucket_policy_per_s"])
            sqs = None
            if args.queue_runs and args.queues:
                set_latency(endpoint, latency, "sqs")
                log(f"latency {latency} ms: {args.queue_runs} SQS discoveries")
                sqs = median_run([discover(processes, localaws, endpoint, queues, SQS_TASK, accounts, member_queues,
                                           f"sqs-{latency}ms-{n}", args, args.rate) for n in range(args.queue_runs)])
            figures.append({"latency_ms": latency, "capacity": cap, "s3": s3, "s3_runs": s3_runs, "sqs": sqs,
                            "capacity_seconds": capacity_seconds, "capacity_ratio": s3["seconds"] / capacity_seconds})
            log(f"latency {latency} ms: S3 discovery {s3['seconds']:.1f}s (capacity {capacity_seconds:.1f}s)"
                + (f", SQS discovery {sqs['seconds']:.1f}s" if sqs else ""))
        default_rate = None
        if args.default_rate_run:
            set_latency(endpoint, args.latency_ms[0], "s3")
            log(f"latency {args.latency_ms[0]} ms: one S3 discovery at the default assume_root_rate (20/s)")
            default_rate = discover(processes, localaws, endpoint, queues, S3_TASK, accounts, buckets,
                                    f"s3-{args.latency_ms[0]}ms-rate20", args, 20.0)
            default_rate["latency_ms"] = args.latency_ms[0]
        control(endpoint, "DELETE", "/_localaws/faults")
        return {
            "accounts": args.accounts, "buckets_per_account": args.buckets, "queues_per_account": args.queues,
            "regions": args.regions, "locked_every": args.locked_every, "tls_every": args.tls_every,
            "buckets": len(buckets), "buckets_locked": sum(b["kind"] == "locked" for b in buckets),
            "buckets_tls": sum(b["kind"] == "tls" for b in buckets),
            "accounts_with_locked_buckets": len({b["account_id"] for b in buckets if b["kind"] == "locked"}),
            "queues": len(member_queues), "queues_locked": sum(q["kind"] == "locked" for q in member_queues),
            "seed_seconds": seed_seconds, "resources_seconds": resources["seconds"],
            "concurrency": args.concurrency, "rate": args.rate, "max_in_flight": args.max_in_flight,
            "runs": args.runs, "queue_runs": args.queue_runs, "capacity_runs": args.capacity_runs,
            "figures": figures, "default_rate": default_rate,
        }
    finally:
        processes.stop_all()


def commit_of_binary() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=common.REPO, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD")
    built = datetime.datetime.fromtimestamp(BINARY.stat().st_mtime, datetime.timezone.utc)
    src_changed = git("log", "-1", "--format=%cI", "--", "src")
    stale = src_changed and datetime.datetime.fromisoformat(src_changed) > built
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    note = f"built {built:%Y-%m-%d %H:%M} UTC"
    if stale:
        note += ", before the last commit touching src/"
    elif dirty:
        note += ", src/ has uncommitted changes"
    return f"HEAD {head}, binary {note}"


def reading(result: dict) -> list[str]:
    """What the run shows, as sentences computed from its figures."""
    a, first = result["accounts"], result["figures"][0]
    s, cap = first["s3"], first["capacity"]
    c = s["counts"]
    bullets = [
        f"- **One root session per account.** {s['assume_root_calls']:,} AssumeRoot calls for {a:,} accounts and "
        f"{s['inspected']:,} buckets ({s['inspected'] / a:.0f} per account, two regions): the job lists the "
        f"account's buckets once ({c.get('s3.ListBuckets', 0) / a:.2f} ListBuckets per account, one page) and reads "
        f"each policy once ({c.get('s3.GetBucketPolicy', 0) / s['inspected']:.2f} GetBucketPolicy per bucket) in "
        "the bucket's region with the same session.",
        f"- **The environment is the bound.** At {first['latency_ms']} ms the environment's one Python process used "
        f"{s['cpu']['localaws'] / s['seconds']:.0%} of a CPU over the sweep, the daemon "
        f"{s['cpu']['daemon'] / s['seconds']:.0%} ({s['cpu']['daemon'] / s['inspected'] * 1e6:.0f} µs of CPU per "
        f"bucket inspected) and the sweep command {s['cpu']['sweep'] / s['seconds']:.0%}; the sweep took "
        f"{first['capacity_ratio']:.2f}× the time the environment needs for the discovery's own calls at the rates it "
        f"serves to minimal clients (outside that time: the sweep's and the daemon's {s['sqs_calls']} SQS calls, "
        "served by the same process).",
        f"- **ListBuckets is dear here.** The environment serves {cap['list_buckets_per_s']:.0f} ListBuckets/s "
        f"(50-bucket pages) against {cap['get_bucket_policy_per_s']:.0f} GetBucketPolicy/s: one listing costs it as "
        f"much as {cap['get_bucket_policy_per_s'] / cap['list_buckets_per_s']:.1f} policy reads, "
        f"{c.get('s3.ListBuckets', 0) / cap['list_buckets_per_s']:.1f} s of the capacity time "
        f"(a cProfile of the environment, by hand on 2026-12-01: about half of a ListBuckets is moto's response "
        "serializer parsing each bucket's CreationDate text again with dateutil).",
    ]
    later = result["figures"][1:]
    for f in later:
        t = f["s3"]
        text = (f"- **{f['latency_ms']} ms per STS and S3 call** (the stand-in for AWS's round trip, as in "
                f"bench/sweep.py) makes the sweep {t['seconds'] / s['seconds'] - 1:+.0%} "
                f"({s['seconds']:.1f} → {t['seconds']:.1f} s): the round trips are mostly hidden by the "
                f"{result['concurrency']} jobs at once, each with up to 8 policy reads in flight; the environment "
                f"still used {t['cpu']['localaws'] / t['seconds']:.0%} of a CPU ({t['cpu']['localaws']:.1f} CPU-s "
                f"against {s['cpu']['localaws']:.1f}).")
        if f["capacity_ratio"] < 1:
            text += (f" The capacity time at {f['latency_ms']} ms is no floor: {f['capacity']['threads']} minimal clients "
                     "each wait out the delay and leave the environment idle part of the time, where the daemon keeps "
                     "more requests in flight.")
        bullets.append(text)
    d = result["default_rate"]
    if d:
        bullets.append(
            f"- **The default AssumeRoot pace** (20/s, {a / 20:.0f} s for {a:,} accounts) costs "
            f"{d['seconds'] - s['seconds']:+.1f} s here: on this environment the policy reads take longer than the "
            "pace, and the AssumeRoots wait while earlier accounts' policies are read. Against AWS, where the reads are not "
            f"bound by one CPU, the pace would be the bound: {a:,} accounts cannot take less than {a / 20:.0f} s at "
            "20/s, hence the raised rate, as in bench/sweep.py, to measure the discovery rather than the token bucket.")
    return bullets


def markdown(result: dict) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    a = result["accounts"]
    lines = [
        BEGIN,
        "## Discovery: every bucket of every member account",
        "",
        "Written by `bench/discovery.py` (`scripts/bench`); edits here are overwritten.",
        "",
        f"- date: {result['date']}; machine: {machine} "
        f"(the environment, the daemon, the sweep and the clients share these cores); {result['binary']}",
        f"- method: `.venv/bin/python bench/discovery.py --accounts {a} --buckets {result['buckets_per_account']} "
        f"--queues {result['queues_per_account']}` (see its docstring). {a} member accounts seeded with "
        f"`localaws.seed` ({result['seed_seconds']:.0f} s for the organization), then "
        f"{result['buckets']:,} buckets ({result['buckets_per_account']} per account, alternately in "
        f"{' and '.join(result['regions'])}) and {result['queues']:,} queues made by one "
        f"`POST /_localaws/resources` ({result['resources_seconds']:.1f} s): one bucket in "
        f"{result['locked_every']} locks everyone out (`{LOCKING_SID}`: Deny, Principal `*`, `s3:*`; a seeded "
        f"random sample, {result['buckets_locked']:,} buckets in {result['accounts_with_locked_buckets']} accounts), "
        f"one in {result['tls_every']} an ordinary TLS-only deny ({result['buckets_tls']:,}), the rest none; "
        f"queues likewise ({result['queues_locked']} locked).",
        f"- the sweep: `rootwarden sweep --task S3UnlockBucketPolicy --max-in-flight {result['max_in_flight']}` "
        "(a dry run: one job `{\"task\": \"S3UnlockBucketPolicy\", \"discover\": true, \"dry_run\": true}` per "
        "account) against the release daemon, timed from start to exit, the median of "
        f"{result['runs']} (each a new sweep with a daemon of its own; the range in brackets). The daemon runs "
        f"bench/sweep.py's settings: `workers.concurrency = {result['concurrency']}`, `policy.assume_root_rate = "
        f"{result['rate']:g}` (raised so that rootwarden's own AssumeRoot pace, 20/s by default, is not what is "
        f"measured: at 20/s, {a} AssumeRoots alone take {a / 20:.0f} s by design"
        + ("; see the last line), " if result["default_rate"] else "), ") +
        "`workers.per_account = 1`, `intake.wait_time = 2s`.",
        "- checked in every run: the CSV's rows naming a bucket are exactly the locked ones (account, bucket, "
        "region, `DenyAll`), each `dry_run`; each account with nothing locked has one `no_change` row; the "
        "summary's inspected and locked counts match; the environment's AssumeRoot log holds exactly one call "
        "per account (task S3UnlockBucketPolicy); no policy was written.",
        "- calls: the environment's `/_localaws/call-counts` over the sweep (the daemon's and the sweep "
        "command's). Capacity time: the sweep's AssumeRoot, ListBuckets and GetBucketPolicy calls each divided "
        "by the rate the environment serves to minimal clients (bench/sweep.py's keep-alive client, "
        f"{result['figures'][0]['capacity']['threads']} threads, best of {result['capacity_runs']}; GetBucketPolicy "
        f"over a sample of {result['figures'][0]['capacity']['sample']:,} buckets): the least time the environment "
        "needs for the discovery's own calls, SQS left out.",
        "- latency: added by the environment (faults API) to every STS and S3 call to stand in for an AWS round "
        "trip (for the SQS discovery: STS, ListQueues and GetQueueAttributes, not the job transport); 0 ms is the "
        "bare environment, bound by its one Python process's CPU.",
        "",
        "| STS/S3 latency | accounts | buckets inspected | locked found | AssumeRoot calls | ListBuckets | "
        "GetBucketPolicy | SQS, Organizations calls | sweep time | jobs/s | buckets/s | capacity time | "
        "sweep / capacity | CPU-s: environment, daemon, sweep | daemon peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for f in result["figures"]:
        s = f["s3"]
        c = s["counts"]
        lines.append(
            f"| {f['latency_ms']} ms | {a:,} | {s['inspected']:,} | {s['locked']:,} | {s['assume_root_calls']:,} | "
            f"{c.get('s3.ListBuckets', 0):,} | {c.get('s3.GetBucketPolicy', 0):,} | "
            f"{s['sqs_calls']}, {s['organizations_calls']} | "
            f"**{s['seconds']:.1f} s** ({min(s['all_seconds']):.1f}–{max(s['all_seconds']):.1f}) | "
            f"{a / s['seconds']:.0f} | {s['inspected'] / s['seconds']:,.0f} | {f['capacity_seconds']:.1f} s | "
            f"{f['capacity_ratio']:.2f} | {s['cpu']['localaws']:.1f}, {s['cpu']['daemon']:.1f}, {s['cpu']['sweep']:.1f} | "
            f"{s['daemon_peak_rss_mb']:.0f} MB |")
    lines += [
        "",
        "Environment capacity (calls/s to minimal clients): " + "; ".join(
            f"{f['latency_ms']} ms: AssumeRoot {f['capacity']['assume_root_per_s']:.0f}, ListBuckets "
            f"{f['capacity']['list_buckets_per_s']:.0f}, GetBucketPolicy {f['capacity']['get_bucket_policy_per_s']:.0f}"
            for f in result["figures"]) + ".",
    ]
    queue_rows = [f for f in result["figures"] if f["sqs"]]
    if queue_rows:
        lines += [
            "",
            f"Queues: `rootwarden sweep --task SQSUnlockQueuePolicy --regions {','.join(result['regions'])}` over the "
            f"same {a:,} accounts, {result['queues_per_account']} queues each ({result['queues']:,}, "
            f"{result['queues_locked']} locked), checked the same way; the median of {result['queue_runs']}:",
            "",
            "| STS/SQS-read latency | queues inspected | locked found | AssumeRoot calls | ListQueues | "
            "GetQueueAttributes | sweep time | jobs/s | queues/s | CPU-s: environment, daemon, sweep | daemon peak RSS |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for f in queue_rows:
            q = f["sqs"]
            c = q["counts"]
            lines.append(
                f"| {f['latency_ms']} ms | {q['inspected']:,} | {q['locked']} | {q['assume_root_calls']:,} | "
                f"{c.get('sqs.ListQueues', 0):,} | {c.get('sqs.GetQueueAttributes', 0):,} | "
                f"{q['seconds']:.1f} s ({min(q['all_seconds']):.1f}–{max(q['all_seconds']):.1f}) | "
                f"{a / q['seconds']:.0f} | {q['inspected'] / q['seconds']:,.0f} | "
                f"{q['cpu']['localaws']:.1f}, {q['cpu']['daemon']:.1f}, {q['cpu']['sweep']:.1f} | "
                f"{q['daemon_peak_rss_mb']:.0f} MB |")
    d = result["default_rate"]
    if d:
        lines += [
            "",
            f"With the default `policy.assume_root_rate = 20` (one run, {d['latency_ms']} ms): {d['seconds']:.1f} s "
            f"for the same S3 discovery ({d['assume_root_calls']:,} AssumeRoot calls, {d['inspected']:,} buckets "
            f"inspected, {d['locked']:,} locked found); the AssumeRoot pace alone needs {a / 20:.0f} s.",
        ]
    lines += ["", "Reading the figures (computed from this run):", ""] + reading(result)
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--buckets", type=int, default=50, help="buckets per account")
    parser.add_argument("--queues", type=int, default=5, help="queues per account (0: no SQS discovery)")
    parser.add_argument("--regions", type=lambda s: s.split(","), default=["us-east-1", "eu-west-1"])
    parser.add_argument("--locked-every", type=int, default=25, help="one resource in N locks everyone out")
    parser.add_argument("--tls-every", type=int, default=5, help="one in N has a TLS-only policy")
    parser.add_argument("--latency-ms", type=lambda s: [int(x) for x in s.split(",")], default=[0, 50])
    parser.add_argument("--threads", type=int, default=64, help="concurrent clients measuring capacity")
    parser.add_argument("--capacity-accounts", type=int, default=100,
                        help="accounts whose buckets' policies the capacity measurement reads")
    parser.add_argument("--capacity-runs", type=int, default=3, help="capacity measurements; the best counts")
    parser.add_argument("--concurrency", type=int, default=64, help="the daemon's workers.concurrency")
    parser.add_argument("--max-in-flight", type=int, default=64, help="the sweep's --max-in-flight")
    parser.add_argument("--rate", type=float, default=10000, help="the daemon's policy.assume_root_rate")
    parser.add_argument("--runs", type=int, default=3, help="S3 discoveries per latency; the median counts")
    parser.add_argument("--queue-runs", type=int, default=3, help="SQS discoveries per latency; the median counts")
    parser.add_argument("--default-rate-run", action=argparse.BooleanOptionalAction, default=True,
                        help="one more S3 discovery with the default assume_root_rate (20/s)")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md and discovery.json alone")
    parser.add_argument("--from-json", action="store_true",
                        help="run nothing: rewrite the section from target/bench/discovery.json (the last run)")
    args = parser.parse_args()
    if not BINARY.exists() and not args.from_json:
        sys.exit(f"{BINARY} is missing: cargo build --release first")
    if args.from_json:
        result = json.loads((OUT_DIR / "discovery.json").read_text())
    else:
        result = run(args)
        result["date"] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        result["binary"] = commit_of_binary()
    section = markdown(result)
    if not args.no_write:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "discovery.json").write_text(json.dumps(result, indent=2))
        write_section(BEGIN, END, section)
    print(section)


if __name__ == "__main__":
    main()
