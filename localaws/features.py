"""IAM's organization features API: ListOrganizationsFeatures, Enable/Disable....

moto's IAM does not implement these. The enabled features are kept per
organization in the extension's state; the errors are IAM's, checked in the
order a caller meets them: no organization, a caller that is neither the
management account nor IAM's delegated administrator, an organization without
all features, trusted access for iam.amazonaws.com not enabled, and (to change
features) a caller that is not the management account.
"""

from __future__ import annotations

from . import identity, organization, responses
from .awsrequest import AwsRequest
from .state import STATE

_CHANGES = {
    "EnableOrganizationsRootCredentialsManagement": (organization.ROOT_CREDENTIALS_MANAGEMENT, True),
    "EnableOrganizationsRootSessions": (organization.ROOT_SESSIONS, True),
    "DisableOrganizationsRootCredentialsManagement": (organization.ROOT_CREDENTIALS_MANAGEMENT, False),
    "DisableOrganizationsRootSessions": (organization.ROOT_SESSIONS, False),
}
OPERATIONS = frozenset({"ListOrganizationsFeatures", *_CHANGES})


class FeatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def handle(req: AwsRequest) -> responses.Reply:
    caller = identity.caller_account(req.environ, req.access_key)
    try:
        org = _organization_for(caller, changing=req.operation in _CHANGES)
    except FeatureError as err:
        return responses.error(req, err.code, err.message)
    if req.operation in _CHANGES:
        feature, enable = _CHANGES[req.operation]
        with STATE.lock:
            enabled = STATE.features.setdefault(org.id, set())
            enabled.add(feature) if enable else enabled.discard(feature)
    return responses.query_result("iam", req.operation, {
        "OrganizationId": org.id,
        "EnabledFeatures": [f for f in organization.FEATURES if f in org.features()],
    })


def _organization_for(caller: str, changing: bool) -> organization.Organization:
    org = organization.of_account(caller)
    if org is None:
        raise FeatureError("OrganizationNotFoundException",
                           "The request was rejected because no organization is associated with your account.")
    if not org.may_manage_root(caller):
        raise FeatureError("AccountNotManagementOrDelegatedAdministratorException",
                           f"Account {caller} is not the management account or the delegated administrator "
                           "for centralized root access.")
    if not org.all_features:
        raise FeatureError("OrganizationNotInAllFeaturesModeException",
                           "The organization does not have all features enabled.")
    if not org.iam_trusted_access():
        raise FeatureError("ServiceAccessNotEnabledException",
                           "Trusted access for iam.amazonaws.com is not enabled in AWS Organizations.")
    if changing and caller != org.management_account:
        raise FeatureError("CallerIsNotManagementAccountException",
                           "Only the management account can change centralized root access features.")
    return org
