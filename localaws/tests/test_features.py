"""IAM's organization features API and its errors."""

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of


def _error(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return error_of(err)


def test_no_organization(aws):
    assert _error(aws.client("iam").list_organizations_features) == ("OrganizationNotFoundException", 400)
    assert _error(aws.client("iam").enable_organizations_root_sessions) == ("OrganizationNotFoundException", 400)


def test_trusted_access_required(aws):
    aws.organization(trusted_access=False)
    assert _error(aws.client("iam").list_organizations_features) == ("ServiceAccessNotEnabledException", 400)
    assert _error(aws.client("iam").enable_organizations_root_credentials_management) == (
        "ServiceAccessNotEnabledException", 400)


def test_member_account_is_not_management_or_delegated_admin(aws):
    aws.organization()
    member = aws.create_account()
    iam = aws.client("iam", aws.member_creds(member))
    assert _error(iam.list_organizations_features) == ("AccountNotManagementOrDelegatedAdministratorException", 400)
    assert _error(iam.enable_organizations_root_sessions) == (
        "AccountNotManagementOrDelegatedAdministratorException", 400)


def test_enable_list_disable(aws):
    org_id = aws.organization()
    iam = aws.client("iam")
    assert iam.list_organizations_features()["EnabledFeatures"] == []
    response = iam.enable_organizations_root_credentials_management()
    assert response["OrganizationId"] == org_id
    assert response["EnabledFeatures"] == ["RootCredentialsManagement"]
    iam.enable_organizations_root_sessions()
    assert iam.list_organizations_features()["EnabledFeatures"] == ["RootCredentialsManagement", "RootSessions"]
    iam.disable_organizations_root_sessions()
    assert iam.list_organizations_features() ["EnabledFeatures"] == ["RootCredentialsManagement"]


def test_delegated_admin_reads_but_only_management_changes(aws):
    aws.organization(features=("RootSessions",))
    admin = aws.create_account("security")
    aws.client("organizations").register_delegated_administrator(
        AccountId=admin, ServicePrincipal="iam.amazonaws.com")
    iam = aws.client("iam", aws.member_creds(admin))
    assert iam.list_organizations_features()["EnabledFeatures"] == ["RootSessions"]
    assert _error(iam.enable_organizations_root_credentials_management) == (
        "CallerIsNotManagementAccountException", 400)
