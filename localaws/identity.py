"""Who a request's credentials are: account, principal id, ARN.

Two things must agree: the `UserId` STS GetCallerIdentity returns and the
`SenderId` SQS stamps on a message sent with the same credentials (rootwarden's
sender allowlist compares them). moto returns one constant for both, so this
module patches moto to derive them from the credentials instead:

* a root session (AssumeRoot): the member account id, `arn:aws:iam::<id>:root`;
* a moto-assumed role: moto's `AROA...:<session>` (made deterministic when the
  role does not exist, where moto would draw a new random id on every call);
* an IAM user's key: the user's `AIDA...` id (moto's own);
* any other key: an `AIDA...` id derived from the key, so distinct keys differ.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading

from moto.iam import models as iam_models
from moto.iam.models import iam_backends
from moto.sqs.models import SQSBackend
from moto.sts import models as sts_models

from .state import STATE

_MOTO_UNKNOWN_USER_ID = "AKIAIOSFODNN7EXAMPLE"  # what moto answers for keys it does not know
_sender = threading.local()


def derived_id(prefix: str, seed: str) -> str:
    """A stable 21-character IAM-style unique id (prefix + 17 characters) for `seed`."""
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return prefix + digest[: 21 - len(prefix)]


def caller_account(environ: dict, access_key: str | None) -> str:
    """The account moto will act in for this request (same precedence as moto)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    header = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if header:
        return header
    session = STATE.session(access_key) if access_key else None
    if session is not None:
        return session.account_id
    # Through the module, so localaws.speed's remembering version is the one called.
    return iam_models.get_account_id_from(access_key or "AKIAEXAMPLE")


def user_id(access_key: str | None, region: str, account_id: str) -> str:
    """The principal id of `access_key`, as GetCallerIdentity reports it (cached per key)."""
    key = access_key or "AKIAEXAMPLE"
    cached = STATE.user_ids.get(key)
    if cached is not None:
        return cached
    backend = sts_models.sts_backends[account_id]["aws"]
    principal, _, _ = backend.get_caller_identity(key, region)
    STATE.user_ids[key] = principal
    return principal


def set_sender(sender_id: str | None) -> None:
    """Make the next SQS messages stored by this thread carry `sender_id`."""
    _sender.value = sender_id


def install() -> None:
    """Patch moto's STS and SQS (idempotent)."""
    if getattr(sts_models.STSBackend, "_localaws_installed", False):
        return
    sts_models.STSBackend.get_caller_identity = _caller_identity(sts_models.STSBackend.get_caller_identity)
    sts_models.AssumedRole.user_id = property(_assumed_role_user_id)
    SQSBackend.send_message = _stamp_sender(SQSBackend.send_message)
    sts_models.STSBackend._localaws_installed = True


def _caller_identity(original):
    @functools.wraps(original)
    def get_caller_identity(self, access_key_id, region):
        session = STATE.session(access_key_id)
        if session is not None:
            return session.account_id, session.arn, session.account_id
        principal, arn, account = original(self, access_key_id, region)
        if principal == _MOTO_UNKNOWN_USER_ID:
            principal = derived_id("AIDA", access_key_id)
        return principal, arn, account
    return get_caller_identity


def _assumed_role_user_id(self) -> str:
    backend = iam_backends[self.account_id][self.partition]
    try:
        role_id = backend.get_role_by_arn(arn=self.role_arn).id
    except Exception:  # moto lets a role that does not exist be assumed
        role_id = derived_id("AROA", self.role_arn)
    return f"{role_id}:{self.session_name}"


def _stamp_sender(original):
    @functools.wraps(original)
    def send_message(self, *args, **kwargs):
        message = original(self, *args, **kwargs)
        sender = getattr(_sender, "value", None)
        if sender:
            message.sender_id = sender
        return message
    return send_message
