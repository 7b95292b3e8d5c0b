"""Buckets and queues made in bulk, straight in moto's backends.

Tests and benchmarks need thousands of accounts with dozens of buckets each;
through the S3 API that is one CreateBucket and one PutBucketPolicy call per
bucket, each with a role session for its account. `create(spec, base_url)` makes
them directly: each bucket in its account's S3 backend, in its region, with its
policy, and in the bucket owner map that the root-session scope checks read;
each queue in its account's SQS backend for its region, with its policy (a name
ending in `.fifo` makes a FIFO queue). Queue URLs are moto's
(`<base_url>/<account>/<name>`).

The whole request is checked before anything is made: every account must
already belong to an organization (management account or member), regions must
be ones AWS has, names must be valid and new. A bad request makes nothing.
"""

from __future__ import annotations

import functools
import json
import re
import threading

import boto3
from moto.organizations.models import organizations_backends
from moto.s3.models import FakeBucket, s3_backends
from moto.sqs.models import sqs_backends
from moto.utilities.utils import get_partition

_ACCOUNT = re.compile(r"^\d{12}$")
# General purpose bucket names: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit
# at each end, no two adjacent dots, not an IP address.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$")
_FIELDS = {"buckets": {"account_id", "name", "region", "policy"},
           "queues": {"account_id", "name", "region", "policy"}}
_lock = threading.Lock()  # one bulk creation at a time: its checks hold until it is done


class SpecError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@functools.lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region of every partition that botocore knows S3 or SQS in."""
    session = boto3.session.Session()
    return frozenset(region for partition in session.get_available_partitions()
                     for service in ("s3", "sqs")
                     for region in session.get_available_regions(service, partition_name=partition))


def organization_accounts() -> set[str]:
    """Every account of every organization: management accounts and members."""
    accounts: set[str] = set()
    for account_backends in dict.values(organizations_backends):
        for backend in dict.values(account_backends):
            if backend.org is not None:
                accounts.add(backend.org.master_account_id)
                accounts.update(account.id for account in backend.accounts)
    return accounts


def create(spec: dict, base_url: str) -> dict:
    """Make the buckets and queues of `spec`; return what was made, in request order."""
    unknown = set(spec) - set(_FIELDS)
    if unknown:
        raise SpecError(f"unknown fields: {', '.join(sorted(unknown))} (expected buckets, queues)")
    buckets = _items(spec, "buckets")
    queues = _items(spec, "queues")
    with _lock:
        _check_accounts(buckets + queues)
        _check_buckets(buckets)
        _check_queues(queues)
        return {"buckets": _make_buckets(buckets), "queues": _make_queues(queues, base_url.rstrip("/"))}


def _items(spec: dict, kind: str) -> list[dict]:
    items = spec.get(kind, [])
    if not isinstance(items, list):
        raise SpecError(f"{kind} must be a list")
    for index, item in enumerate(items):
        where = f"{kind}[{index}]"
        if not isinstance(item, dict):
            raise SpecError(f"{where} must be an object")
        unknown = set(item) - _FIELDS[kind]
        if unknown:
            raise SpecError(f"{where}: unknown fields: {', '.join(sorted(unknown))}")
        for field in ("account_id", "name", "region"):
            if not isinstance(item.get(field), str):
                raise SpecError(f"{where}.{field} must be a string")
        if not _ACCOUNT.match(item["account_id"]):
            raise SpecError(f"{where}.account_id `{item['account_id']}` is not a 12-digit account id")
        if item["region"] not in known_regions():
            raise SpecError(f"{where}.region `{item['region']}` is not an AWS region")
        policy = item.get("policy")
        if policy is not None:
            if not isinstance(policy, str):
                raise SpecError(f"{where}.policy must be JSON text (a string) or null")
            try:
                document = json.loads(policy)
            except ValueError:
                raise SpecError(f"{where}.policy is not valid JSON") from None
            if not isinstance(document, dict):
                raise SpecError(f"{where}.policy must be a JSON object")
    return items


def _check_accounts(items: list[dict]) -> None:
    members = organization_accounts()
    missing = sorted({item["account_id"] for item in items} - members)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SpecError(f"accounts not in any organization: {shown} (create them first, e.g. with seed)")


def _check_buckets(buckets: list[dict]) -> None:
    seen: set[str] = set()
    for index, bucket in enumerate(buckets):
        name = bucket["name"]
        if not _BUCKET.match(name) or ".." in name or _IP.match(name):
            raise SpecError(f"buckets[{index}].name `{name}` is not a valid bucket name")
        if name in seen:
            raise SpecError(f"buckets[{index}].name `{name}` is given twice")
        seen.add(name)
        if name in s3_backends.bucket_accounts:
            raise SpecError(f"bucket `{name}` already exists", 409)


def _check_queues(queues: list[dict]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for index, queue in enumerate(queues):
        name = queue["name"]
        if not _QUEUE.match(name):
            raise SpecError(f"queues[{index}].name `{name}` is not a valid queue name")
        key = (queue["account_id"], queue["region"], name)
        if key in seen:
            raise SpecError(f"queues[{index}]: queue `{name}` of {key[0]} in {key[1]} is given twice")
        seen.add(key)
        account = dict.get(sqs_backends, key[0])
        backend = None if account is None else dict.get(account, key[1])
        if backend is not None and name in backend.queues:
            raise SpecError(f"queue `{name}` of {key[0]} in {key[1]} already exists", 409)


def _make_buckets(buckets: list[dict]) -> list[dict]:
    backends: dict[tuple[str, str], object] = {}  # moto's BackendDict lookups are slow at scale
    made = []
    for item in buckets:
        account_id, name, region = item["account_id"], item["name"], item["region"]
        partition = get_partition(region)
        backend = backends.get((account_id, partition))
        if backend is None:
            backend = backends[(account_id, partition)] = s3_backends[account_id][partition]
        # As S3Backend.create_bucket, without the EventBridge notification; FakeBucket puts
        # itself in the bucket owner map.
        bucket = FakeBucket(name=name, account_id=account_id, region_name=region)
        if item.get("policy") is not None:
            bucket.policy = item["policy"].encode()
        backend.buckets[name] = bucket  # type: ignore[attr-defined]
        made.append({"account_id": account_id, "name": name, "region": region})
    return made


def _make_queues(queues: list[dict], base_url: str) -> list[dict]:
    backends: dict[tuple[str, str], object] = {}
    made = []
    for item in queues:
        account_id, name, region = item["account_id"], item["name"], item["region"]
        backend = backends.get((account_id, region))
        if backend is None:
            backend = backends[(account_id, region)] = sqs_backends[account_id][region]
        attributes = {}
        if name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        if item.get("policy") is not None:
            attributes["Policy"] = item["policy"]
        queue = backend.create_queue(name, **attributes)  # type: ignore[attr-defined]
        made.append({"account_id": account_id, "name": name, "region": region,
                     "url": f"{base_url}/{account_id}/{name}", "arn": queue.queue_arn})
    return made
