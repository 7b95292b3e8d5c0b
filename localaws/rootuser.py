"""The root user's credentials of one account.

moto has no root user at all. rootwarden audits and deletes root passwords,
access keys, MFA devices and signing certificates, so each account gets a
`RootUser` holding exactly those, in the terms IAM reports them.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import string

from . import clock

ROOT_NAME = "root"  # what IAM shapes that require a UserName carry for the root user


def _random_id(prefix: str, length: int) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(random.choice(alphabet) for _ in range(length - len(prefix)))


@dataclasses.dataclass
class LoginProfile:
    created: datetime.datetime
    recovery_only: bool = False  # created by an AssumeRoot session: no password, recovery allowed


@dataclasses.dataclass
class AccessKey:
    id: str
    status: str
    created: datetime.datetime
    last_used: datetime.datetime | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None


@dataclasses.dataclass
class MfaDevice:
    serial: str
    enabled: datetime.datetime


@dataclasses.dataclass
class SigningCertificate:
    id: str
    status: str
    uploaded: datetime.datetime
    body: str = "-----BEGIN CERTIFICATE-----\nMIIBlocalaws\n-----END CERTIFICATE-----"


@dataclasses.dataclass
class RootUser:
    account_id: str
    created: datetime.datetime
    login_profile: LoginProfile | None = None
    password_last_used: datetime.datetime | None = None
    access_keys: list[AccessKey] = dataclasses.field(default_factory=list)
    mfa_devices: list[MfaDevice] = dataclasses.field(default_factory=list)
    signing_certificates: list[SigningCertificate] = dataclasses.field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:root"

    def access_key(self, key_id: str) -> AccessKey | None:
        return next((k for k in self.access_keys if k.id == key_id), None)

    def summary_flags(self) -> dict[str, int]:
        """The four GetAccountSummary entries that describe the root user."""
        return {
            "AccountPasswordPresent": int(self.login_profile is not None),
            "AccountAccessKeysPresent": int(bool(self.access_keys)),
            "AccountMFAEnabled": int(bool(self.mfa_devices)),
            "AccountSigningCertificatesPresent": int(bool(self.signing_certificates)),
        }

    def to_json(self) -> dict:
        """The control API's view (GET /_localaws/accounts/{id}/root)."""
        profile = None
        if self.login_profile is not None:
            profile = {
                "created": clock.rfc3339(self.login_profile.created),
                "password_last_used": clock.rfc3339(self.password_last_used),
                "recovery_only": self.login_profile.recovery_only,
            }
        return {
            "account_id": self.account_id,
            "login_profile": profile,
            "access_keys": [
                {
                    "id": k.id,
                    "status": k.status,
                    "created": clock.rfc3339(k.created),
                    "last_used": clock.rfc3339(k.last_used),
                }
                for k in self.access_keys
            ],
            "mfa_devices": [{"serial": d.serial, "enabled": True} for d in self.mfa_devices],
            "signing_certificates": [
                {"id": c.id, "status": c.status, "uploaded": clock.rfc3339(c.uploaded)}
                for c in self.signing_certificates
            ],
        }


def empty(account_id: str) -> RootUser:
    """A root user without any credential (an account created after RootCredentialsManagement)."""
    return RootUser(account_id=account_id, created=clock.now())


def with_password(account_id: str) -> RootUser:
    """A root user as AWS creates it with a new account: a password only."""
    user = empty(account_id)
    user.login_profile = LoginProfile(created=user.created)
    return user


class SpecError(ValueError):
    """The control API was given a root state it cannot build."""


def from_spec(account_id: str, spec: dict) -> RootUser:
    """Build a root user from the control API's POST body (every field optional)."""
    known = {"password", "password_last_used", "access_keys", "access_keys_inactive",
             "mfa_devices", "signing_certificates"}
    unknown = set(spec) - known
    if unknown:
        raise SpecError(f"unknown fields: {sorted(unknown)}")
    now = clock.now()
    created = now - datetime.timedelta(days=400)
    user = RootUser(account_id=account_id, created=created)
    if spec.get("password", False):
        user.login_profile = LoginProfile(created=created)
    user.password_last_used = _parse_time(spec.get("password_last_used"))
    active = _count(spec, "access_keys")
    inactive = _count(spec, "access_keys_inactive")
    for index in range(active + inactive):
        status = "Active" if index < active else "Inactive"
        used = now - datetime.timedelta(days=3 + index) if status == "Active" else None
        user.access_keys.append(AccessKey(
            id=_random_id("AKIA", 20), status=status, created=created,
            last_used=used, last_used_service="s3" if used else None,
            last_used_region="us-east-1" if used else None,
        ))
    for index in range(_count(spec, "mfa_devices")):
        suffix = "" if index == 0 else f"-{index + 1}"
        user.mfa_devices.append(MfaDevice(
            serial=f"arn:aws:iam::{account_id}:mfa/root-account-mfa-device{suffix}", enabled=created,
        ))
    for _ in range(_count(spec, "signing_certificates")):
        user.signing_certificates.append(SigningCertificate(
            id=_random_id("", 32), status="Active", uploaded=created,
        ))
    return user


def _count(spec: dict, name: str) -> int:
    value = spec.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise SpecError(f"{name} must be an integer from 0 to 100")
    return value


def _parse_time(value: object) -> datetime.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError("password_last_used must be an RFC 3339 string or null")
    try:
        return clock.parse_rfc3339(value)
    except ValueError as err:
        raise SpecError(f"password_last_used: {err}") from None
