"""STS AssumeRoot, and the root sessions it issues.

The checks follow AWS's order of concern: the request is well-formed
(ValidationError), the caller may use centralized root access (management
account or IAM delegated administrator), the target is an ACTIVE member other
than the management account, and the organization has the feature the task
needs (all AccessDenied). Every call, allowed or not, is appended to the
assume-root log the control API serves.
"""

from __future__ import annotations

import datetime
import random
import re
import string

from moto.iam.utils import generate_access_key_id_from_account_id
from moto.sts.models import sts_backends
from moto.sts.utils import random_session_token

from . import clock, identity, organization, responses
from .awsrequest import AwsRequest
from .scope import TASK_ACTIONS, TASK_POLICY_PREFIX
from .state import STATE, RootSession

MAX_DURATION = 900
_TARGET = re.compile(r"^(?:arn:aws:iam::(\d{12}):root|(\d{12}))$")

# The organization feature each task needs.
TASK_FEATURE = {
    "IAMAuditRootUserCredentials": organization.ROOT_CREDENTIALS_MANAGEMENT,
    "IAMDeleteRootUserCredentials": organization.ROOT_CREDENTIALS_MANAGEMENT,
    "IAMCreateRootUserPassword": organization.ROOT_CREDENTIALS_MANAGEMENT,
    "S3UnlockBucketPolicy": organization.ROOT_SESSIONS,
    "SQSUnlockQueuePolicy": organization.ROOT_SESSIONS,
}


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def handle(req: AwsRequest) -> responses.Reply:
    """Answer an AssumeRoot call, logging its outcome."""
    params = req.params()
    caller = identity.caller_account(req.environ, req.access_key)
    entry = {
        "time": clock.rfc3339(clock.now()), "caller_account": caller,
        "target_principal": params.get("TargetPrincipal"),
        "task": task_of(params.get("TaskPolicyArn.arn")),
        "duration_seconds": None, "result": "ok", "access_key_id": None,
    }
    try:
        task, target, duration = _validate(params)
        entry["duration_seconds"] = duration
        _authorize(req, caller, target, task)
        session = _issue(caller, target, task, duration)
    except Refusal as refusal:
        entry["result"] = refusal.code
        STATE.log_assume_root(entry)
        return responses.error(req, refusal.code, refusal.message)
    entry["access_key_id"] = session.access_key_id
    STATE.log_assume_root(entry)
    return responses.query_result("sts", "AssumeRoot", {"Credentials": {
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret_access_key,
        "SessionToken": session.session_token,
        "Expiration": clock.rfc3339(session.expiration),
    }})


def task_of(policy_arn: str | None) -> str | None:
    """The task named by a task policy ARN, or None if it names none of the five."""
    if policy_arn and policy_arn.startswith(TASK_POLICY_PREFIX):
        task = policy_arn[len(TASK_POLICY_PREFIX):]
        if task in TASK_ACTIONS:
            return task
    return None


def log_fault(req: AwsRequest, code: str) -> None:
    """Record an AssumeRoot call that an injected fault answered."""
    params = req.params()
    STATE.log_assume_root({
        "time": clock.rfc3339(clock.now()),
        "caller_account": identity.caller_account(req.environ, req.access_key),
        "target_principal": params.get("TargetPrincipal"),
        "task": task_of(params.get("TaskPolicyArn.arn")),
        "duration_seconds": _int_or_none(params.get("DurationSeconds", "900")),
        "result": code, "access_key_id": None,
    })


def _validate(params: dict[str, str]) -> tuple[str, str, int]:
    raw_target = params.get("TargetPrincipal")
    match = _TARGET.match(raw_target or "")
    if match is None:
        raise Refusal("ValidationError", f"1 validation error detected: Value '{raw_target}' at "
                      "'targetPrincipal' failed to satisfy constraint: Member must be a 12-digit "
                      "account id or arn:aws:iam::<account>:root")
    policy_arn = params.get("TaskPolicyArn.arn")
    task = task_of(policy_arn)
    if task is None:
        raise Refusal("ValidationError", f"The TaskPolicyArn '{policy_arn}' is not a valid root task "
                      f"policy: use one of {TASK_POLICY_PREFIX}{{{','.join(TASK_ACTIONS)}}}")
    duration = _int_or_none(params.get("DurationSeconds", str(MAX_DURATION)))
    if duration is None or not 1 <= duration <= MAX_DURATION:
        raise Refusal("ValidationError", f"1 validation error detected: Value "
                      f"'{params.get('DurationSeconds')}' at 'durationSeconds' failed to satisfy "
                      f"constraint: Member must have value between 1 and {MAX_DURATION}")
    return task, match.group(1) or match.group(2), duration


def _authorize(req: AwsRequest, caller: str, target: str, task: str) -> None:
    who = _caller_arn(req, caller)
    denied = f"User: {who} is not authorized to perform: sts:AssumeRoot on resource: arn:aws:iam::{target}:root"
    org = organization.of_account(caller)
    if org is None or not org.may_manage_root(caller):
        raise Refusal("AccessDenied", f"{denied} because account {caller} is neither the management "
                      "account nor the IAM delegated administrator of an organization")
    if target == org.management_account:
        raise Refusal("AccessDenied", f"{denied} because AssumeRoot cannot target the management account")
    if not org.active_member(target):
        raise Refusal("AccessDenied", f"{denied} because account {target} is not an active member "
                      "of the organization")
    feature = TASK_FEATURE[task]
    if feature not in org.features():
        raise Refusal("AccessDenied", f"{denied} because the organization feature {feature} is not "
                      f"enabled (iam:EnableOrganizations{feature})")


def _caller_arn(req: AwsRequest, caller: str) -> str:
    _, arn, _ = sts_backends[caller]["aws"].get_caller_identity(req.access_key or "AKIAEXAMPLE", req.region)
    return arn


def _issue(caller: str, target: str, task: str, duration: int) -> RootSession:
    session = RootSession(
        access_key_id=generate_access_key_id_from_account_id(target, prefix="ASIA", total_length=20),
        secret_access_key="".join(random.choice(string.ascii_letters + string.digits + "+/") for _ in range(40)),
        session_token=random_session_token(),
        account_id=target, task=task,
        expiration=clock.now() + datetime.timedelta(seconds=duration),
        caller_account=caller,
    )
    with STATE.lock:
        STATE.sessions[session.access_key_id] = session
    return session


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
