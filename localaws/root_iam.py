"""IAM calls that a root session makes on the member account's root user.

With AssumeRoot credentials, IAM calls that omit `UserName` act on the root
user (calls that name a user keep moto's behaviour). moto has no root user, so
the extension answers these itself from `RootUser`, in the real IAM XML shapes
and with IAM's errors: NoSuchEntity (404) for what is absent,
EntityAlreadyExists (409) for a second login profile. GetAccountSummary stays
moto's, with the four root-user flags overlaid by a patch, and the root user's
MFA devices added to `MFADevices` and `MFADevicesInUse`: AWS counts every MFA
device of the account there, the root user's among them.
"""

from __future__ import annotations

import functools

from moto.iam import models as iam_models

from . import clock, responses
from .awsrequest import AwsRequest
from .rootuser import ROOT_NAME, LoginProfile, RootUser
from .state import STATE, RootSession


class NoSuchEntity(Exception):
    code = "NoSuchEntity"


class Invalid(Exception):
    code = "ValidationError"


class AlreadyExists(Exception):
    code = "EntityAlreadyExists"


def handle(req: AwsRequest, session: RootSession) -> responses.Reply | None:
    """Answer a root-user IAM call, or None to let moto answer it."""
    handler = _HANDLERS.get(req.operation)
    if req.service != "iam" or handler is None or req.param("UserName"):
        return None
    with STATE.lock:
        user = STATE.root_user(session.account_id)
        try:
            result = handler(req, user)
        except (NoSuchEntity, Invalid, AlreadyExists) as err:
            return responses.error(req, err.code, str(err))
    if result is _PASS:
        return None
    return responses.query_result("iam", req.operation, result)


_PASS = object()  # the call is not about the root user after all


def _get_user(req: AwsRequest, user: RootUser) -> dict:
    return {"User": {
        "UserId": user.account_id, "Arn": user.arn,
        "CreateDate": clock.rfc3339(user.created),
        "PasswordLastUsed": clock.rfc3339(user.password_last_used),
    }}


def _profile_shape(profile: LoginProfile) -> dict:
    return {"LoginProfile": {"UserName": ROOT_NAME, "CreateDate": clock.rfc3339(profile.created),
                             "PasswordResetRequired": False}}


def _get_login_profile(req: AwsRequest, user: RootUser) -> dict:
    if user.login_profile is None:
        raise NoSuchEntity(f"Login Profile for User {ROOT_NAME} cannot be found.")
    return _profile_shape(user.login_profile)


def _create_login_profile(req: AwsRequest, user: RootUser) -> dict:
    if req.param("Password") is not None:
        raise Invalid("Password must be omitted when the request is made with an AssumeRoot session.")
    if user.login_profile is not None:
        raise AlreadyExists(f"Login Profile for user {ROOT_NAME} already exists.")
    user.login_profile = LoginProfile(created=clock.now(), recovery_only=True)
    return _profile_shape(user.login_profile)


def _delete_login_profile(req: AwsRequest, user: RootUser) -> None:
    if user.login_profile is None:
        raise NoSuchEntity(f"Login Profile for User {ROOT_NAME} cannot be found.")
    user.login_profile = None


def _list_access_keys(req: AwsRequest, user: RootUser) -> dict:
    return {"AccessKeyMetadata": [
        {"AccessKeyId": k.id, "Status": k.status, "CreateDate": clock.rfc3339(k.created)}
        for k in user.access_keys
    ], "IsTruncated": False}


def _get_access_key_last_used(req: AwsRequest, user: RootUser):
    key = user.access_key(req.param("AccessKeyId") or "")
    if key is None:
        return _PASS
    return {"AccessKeyLastUsed": {
        "LastUsedDate": clock.rfc3339(key.last_used),
        "ServiceName": key.last_used_service or "N/A",
        "Region": key.last_used_region or "N/A",
    }}


def _delete_access_key(req: AwsRequest, user: RootUser) -> None:
    key_id = req.param("AccessKeyId") or ""
    key = user.access_key(key_id)
    if key is None:
        raise NoSuchEntity(f"The Access Key with id {key_id} cannot be found.")
    user.access_keys.remove(key)


def _list_mfa_devices(req: AwsRequest, user: RootUser) -> dict:
    return {"MFADevices": [
        {"UserName": ROOT_NAME, "SerialNumber": d.serial, "EnableDate": clock.rfc3339(d.enabled)}
        for d in user.mfa_devices
    ], "IsTruncated": False}


def _deactivate_mfa_device(req: AwsRequest, user: RootUser) -> None:
    serial = req.param("SerialNumber") or ""
    device = next((d for d in user.mfa_devices if d.serial == serial), None)
    if device is None:
        raise NoSuchEntity(f"MFA Device with serial number {serial} does not exist.")
    user.mfa_devices.remove(device)


def _list_signing_certificates(req: AwsRequest, user: RootUser) -> dict:
    return {"Certificates": [
        {"UserName": ROOT_NAME, "CertificateId": c.id, "CertificateBody": c.body,
         "Status": c.status, "UploadDate": clock.rfc3339(c.uploaded)}
        for c in user.signing_certificates
    ], "IsTruncated": False}


def _delete_signing_certificate(req: AwsRequest, user: RootUser) -> None:
    cert_id = req.param("CertificateId") or ""
    cert = next((c for c in user.signing_certificates if c.id == cert_id), None)
    if cert is None:
        raise NoSuchEntity(f"The Certificate with id {cert_id} cannot be found.")
    user.signing_certificates.remove(cert)


_HANDLERS = {
    "GetUser": _get_user,
    "GetLoginProfile": _get_login_profile,
    "CreateLoginProfile": _create_login_profile,
    "DeleteLoginProfile": _delete_login_profile,
    "ListAccessKeys": _list_access_keys,
    "GetAccessKeyLastUsed": _get_access_key_last_used,
    "DeleteAccessKey": _delete_access_key,
    "ListMFADevices": _list_mfa_devices,
    "DeactivateMFADevice": _deactivate_mfa_device,
    "ListSigningCertificates": _list_signing_certificates,
    "DeleteSigningCertificate": _delete_signing_certificate,
}


def install() -> None:
    """Make moto's GetAccountSummary report the root user's credentials (idempotent)."""
    summary = iam_models.AccountSummary
    if getattr(summary, "_localaws_installed", False):
        return
    summary.summary_map = property(_with_root_flags(summary.summary_map.fget))
    summary._localaws_installed = True


def _with_root_flags(original):
    @functools.wraps(original)
    def summary_map(self):
        values = original(self)
        user = STATE.root_users.get(self._iam_backend.account_id)
        if user is not None:
            values.update(user.summary_flags())
            # moto counts the IAM users' and unassigned devices; the root user's are ours.
            for key in ("MFADevices", "MFADevicesInUse"):
                values[key] = values.get(key, 0) + len(user.mfa_devices)
        else:
            values["AccountPasswordPresent"] = 0
        return values
    return summary_map
