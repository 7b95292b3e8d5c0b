"""A realistic organization on a running localaws, made with boto3 like a user would.

The management account (moto's default 123456789012) creates an ALL-features
organization, enables trusted access for IAM, creates members (about two thirds
before RootCredentialsManagement is enabled, so they keep a root password; the
rest after, so they have no root credentials), gives some members extra root
credentials, enables both root-access features, locks a few member buckets and
queues with deny-all policies (through OrganizationAccountAccessRole, as an
operator would), and creates rootwarden's intake, dead-letter and results
queues in the management account (FIFO queues if asked, without content-based
deduplication so senders give deduplication ids; a MaximumMessageSize if asked).
`seed()` returns what it made.
"""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request

import boto3
from botocore.config import Config

MANAGEMENT_ACCOUNT = "123456789012"
INTAKE, DEAD_LETTER, RESULTS = "rootwarden-intake", "rootwarden-intake-dlq", "rootwarden-results"
MAX_ACCOUNTS = 2000
MESSAGE_SIZE_RANGE = (1024, 1_048_576)  # what SQS accepts as MaximumMessageSize
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class SeedError(RuntimeError):
    pass


def deny_all_bucket_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyEveryone", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }]})


def deny_all_queue_policy(queue_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyEveryone", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn,
    }]})


def root_spec(index: int) -> dict:
    """A varied, deterministic root state for the index-th member created with a password."""
    return {
        "password": True,
        "password_last_used": "2026-01-02T03:04:05Z" if index % 2 == 0 else None,
        "access_keys": 1 if index % 4 == 0 else 0,
        "access_keys_inactive": 1 if index % 8 == 0 else 0,
        "mfa_devices": 1 if index % 3 == 0 else 0,
        "signing_certificates": 1 if index % 5 == 0 else 0,
    }


class _Seeder:
    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint, self.region = endpoint.rstrip("/"), region
        self.config = Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"},
                             max_pool_connections=16)

    def client(self, service: str, **credentials):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            config=self.config, **(credentials or _CREDENTIALS))

    def member_credentials(self, account_id: str) -> dict:
        role = f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
        creds = self.client("sts").assume_role(RoleArn=role, RoleSessionName="localaws-seed")["Credentials"]
        return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"]}

    def set_root(self, account_id: str, spec: dict) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/_localaws/accounts/{account_id}/root", data=json.dumps(spec).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30):
            pass


def seed(endpoint: str, accounts: int, locked_buckets: int = 3, locked_queues: int = 3,
         region: str = "us-east-1", workers: int = 4, fifo: bool = False,
         max_message_size: int | None = None) -> dict:
    """Create the organization and its resources on `endpoint`; return a description."""
    if not 1 <= accounts <= MAX_ACCOUNTS:
        raise SeedError(f"--accounts must be from 1 to {MAX_ACCOUNTS}")
    low, high = MESSAGE_SIZE_RANGE
    if max_message_size is not None and not low <= max_message_size <= high:
        raise SeedError(f"--max-message-size must be from {low} to {high}")
    seeder = _Seeder(endpoint, region)
    org_client, iam = seeder.client("organizations"), seeder.client("iam")
    organization_id = _create_organization(org_client)
    before = accounts - accounts // 3
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        members = _create_accounts(pool, org_client, 0, before, "before")
        _seed_root_states(pool, seeder, members)
        iam.enable_organizations_root_credentials_management()
        members += _create_accounts(pool, org_client, before, accounts, "after")
    iam.enable_organizations_root_sessions()
    return {
        "endpoint": seeder.endpoint, "region": region, "organization_id": organization_id,
        "management_account": MANAGEMENT_ACCOUNT,
        "features": iam.list_organizations_features()["EnabledFeatures"],
        "accounts": members,
        "buckets": _lock_buckets(seeder, members, locked_buckets),
        "queues": {**_management_queues(seeder, fifo, max_message_size),
                   "locked": _lock_queues(seeder, members, locked_queues)},
    }


def _create_organization(org_client) -> str:
    try:
        organization = org_client.create_organization(FeatureSet="ALL")["Organization"]
    except org_client.exceptions.AlreadyInOrganizationException:
        raise SeedError("the endpoint already has an organization: POST /moto-api/reset first") from None
    org_client.enable_aws_service_access(ServicePrincipal="iam.amazonaws.com")
    return organization["Id"]


def _create_accounts(pool, org_client, start: int, stop: int, when: str) -> list[dict]:
    def create(index: int) -> dict:
        name = f"member-{index + 1:04d}"
        status = org_client.create_account(AccountName=name, Email=f"{name}@example.com")
        return {"id": status["CreateAccountStatus"]["AccountId"], "name": name,
                "created": f"{when}_root_credentials_management",
                "root": _summary(root_spec(index) if when == "before" else {})}
    return list(pool.map(create, range(start, stop)))


def _seed_root_states(pool, seeder: _Seeder, members: list[dict]) -> None:
    """Give members extra root credentials (a plain password needs no call: it is the default)."""
    plain = _summary({"password": True})
    extras = [(m["id"], root_spec(i)) for i, m in enumerate(members) if m["root"] != plain
              or root_spec(i)["password_last_used"]]
    list(pool.map(lambda item: seeder.set_root(*item), extras))


def _summary(spec: dict) -> dict:
    return {
        "password": bool(spec.get("password")),
        "password_last_used": spec.get("password_last_used"),
        "access_keys": spec.get("access_keys", 0) + spec.get("access_keys_inactive", 0),
        "mfa_devices": spec.get("mfa_devices", 0),
        "signing_certificates": spec.get("signing_certificates", 0),
    }


def _lock_buckets(seeder: _Seeder, members: list[dict], count: int) -> list[dict]:
    buckets = []
    for index in range(count):
        account_id = members[index % len(members)]["id"]
        s3 = seeder.client("s3", **seeder.member_credentials(account_id))
        name = f"locked-{account_id}-{index + 1}"
        s3.create_bucket(Bucket=name)
        s3.put_bucket_policy(Bucket=name, Policy=deny_all_bucket_policy(name))
        buckets.append({"name": name, "account_id": account_id, "locked": True})
    return buckets


def _lock_queues(seeder: _Seeder, members: list[dict], count: int) -> list[dict]:
    queues = []
    for index in range(count):
        account_id = members[index % len(members)]["id"]
        sqs = seeder.client("sqs", **seeder.member_credentials(account_id))
        url = sqs.create_queue(QueueName=f"locked-queue-{index + 1}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": deny_all_queue_policy(arn)})
        queues.append({"url": url, "account_id": account_id, "locked": True})
    return queues


def _management_queues(seeder: _Seeder, fifo: bool, max_message_size: int | None) -> dict:
    sqs = seeder.client("sqs")
    suffix, common = "", {}
    if fifo:
        suffix = ".fifo"
        common = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    if max_message_size is not None:
        common["MaximumMessageSize"] = str(max_message_size)

    def create(name: str, **attributes: str) -> str:
        return sqs.create_queue(QueueName=name + suffix, Attributes={**common, **attributes})["QueueUrl"]

    dead_letter = create(DEAD_LETTER)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    intake = create(INTAKE, VisibilityTimeout="60",
                    RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}))
    results = create(RESULTS)
    return {"intake": intake, "dead_letter": dead_letter, "results": results}
