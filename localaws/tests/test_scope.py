"""Root sessions: only their task's calls, only on the member's own resources, until expiry."""

import json
import time
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of

DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]})
TWO_STATEMENTS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "DenyEveryone", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*"},
    {"Sid": "AllowSend", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
     "Action": "sqs:SendMessage", "Resource": "*"}]})


def _denied(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    return error_of(err)


def test_audit_task_reads_but_cannot_delete(aws):
    member = aws.full_setup()
    aws.control("POST", f"/_localaws/accounts/{member}/root",
                {"password": True, "access_keys": 1, "mfa_devices": 1, "signing_certificates": 1})
    creds = aws.root_session(member, "IAMAuditRootUserCredentials")
    iam = aws.client("iam", creds)
    key = iam.list_access_keys()["AccessKeyMetadata"][0]["AccessKeyId"]
    iam.get_account_summary(); iam.get_user(); iam.get_login_profile()
    iam.get_access_key_last_used(AccessKeyId=key); iam.list_mfa_devices(); iam.list_signing_certificates()
    assert _denied(iam.delete_login_profile) == ("AccessDenied", 403)
    assert _denied(iam.delete_access_key, AccessKeyId=key) == ("AccessDenied", 403)
    assert _denied(iam.create_login_profile) == ("AccessDenied", 403)
    assert _denied(iam.list_users) == ("AccessDenied", 403)
    assert _denied(aws.client("s3", creds).list_buckets) == ("AccessDenied", 403)


def test_delete_task_deletes_but_cannot_audit_summary_or_create(aws):
    member = aws.full_setup()
    aws.control("POST", f"/_localaws/accounts/{member}/root", {"password": True, "access_keys": 1})
    iam = aws.client("iam", aws.root_session(member, "IAMDeleteRootUserCredentials"))
    key = iam.list_access_keys()["AccessKeyMetadata"][0]["AccessKeyId"]
    iam.delete_access_key(AccessKeyId=key)
    iam.delete_login_profile()
    assert _denied(iam.get_account_summary) == ("AccessDenied", 403)
    assert _denied(iam.create_login_profile) == ("AccessDenied", 403)


def test_create_password_task_only_gets_and_creates_the_login_profile(aws):
    member = aws.full_setup()
    aws.control("POST", f"/_localaws/accounts/{member}/root", {})
    iam = aws.client("iam", aws.root_session(member, "IAMCreateRootUserPassword"))
    assert _denied(iam.get_login_profile) == ("NoSuchEntity", 404)
    iam.create_login_profile()
    assert _denied(iam.get_user) == ("AccessDenied", 403)
    assert _denied(iam.delete_login_profile) == ("AccessDenied", 403)


def test_s3_task_manages_the_members_bucket_policy_only(aws):
    member = aws.full_setup()
    bucket = "locked-bucket"
    aws.client("s3", aws.member_creds(member)).create_bucket(Bucket=bucket)
    aws.client("s3", aws.member_creds(member)).put_bucket_policy(Bucket=bucket, Policy=DENY_ALL)
    aws.client("s3").create_bucket(Bucket="management-bucket")
    creds = aws.root_session(member, "S3UnlockBucketPolicy")
    s3 = aws.client("s3", creds)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Effect"] == "Deny"
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=DENY_ALL)
    assert _denied(s3.put_object, Bucket=bucket, Key="k", Body=b"x") == ("AccessDenied", 403)
    assert _denied(s3.get_bucket_policy, Bucket="management-bucket") == ("AccessDenied", 403)
    assert _denied(s3.delete_bucket_policy, Bucket="management-bucket") == ("AccessDenied", 403)
    assert _denied(aws.client("sqs", creds).list_queues) == ("AccessDenied", 403)


def test_sqs_task_sets_the_members_queue_attributes_only(aws):
    member = aws.full_setup()
    member_sqs = aws.client("sqs", aws.member_creds(member))
    url = member_sqs.create_queue(QueueName="locked")["QueueUrl"]
    member_sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": TWO_STATEMENTS})
    other_url = aws.client("sqs").create_queue(QueueName="management-queue")["QueueUrl"]
    sqs = aws.client("sqs", aws.root_session(member, "SQSUnlockQueuePolicy"))
    assert sqs.get_queue_url(QueueName="locked")["QueueUrl"] == url
    assert sqs.list_queues()["QueueUrls"] == [url]

    def policy() -> dict | None:
        attributes = member_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return json.loads(attributes["Policy"]) if "Policy" in attributes else None

    assert json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]) \
        == json.loads(TWO_STATEMENTS)
    # Remove only the deny statement and put the rest back; restore; remove all.
    kept = {**json.loads(TWO_STATEMENTS), "Statement": json.loads(TWO_STATEMENTS)["Statement"][1:]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(kept)})
    assert policy() == kept
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": TWO_STATEMENTS})
    assert policy() == json.loads(TWO_STATEMENTS)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert policy() is None
    # The task policy lists the action without conditions: any attribute (see the README's notes).
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
    assert member_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"]["VisibilityTimeout"] == "45"
    # Never on another account's queue, and never other actions.
    assert _denied(sqs.set_queue_attributes, QueueUrl=other_url, Attributes={"Policy": ""}) == ("AccessDenied", 403)
    assert _denied(sqs.get_queue_attributes, QueueUrl=other_url, AttributeNames=["All"]) == ("AccessDenied", 403)
    assert _denied(sqs.send_message, QueueUrl=url, MessageBody="x") == ("AccessDenied", 403)
    assert _denied(sqs.delete_queue, QueueUrl=url) == ("AccessDenied", 403)


def test_sqs_task_sets_attributes_in_the_sqs_query_protocol_too(aws):
    member = aws.full_setup()
    url = aws.client("sqs", aws.member_creds(member)).create_queue(QueueName="locked")["QueueUrl"]
    creds = aws.root_session(member, "SQSUnlockQueuePolicy")
    form = urllib.parse.urlencode({"Action": "SetQueueAttributes", "Version": "2012-11-05", "QueueUrl": url,
                                   "Attribute.1.Name": "Policy", "Attribute.1.Value": TWO_STATEMENTS})
    request = urllib.request.Request(aws.endpoint, data=form.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={creds['aws_access_key_id']}/20260101/us-east-1/sqs/"
                         "aws4_request, SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    attributes = aws.client("sqs", creds).get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(attributes["Policy"]) == json.loads(TWO_STATEMENTS)


def test_session_expires_when_the_clock_passes_expiration(aws):
    member = aws.full_setup()
    sts = aws.client("sts", aws.root_session(member, "IAMAuditRootUserCredentials", duration=900))
    sts.get_caller_identity()
    aws.control("POST", "/_localaws/clock", {"advance_seconds": 901})
    with pytest.raises(ClientError) as err:
        sts.get_caller_identity()
    assert error_of(err) == ("ExpiredToken", 400)
    assert err.value.response["Error"]["Message"] == "The security token included in the request is expired"


def test_session_expires_in_real_time(aws):
    member = aws.full_setup()
    creds = aws.root_session(member, "S3UnlockBucketPolicy", duration=1)
    s3 = aws.client("s3", creds)
    s3.list_buckets()
    time.sleep(1.2)  # the one unavoidable wait: real expiry of a 1-second session
    assert _denied(s3.list_buckets) == ("ExpiredToken", 400)
    assert _denied(aws.client("iam", creds).get_user) == ("ExpiredToken", 400)
    assert _denied(aws.client("sqs", creds).list_queues) == ("ExpiredToken", 400)
