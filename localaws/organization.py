"""Organization lookups, and the patches that teach moto's Organizations about IAM.

Centralized root access hangs off the organization: who the management account
is, who is IAM's delegated administrator, whether trusted access for
iam.amazonaws.com is on, which accounts are ACTIVE members. moto stores all of
that; this module reads it, and patches moto so that

* iam.amazonaws.com is accepted by EnableAWSServiceAccess and
  RegisterDelegatedAdministrator (moto's allow-lists predate it),
* an account created while RootCredentialsManagement is off gets a root
  password, one created after gets no root credentials (AWS's behaviour), and
* an account's State and Status can be set (control API), an answer leaves out
  a field set to None, and CloseAccount leaves State CLOSED, Status SUSPENDED.
"""

from __future__ import annotations

import dataclasses
import functools

from moto.organizations import models as org_models

from . import rootuser
from .state import STATE

IAM_PRINCIPAL = "iam.amazonaws.com"
ROOT_CREDENTIALS_MANAGEMENT = "RootCredentialsManagement"
ROOT_SESSIONS = "RootSessions"
FEATURES = (ROOT_CREDENTIALS_MANAGEMENT, ROOT_SESSIONS)

# Organizations' account State (2025) and the Status it replaces (retired 2026-09-09), which
# says SUSPENDED for a closed account as for one AWS suspended, and ACTIVE for one not yet
# activated.
STATUS_OF_STATE = {
    "PENDING_ACTIVATION": "ACTIVE",
    "ACTIVE": "ACTIVE",
    "SUSPENDED": "SUSPENDED",
    "PENDING_CLOSURE": "PENDING_CLOSURE",
    "CLOSED": "SUSPENDED",
}
STATUSES = ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE")


@dataclasses.dataclass
class Organization:
    """A read-only view of one moto organization."""

    backend: org_models.OrganizationsBackend

    @property
    def org(self) -> org_models.FakeOrganization:
        return self.backend.org

    @property
    def id(self) -> str:
        return self.org.id

    @property
    def management_account(self) -> str:
        return self.org.master_account_id

    @property
    def all_features(self) -> bool:
        return self.org.feature_set == "ALL"

    def active_member(self, account_id: str) -> bool:
        """An ACTIVE account of this organization other than the management account."""
        if account_id == self.management_account:
            return False
        return any(a.id == account_id and effective_state(a) == "ACTIVE" for a in self.backend.accounts)

    def iam_delegated_admins(self) -> set[str]:
        return {a.account.id for a in self.backend.admins if IAM_PRINCIPAL in a.services}

    def may_manage_root(self, account_id: str) -> bool:
        """The management account or IAM's delegated administrator."""
        return account_id == self.management_account or account_id in self.iam_delegated_admins()

    def iam_trusted_access(self) -> bool:
        return any(s["ServicePrincipal"] == IAM_PRINCIPAL for s in self.backend.services)

    def features(self) -> set[str]:
        return STATE.enabled_features(self.id)


def of_account(account_id: str) -> Organization | None:
    """The organization `account_id` manages or belongs to, if any."""
    backends = org_models.organizations_backends
    owner = backends.master_accounts.get(account_id)
    if owner is not None:
        master, partition = owner
        backend = backends[master][partition]
    else:
        # dict.get: never make an Organizations backend for an account that has none.
        account_backends = dict.get(backends, account_id)
        if account_backends is None:
            return None
        backend = account_backends["aws"]
    if backend.org is None:
        return None
    return Organization(backend)


def effective_state(account: org_models.FakeAccount) -> str | None:
    """State, or Status when the answer has no State (as before 2025)."""
    return account.state or account.status


def find_account(account_id: str) -> org_models.FakeAccount | None:
    """The account as the organization it belongs to (or manages) holds it."""
    org = of_account(account_id)
    if org is None:
        return None
    return next((a for a in org.backend.accounts if a.id == account_id), None)


class StateSpecError(ValueError):
    pass


def state_from_spec(body: dict) -> tuple[str | None, str | None]:
    """(State, Status) from a control API body: `state` required (None: no State in answers),
    `status` optional (default: the one AWS gives that State; None: no Status in answers)."""
    unknown = set(body) - {"state", "status"}
    if unknown:
        raise StateSpecError(f"unknown fields: {', '.join(sorted(unknown))} (accepted: state, status)")
    if "state" not in body:
        raise StateSpecError("state is required")
    state = body["state"]
    if state is not None and state not in STATUS_OF_STATE:
        raise StateSpecError(f"state must be one of {', '.join(STATUS_OF_STATE)}, or null, not {state!r}")
    if "status" in body:
        status = body["status"]
        if status is not None and status not in STATUSES:
            raise StateSpecError(f"status must be one of {', '.join(STATUSES)}, or null, not {status!r}")
    elif state is None:
        raise StateSpecError("with state null, give status (an answer carries at least one of them)")
    else:
        status = STATUS_OF_STATE[state]
    if state is None and status is None:
        raise StateSpecError("state and status cannot both be null")
    return state, status


def state_json(account: org_models.FakeAccount) -> dict:
    return {"account_id": account.id, "state": account.state, "status": account.status}


def install() -> None:
    """Patch moto's Organizations (idempotent)."""
    if getattr(org_models.OrganizationsBackend, "_localaws_installed", False):
        return
    for allowed in (org_models.FakeServiceAccess.TRUSTED_SERVICES,
                    org_models.FakeDelegatedAdministrator.SUPPORTED_SERVICES):
        if IAM_PRINCIPAL not in allowed:
            allowed.append(IAM_PRINCIPAL)
    backend = org_models.OrganizationsBackend
    backend.create_organization = _after_create_organization(backend.create_organization)
    backend.create_account = _after_create_account(backend.create_account)
    account = org_models.FakeAccount
    account.describe = _without_absent_fields(account.describe)
    account.close = _closed_not_suspended(account.close)
    backend._localaws_installed = True


def forget_members() -> None:
    """moto's reset keeps its member-to-management map; clear it with everything else."""
    org_models.organizations_backends.master_accounts.clear()


def _after_create_organization(original):
    @functools.wraps(original)
    def create_organization(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        _give_root_user(self.account_id, password=True)
        return result
    return create_organization


def _after_create_account(original):
    @functools.wraps(original)
    def create_account(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        account_id = result["CreateAccountStatus"]["AccountId"]
        managed = ROOT_CREDENTIALS_MANAGEMENT in STATE.enabled_features(self.org.id)
        _give_root_user(account_id, password=not managed)
        return result
    return create_account


def _without_absent_fields(original):
    """State or Status set to None (control API) is left out of the answer, as AWS did before
    State existed and will once Status is retired."""
    @functools.wraps(original)
    def describe(self):
        answer = original(self)
        for field in ("State", "Status"):
            if answer.get(field) is None:
                answer.pop(field, None)
        return answer
    return describe


def _closed_not_suspended(original):
    """AWS's CloseAccount ends in State CLOSED (90 days to reopen), Status SUSPENDED; moto says
    SUSPENDED for both. The PENDING_CLOSURE in between is skipped (the control API sets it)."""
    @functools.wraps(original)
    def close(self):
        original(self)
        self.state = "CLOSED"
    return close


def _give_root_user(account_id: str, password: bool) -> None:
    user = rootuser.with_password(account_id) if password else rootuser.empty(account_id)
    with STATE.lock:
        STATE.root_users[account_id] = user
