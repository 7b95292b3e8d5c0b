"""Root user state: the control API, IAM's root-user calls, summary flags, AWS error semantics."""

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of

FULL = {"password": True, "password_last_used": "2026-01-02T03:04:05Z", "access_keys": 2,
        "access_keys_inactive": 1, "mfa_devices": 1, "signing_certificates": 1}


def test_control_api_sets_and_reads_root_state(aws):
    member = aws.full_setup()
    status, state = aws.control("POST", f"/_localaws/accounts/{member}/root", FULL)
    assert status == 200
    assert aws.control("GET", f"/_localaws/accounts/{member}/root") == (200, state)
    assert state["account_id"] == member
    assert state["login_profile"]["password_last_used"] == "2026-01-02T03:04:05Z"
    assert state["login_profile"]["recovery_only"] is False
    assert [k["status"] for k in state["access_keys"]] == ["Active", "Active", "Inactive"]
    assert all(k["id"].startswith("AKIA") for k in state["access_keys"])
    assert state["mfa_devices"] == [{"serial": f"arn:aws:iam::{member}:mfa/root-account-mfa-device",
                                     "enabled": True}]
    assert len(state["signing_certificates"]) == 1
    assert aws.control("POST", f"/_localaws/accounts/{member}/root", {"bogus": 1})[0] == 400


def test_iam_reports_the_root_user(aws):
    member = aws.full_setup()
    state = aws.control("POST", f"/_localaws/accounts/{member}/root", FULL)[1]
    iam = aws.client("iam", aws.root_session(member, "IAMAuditRootUserCredentials"))
    user = iam.get_user()["User"]
    assert user["Arn"] == f"arn:aws:iam::{member}:root" and user["UserId"] == member
    assert user["PasswordLastUsed"].isoformat() == "2026-01-02T03:04:05+00:00"
    assert "CreateDate" in iam.get_login_profile()["LoginProfile"]
    keys = iam.list_access_keys()["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(k["id"], k["status"]) for k in state["access_keys"]]
    used = iam.get_access_key_last_used(AccessKeyId=keys[0]["AccessKeyId"])["AccessKeyLastUsed"]
    assert used["ServiceName"] == "s3" and "LastUsedDate" in used
    never = iam.get_access_key_last_used(AccessKeyId=keys[2]["AccessKeyId"])["AccessKeyLastUsed"]
    assert never["ServiceName"] == "N/A" and "LastUsedDate" not in never
    assert iam.list_mfa_devices()["MFADevices"][0]["SerialNumber"] == state["mfa_devices"][0]["serial"]
    assert iam.list_signing_certificates()["Certificates"][0]["CertificateId"] == state["signing_certificates"][0]["id"]
    summary = iam.get_account_summary()["SummaryMap"]
    assert {k: summary[k] for k in ("AccountPasswordPresent", "AccountAccessKeysPresent",
                                    "AccountMFAEnabled", "AccountSigningCertificatesPresent")} == {
        "AccountPasswordPresent": 1, "AccountAccessKeysPresent": 1,
        "AccountMFAEnabled": 1, "AccountSigningCertificatesPresent": 1}
    # AWS counts every MFA device of the account, the root user's among them.
    root_devices = len(state["mfa_devices"])
    assert (summary["MFADevices"], summary["MFADevicesInUse"]) == (root_devices, root_devices)


def test_deleting_every_credential_then_deleting_again_is_no_such_entity(aws):
    member = aws.full_setup()
    state = aws.control("POST", f"/_localaws/accounts/{member}/root", FULL)[1]
    iam = aws.client("iam", aws.root_session(member, "IAMDeleteRootUserCredentials"))
    iam.delete_login_profile()
    for key in state["access_keys"]:
        iam.delete_access_key(AccessKeyId=key["id"])
    iam.deactivate_mfa_device(SerialNumber=state["mfa_devices"][0]["serial"])
    iam.delete_signing_certificate(CertificateId=state["signing_certificates"][0]["id"])
    after = aws.control("GET", f"/_localaws/accounts/{member}/root")[1]
    assert after["login_profile"] is None and after["access_keys"] == []
    assert after["mfa_devices"] == [] and after["signing_certificates"] == []
    for call, kwargs in [(iam.delete_login_profile, {}), (iam.get_login_profile, {}),
                         (iam.delete_access_key, {"AccessKeyId": state["access_keys"][0]["id"]}),
                         (iam.deactivate_mfa_device, {"SerialNumber": state["mfa_devices"][0]["serial"]}),
                         (iam.delete_signing_certificate, {"CertificateId": state["signing_certificates"][0]["id"]})]:
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err) == ("NoSuchEntity", 404)
    summary = aws.client("iam", aws.root_session(member, "IAMAuditRootUserCredentials")).get_account_summary()
    assert summary["SummaryMap"]["AccountPasswordPresent"] == 0
    assert summary["SummaryMap"]["AccountMFAEnabled"] == 0
    assert summary["SummaryMap"]["MFADevices"] == 0


def test_create_login_profile_allows_recovery_once(aws):
    member = aws.full_setup()
    aws.control("POST", f"/_localaws/accounts/{member}/root", {})
    iam = aws.client("iam", aws.root_session(member, "IAMCreateRootUserPassword"))
    profile = iam.create_login_profile()["LoginProfile"]
    assert profile["UserName"] and profile["CreateDate"]
    assert aws.control("GET", f"/_localaws/accounts/{member}/root")[1]["login_profile"]["recovery_only"] is True
    with pytest.raises(ClientError) as err:
        iam.create_login_profile()
    assert error_of(err) == ("EntityAlreadyExists", 409)
    iam.get_login_profile()


def test_accounts_created_before_the_feature_have_a_password_and_after_have_nothing(aws):
    aws.organization()
    before = aws.create_account("before")
    aws.client("iam").enable_organizations_root_credentials_management()
    after = aws.create_account("after")
    assert aws.control("GET", f"/_localaws/accounts/{before}/root")[1]["login_profile"] is not None
    empty = aws.control("GET", f"/_localaws/accounts/{after}/root")[1]
    assert empty["login_profile"] is None and empty["access_keys"] == [] and empty["mfa_devices"] == []
    iam = aws.client("iam", aws.root_session(after, "IAMAuditRootUserCredentials"))
    with pytest.raises(ClientError) as err:
        iam.get_login_profile()
    assert error_of(err) == ("NoSuchEntity", 404)


def test_calls_naming_a_user_keep_motos_behaviour(aws):
    member = aws.full_setup()
    aws.client("iam", aws.member_creds(member)).create_user(UserName="alice")
    iam = aws.client("iam", aws.root_session(member, "IAMAuditRootUserCredentials"))
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"] == []
