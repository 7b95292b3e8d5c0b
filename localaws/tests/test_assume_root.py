"""AssumeRoot: credentials, validation, who may call it, which targets, which features."""

import datetime

import pytest
from botocore.exceptions import ClientError

from .conftest import MANAGEMENT, TASK_ARN, error_of

TASKS = ["IAMAuditRootUserCredentials", "IAMDeleteRootUserCredentials", "IAMCreateRootUserPassword",
         "S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"]


def test_returns_root_credentials_of_the_member(aws):
    member = aws.full_setup()
    credentials = aws.assume_root(member, "IAMAuditRootUserCredentials", duration=600)
    assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
    assert credentials["SecretAccessKey"] and credentials["SessionToken"]
    left = credentials["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert 590 <= left.total_seconds() <= 601
    creds = {"aws_access_key_id": credentials["AccessKeyId"],
             "aws_secret_access_key": credentials["SecretAccessKey"],
             "aws_session_token": credentials["SessionToken"]}
    identity = aws.client("sts", creds).get_caller_identity()
    assert identity["Account"] == member
    assert identity["Arn"] == f"arn:aws:iam::{member}:root"
    assert identity["UserId"] == member


@pytest.mark.parametrize("task", TASKS)
def test_every_task_can_be_assumed_with_the_default_duration(aws, task):
    member = aws.full_setup()
    sts = aws.client("sts")
    response = sts.assume_root(TargetPrincipal=f"arn:aws:iam::{member}:root",
                               TaskPolicyArn={"arn": TASK_ARN.format(task)})
    left = response["Credentials"]["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert 890 <= left.total_seconds() <= 901


@pytest.mark.parametrize("duration", [0, 901, 3600])
def test_duration_outside_1_to_900_is_a_validation_error(aws, duration):
    member = aws.full_setup()
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "S3UnlockBucketPolicy", duration=duration)
    assert error_of(err) == ("ValidationError", 400)


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::aws:policy/root-task/DeleteEverything",
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::123456789012:policy/root-task/S3UnlockBucketPolicy",
])
def test_unknown_task_policy_is_a_validation_error(aws, arn):
    member = aws.full_setup()
    with pytest.raises(ClientError) as err:
        aws.client("sts").assume_root(TargetPrincipal=member, TaskPolicyArn={"arn": arn})
    assert error_of(err) == ("ValidationError", 400)


def test_account_outside_the_organization_is_denied(aws):
    aws.full_setup()
    with pytest.raises(ClientError) as err:
        aws.assume_root("999999999999", "S3UnlockBucketPolicy")
    assert error_of(err) == ("AccessDenied", 403)


def test_management_account_cannot_be_targeted(aws):
    aws.full_setup()
    with pytest.raises(ClientError) as err:
        aws.assume_root(MANAGEMENT, "IAMAuditRootUserCredentials")
    assert error_of(err) == ("AccessDenied", 403)
    assert "management account" in err.value.response["Error"]["Message"]


def test_closed_account_is_denied(aws):
    member = aws.full_setup()
    aws.client("organizations").close_account(AccountId=member)
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "IAMAuditRootUserCredentials")
    assert error_of(err) == ("AccessDenied", 403)


@pytest.mark.parametrize("enabled,task,missing", [
    ("RootSessions", "IAMAuditRootUserCredentials", "RootCredentialsManagement"),
    ("RootCredentialsManagement", "S3UnlockBucketPolicy", "RootSessions"),
    ("RootCredentialsManagement", "SQSUnlockQueuePolicy", "RootSessions"),
])
def test_missing_feature_is_denied_naming_it(aws, enabled, task, missing):
    aws.organization(features=(enabled,))
    member = aws.create_account()
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, task)
    assert error_of(err) == ("AccessDenied", 403)
    assert missing in err.value.response["Error"]["Message"]


def test_member_account_caller_is_denied(aws):
    member = aws.full_setup()
    other = aws.create_account("other")
    with pytest.raises(ClientError) as err:
        aws.assume_root(other, "IAMAuditRootUserCredentials", creds=aws.member_creds(member))
    assert error_of(err) == ("AccessDenied", 403)


def test_iam_delegated_administrator_may_call_it(aws):
    member = aws.full_setup()
    admin = aws.create_account("security")
    aws.client("organizations").register_delegated_administrator(
        AccountId=admin, ServicePrincipal="iam.amazonaws.com")
    credentials = aws.assume_root(member, "IAMAuditRootUserCredentials", creds=aws.member_creds(admin))
    assert credentials["AccessKeyId"].startswith("ASIA")


def test_root_session_cannot_assume_root_again(aws):
    member = aws.full_setup()
    other = aws.create_account("other")
    session = aws.root_session(member, "IAMAuditRootUserCredentials")
    with pytest.raises(ClientError) as err:
        aws.assume_root(other, "IAMAuditRootUserCredentials", creds=session)
    assert error_of(err) == ("AccessDenied", 403)


def test_every_call_is_logged(aws):
    member = aws.full_setup()
    credentials = aws.assume_root(member, "S3UnlockBucketPolicy", duration=300)
    with pytest.raises(ClientError):
        aws.assume_root(member, "S3UnlockBucketPolicy", duration=901)
    status, log = aws.control("GET", "/_localaws/assume-root-log")
    assert status == 200
    ok, refused = log["calls"]
    assert ok == {"time": ok["time"], "caller_account": MANAGEMENT, "target_principal": member,
                  "task": "S3UnlockBucketPolicy", "duration_seconds": 300, "result": "ok",
                  "access_key_id": credentials["AccessKeyId"]}
    assert refused["result"] == "ValidationError" and refused["access_key_id"] is None
    assert aws.control("DELETE", "/_localaws/assume-root-log") == (200, {"calls": []})
    assert aws.control("GET", "/_localaws/assume-root-log")[1] == {"calls": []}
