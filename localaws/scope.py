"""What a root session's task policy allows.

AWS scopes an AssumeRoot session with one of five managed task policies. Each
allows a handful of actions on the member account's own root user or
resources; everything else is AccessDenied. `check` returns the denial (code
and message) for a request, or None when the task policy allows it.
"""

from __future__ import annotations

from urllib.parse import urlparse

from moto.s3.models import s3_backends

from .awsrequest import AwsRequest
from .state import RootSession

TASK_POLICY_PREFIX = "arn:aws:iam::aws:policy/root-task/"

_IAM_READS = {"GetUser", "GetLoginProfile", "ListAccessKeys", "GetAccessKeyLastUsed",
              "ListMFADevices", "ListSigningCertificates"}

TASK_ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "IAMAuditRootUserCredentials": ("iam", frozenset(_IAM_READS | {"GetAccountSummary"})),
    "IAMDeleteRootUserCredentials": ("iam", frozenset(_IAM_READS | {
        "DeleteLoginProfile", "DeleteAccessKey", "DeleteSigningCertificate", "DeactivateMFADevice"})),
    "IAMCreateRootUserPassword": ("iam", frozenset({"GetLoginProfile", "CreateLoginProfile"})),
    "S3UnlockBucketPolicy": ("s3", frozenset({
        "GetBucketPolicy", "DeleteBucketPolicy", "PutBucketPolicy", "ListBuckets"})),
    "SQSUnlockQueuePolicy": ("sqs", frozenset({
        "GetQueueUrl", "ListQueues", "GetQueueAttributes", "SetQueueAttributes"})),
}

# IAM action names where they differ from the API operation's name.
_IAM_ACTION = {("s3", "ListBuckets"): "ListAllMyBuckets"}


class Denial:
    code = "AccessDenied"

    def __init__(self, message: str) -> None:
        self.message = message


def check(session: RootSession, req: AwsRequest) -> Denial | None:
    """The task policy's verdict on this request."""
    if req.service == "sts" and req.operation == "GetCallerIdentity":
        return None
    service, actions = TASK_ACTIONS[session.task]
    if req.service != service or req.operation not in actions:
        return _not_allowed(session, req)
    if service == "s3":
        return _check_bucket(session, req)
    if service == "sqs":
        return _check_queue(session, req)
    return None


def _not_allowed(session: RootSession, req: AwsRequest, why: str | None = None) -> Denial:
    action = f"{req.service}:{_IAM_ACTION.get((req.service, req.operation), req.operation)}"
    why = why or f"because no identity-based policy allows the {action} action"
    return Denial(f"User: {session.arn} is not authorized to perform: {action} {why}")


def _check_bucket(session: RootSession, req: AwsRequest) -> Denial | None:
    bucket = req.s3_bucket()
    if bucket is None:  # ListBuckets
        return None
    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is not None and owner[1] != session.account_id:
        return _not_allowed(session, req, f"on resource: arn:aws:s3:::{bucket} "
                                          "because the bucket belongs to another account")
    return None


def _check_queue(session: RootSession, req: AwsRequest) -> Denial | None:
    if req.operation == "ListQueues":
        return None
    if req.operation == "GetQueueUrl":
        owner = req.param("QueueOwnerAWSAccountId")
    else:
        owner = queue_url_account(req.param("QueueUrl") or "")
    if owner is not None and owner != session.account_id:
        return _not_allowed(session, req, "because the queue belongs to another account")
    # SetQueueAttributes: any attributes and values. AWS's task policy lists the action without a
    # condition (IAM has no condition key for attribute names), so a policy can be removed, replaced
    # by some of its statements, or restored.
    return None


def queue_url_account(queue_url: str) -> str | None:
    """The account id in a queue URL (`.../<account>/<name>`), or None."""
    parts = urlparse(queue_url).path.strip("/").split("/")
    if len(parts) == 2 and parts[0].isdigit():
        return parts[0]
    return None
