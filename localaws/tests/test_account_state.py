"""An account's state in the organization: the control API sets it, Organizations answers it.

AWS answers two fields: `State` (since 2025: PENDING_ACTIVATION, ACTIVE, SUSPENDED,
PENDING_CLOSURE, CLOSED) and the older `Status` (ACTIVE, SUSPENDED, PENDING_CLOSURE; retired
on 2026-09-09), where a closed account and one AWS suspended are both SUSPENDED and one not yet
activated is ACTIVE.
"""

import pytest
from botocore.exceptions import ClientError

from .conftest import MANAGEMENT, error_of


def _set(aws, account_id, body):
    return aws.control("POST", f"/_localaws/accounts/{account_id}/state", body)


def _views(aws, account_id):
    """The account as DescribeAccount, ListAccounts and ListAccountsForParent answer it."""
    org = aws.client("organizations")
    root = org.list_roots()["Roots"][0]["Id"]
    described = org.describe_account(AccountId=account_id)["Account"]
    listed = next(a for a in org.list_accounts()["Accounts"] if a["Id"] == account_id)
    under_root = next(a for a in org.list_accounts_for_parent(ParentId=root)["Accounts"] if a["Id"] == account_id)
    return [described, listed, under_root]


def _fields(account):
    return account.get("State"), account.get("Status")


def test_a_suspended_member_is_suspended_everywhere_and_gets_no_root_session(aws):
    member = aws.full_setup()
    other = aws.create_account("member-two")
    assert _set(aws, member, {"state": "SUSPENDED"}) == (
        200, {"account_id": member, "state": "SUSPENDED", "status": "SUSPENDED"})
    assert aws.control("GET", f"/_localaws/accounts/{member}/state") == (
        200, {"account_id": member, "state": "SUSPENDED", "status": "SUSPENDED"})
    for view in _views(aws, member):
        assert _fields(view) == ("SUSPENDED", "SUSPENDED"), view
    for view in _views(aws, other):
        assert _fields(view) == ("ACTIVE", "ACTIVE"), "only that account changed"

    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "IAMAuditRootUserCredentials")
    assert error_of(err) == ("AccessDenied", 403)
    assert f"account {member} is not an active member" in err.value.response["Error"]["Message"]
    assert aws.control("GET", "/_localaws/assume-root-log")[1]["calls"][-1]["result"] == "AccessDenied"
    aws.assume_root(other, "IAMAuditRootUserCredentials")

    # Reinstated (AWS Support can reopen a closed account within 90 days).
    assert _set(aws, member, {"state": "ACTIVE"})[1]["status"] == "ACTIVE"
    assert _fields(_views(aws, member)[0]) == ("ACTIVE", "ACTIVE")
    aws.assume_root(member, "IAMAuditRootUserCredentials")


@pytest.mark.parametrize("state,status", [
    ("PENDING_ACTIVATION", "ACTIVE"),
    ("PENDING_CLOSURE", "PENDING_CLOSURE"),
    ("CLOSED", "SUSPENDED"),
])
def test_each_state_answers_the_status_aws_gives_it_and_is_refused_assume_root(aws, state, status):
    member = aws.full_setup()
    assert _set(aws, member, {"state": state})[1] == {"account_id": member, "state": state, "status": status}
    for view in _views(aws, member):
        assert _fields(view) == (state, status), view
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "S3UnlockBucketPolicy")
    assert error_of(err) == ("AccessDenied", 403)


def test_answers_without_state_or_without_status_as_before_and_after_the_change(aws):
    member = aws.full_setup()
    # As Organizations answered before State existed: Status only.
    assert _set(aws, member, {"state": None, "status": "SUSPENDED"})[1] == {
        "account_id": member, "state": None, "status": "SUSPENDED"}
    for view in _views(aws, member):
        assert "State" not in view and view["Status"] == "SUSPENDED", view
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "IAMAuditRootUserCredentials")
    assert error_of(err) == ("AccessDenied", 403)

    # As it will answer once Status is retired: State only.
    assert _set(aws, member, {"state": "ACTIVE", "status": None})[1]["status"] is None
    for view in _views(aws, member):
        assert "Status" not in view and view["State"] == "ACTIVE", view
    aws.assume_root(member, "IAMAuditRootUserCredentials")

    # An explicit Status that disagrees with the one State implies is taken as given.
    assert _set(aws, member, {"state": "PENDING_ACTIVATION", "status": "ACTIVE"})[1]["status"] == "ACTIVE"


def test_close_account_leaves_it_closed_with_status_suspended(aws):
    member = aws.full_setup()
    org = aws.client("organizations")
    org.close_account(AccountId=member)
    for view in _views(aws, member):
        assert _fields(view) == ("CLOSED", "SUSPENDED"), view
    assert aws.control("GET", f"/_localaws/accounts/{member}/state")[1]["state"] == "CLOSED"
    with pytest.raises(ClientError) as err:
        org.close_account(AccountId=member)
    assert error_of(err)[0] == "AccountAlreadyClosedException"


def test_the_management_account_has_a_state_too(aws):
    aws.full_setup()
    assert aws.control("GET", f"/_localaws/accounts/{MANAGEMENT}/state") == (
        200, {"account_id": MANAGEMENT, "state": "ACTIVE", "status": "ACTIVE"})


def test_bad_requests_change_nothing(aws):
    member = aws.full_setup()
    path = f"/_localaws/accounts/{member}/state"
    for body in ({}, {"state": "GONE"}, {"state": "suspended"}, {"state": 1}, {"state": None},
                 {"state": "SUSPENDED", "status": "CLOSED"}, {"state": "SUSPENDED", "reason": "x"}):
        status, answer = aws.control("POST", path, body)
        assert status == 400, body
        assert answer["error"], body
    assert aws.control("GET", path)[1]["state"] == "ACTIVE"
    assert aws.control("PUT", path, {"state": "SUSPENDED"})[0] == 405
    assert aws.control("POST", "/_localaws/accounts/999999999999/state", {"state": "SUSPENDED"})[0] == 404
    assert aws.control("GET", "/_localaws/accounts/999999999999/state")[0] == 404
    assert aws.control("POST", "/_localaws/accounts/12345/state", {"state": "SUSPENDED"})[0] == 404
