"""Organization lookups, and the patches that teach moto's Organizations about IAM.

Centralized root access hangs off the organization: who the management account
is, who is IAM's delegated administrator, whether trusted access for
iam.amazonaws.com is on, which accounts are ACTIVE members. moto stores all of
that; this module reads it, and patches moto so that

* iam.amazonaws.com is accepted by EnableAWSServiceAccess and
  RegisterDelegatedAdministrator (moto's allow-lists predate it), and
* an account created while RootCredentialsManagement is off gets a root
  password, one created after gets no root credentials (AWS's behaviour).
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
        return any(a.id == account_id and a.status == "ACTIVE" for a in self.backend.accounts)

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


def _give_root_user(account_id: str, password: bool) -> None:
    user = rootuser.with_password(account_id) if password else rootuser.empty(account_id)
    with STATE.lock:
        STATE.root_users[account_id] = user
