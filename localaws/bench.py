"""Benchmark: plain moto versus moto with the localaws extension (not a test).

Starts `python -m localaws serve --plain` (moto's own application, no
extension) and `python -m localaws serve` on free ports, drives each with one
boto3 client process using a few threads for a fixed time per operation, and
writes localaws/BENCHMARK.md. Run from the repository root:

    .venv/bin/python -m localaws.bench [--seconds 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import pathlib
import platform
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

from .seed import seed

HERE = pathlib.Path(__file__).resolve().parent
TASK = "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy"


class Server:
    def __init__(self, extended: bool) -> None:
        command = [sys.executable, "-m", "localaws", "serve", "--port", "0"] + ([] if extended else ["--plain"])
        self.process = subprocess.Popen(command, cwd=HERE.parent, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.url = self.process.stdout.readline().split()[1]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))


def rate(make_call, seconds: float, threads: int) -> float:
    """Calls per second that `threads` threads achieve for `seconds` (each thread gets its own call)."""
    calls = [make_call() for _ in range(threads)]
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def work(index: int) -> None:
        while time.monotonic() < deadline:
            calls[index]()
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started)


def sts_calls(url: str) -> dict:
    def caller_identity():
        sts = client(url, "sts")
        return sts.get_caller_identity

    def assume_role():
        sts = client(url, "sts")
        return lambda: sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/bench", RoleSessionName="bench")
    return {"GetCallerIdentity": caller_identity, "AssumeRole": assume_role}


def assume_root_call(url: str, member: str):
    def make():
        sts = client(url, "sts")
        return lambda: sts.assume_root(TargetPrincipal=member, TaskPolicyArn={"arn": TASK}, DurationSeconds=900)
    return make


# Messages in the queue when the receive+delete measurement starts: moto's receive slows as a queue
# grows, so both servers are measured on the same depth, not on what their send phase left.
RECEIVE_QUEUE_DEPTH = 2000


def fill(url: str, queue_url: str, depth: int) -> None:
    sqs = client(url, "sqs")
    for start in range(0, depth, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(n), "MessageBody": "x" * 200} for n in range(min(10, depth - start))])


def sqs_calls(url: str) -> dict:
    """Operation -> (queue name, maker of its call)."""
    def send(queue_url: str):
        sqs = client(url, "sqs")
        return lambda: sqs.send_message(QueueUrl=queue_url, MessageBody="x" * 200)

    def receive_and_delete(queue_url: str):
        sqs = client(url, "sqs")

        def call():
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])
            if not messages:
                raise RuntimeError("the receive queue ran dry: raise RECEIVE_QUEUE_DEPTH")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return call
    return {"SendMessage": ("bench-send", send),
            "ReceiveMessage+DeleteMessage (pairs)": ("bench-receive", receive_and_delete)}


def measure(seconds: float, threads: int) -> list[tuple[str, str, float]]:
    rows = []
    plain, extended = Server(extended=False), Server(extended=True)
    try:
        for name, server in (("plain moto", plain), ("extended", extended)):
            for operation, make in sts_calls(server.url).items():
                server.reset()
                rows.append((name, f"sts.{operation}", rate(make, seconds, threads)))
        extended.reset()
        member = seed(extended.url, accounts=20, locked_buckets=0, locked_queues=0)["accounts"][0]["id"]
        rows.append(("extended", "sts.AssumeRoot", rate(assume_root_call(extended.url, member), seconds, threads)))
        for name, server in (("plain moto", plain), ("extended", extended)):
            server.reset()
            for operation, (queue_name, make) in sqs_calls(server.url).items():
                queue_url = client(server.url, "sqs").create_queue(QueueName=queue_name)["QueueUrl"]
                if queue_name == "bench-receive":
                    fill(server.url, queue_url, RECEIVE_QUEUE_DEPTH)
                rows.append((name, f"sqs.{operation}", rate(functools.partial(make, queue_url), seconds, threads)))
    finally:
        plain.stop()
        extended.stop()
    return rows


def report(rows: list[tuple[str, str, float]], seconds: float, threads: int) -> str:
    by_key = {(server, op): value for server, op, value in rows}
    lines = [
        "# localaws benchmark", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- method: `python -m localaws.bench --seconds {seconds:g} --threads {threads}`: one boto3 client process, "
        f"{threads} threads (one client each), {seconds:g} s per operation, no retries; the SQS receive+delete starts on a queue of {RECEIVE_QUEUE_DEPTH} messages (moto's receive slows as a queue grows; the measurement takes some of them); plain moto is "
        "`python -m localaws serve --plain` (moto's own WSGI app, same cheroot server, without the extension's speed patches of localaws/speed.py: per-host routing cache, O(1) SQS retention check, remembered account of an access key, known or not, and SQS sends that compute only the queue attribute they read), the extended "
        "server is `python -m localaws serve`; both reset before each STS operation. The client and the "
        "server share the 2 cores, so these are end-to-end figures, not server capacity.",
        "", "| server | operation | calls/s |", "|---|---|---:|",
    ]
    lines += [f"| {server} | {op} | {value:.0f} |" for server, op, value in rows]
    lines += ["", "Extended rate relative to plain moto (the issue's target: the extension costs at most 20%):", ""]
    for op in sorted({op for _, op, _ in rows}):
        plain, extended = by_key.get(("plain moto", op)), by_key.get(("extended", op))
        if plain and extended:
            lines.append(f"- {op}: {extended / plain:.0%} of plain moto's rate")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    rows = measure(args.seconds, args.threads)
    text = report(rows, args.seconds, args.threads)
    (HERE / "BENCHMARK.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
