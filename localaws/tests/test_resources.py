"""POST /_localaws/resources: buckets and queues made in bulk, seen through the APIs as if made there."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from .conftest import MANAGEMENT, error_of


def _policy(sid: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]})


def _client(aws, service: str, region: str, creds: dict | None = None):
    creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=aws.endpoint, region_name=region, config=aws.config, **creds)


def _all_buckets(s3, page_size: int = 2) -> list[dict]:
    pages = s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": page_size})
    return [bucket for page in pages for bucket in page["Buckets"]]


@pytest.fixture
def org(aws):
    """(member a, member b) of an organization with root sessions enabled."""
    first = aws.full_setup()
    return first, aws.create_account("member-two")


def _spec(a: str, b: str) -> dict:
    return {
        "buckets": [
            {"account_id": a, "name": "a-east", "region": "us-east-1", "policy": _policy("AEast")},
            {"account_id": a, "name": "a-west", "region": "eu-west-1", "policy": _policy("AWest")},
            {"account_id": a, "name": "a-open", "region": "eu-west-1", "policy": None},
            {"account_id": b, "name": "b-west", "region": "eu-west-1", "policy": _policy("BWest")},
            {"account_id": MANAGEMENT, "name": "mgmt-bucket", "region": "us-east-1"},
        ],
        "queues": [
            {"account_id": a, "name": "a-queue", "region": "us-east-1", "policy": _policy("AQueue")},
            {"account_id": a, "name": "a-queue", "region": "eu-west-1", "policy": None},
            {"account_id": a, "name": "a-ordered.fifo", "region": "eu-west-1", "policy": _policy("AFifo")},
            {"account_id": b, "name": "b-queue", "region": "eu-west-1", "policy": _policy("BQueue")},
        ],
    }


def test_answers_what_it_made(aws, org):
    a, b = org
    status, made = aws.control("POST", "/_localaws/resources", _spec(a, b))
    assert status == 200, made
    assert made["buckets"][1] == {"account_id": a, "name": "a-west", "region": "eu-west-1"}
    assert [q["url"] for q in made["queues"]] == [
        f"{aws.endpoint}/{a}/a-queue", f"{aws.endpoint}/{a}/a-queue", f"{aws.endpoint}/{a}/a-ordered.fifo",
        f"{aws.endpoint}/{b}/b-queue"]
    assert made["queues"][3]["arn"] == f"arn:aws:sqs:eu-west-1:{b}:b-queue"
    assert aws.control("POST", "/_localaws/resources", {}) == (200, {"buckets": [], "queues": []})


def test_made_resources_read_back_with_the_accounts_credentials(aws, org):
    a, b = org
    made = aws.control("POST", "/_localaws/resources", _spec(a, b))[1]
    creds = aws.member_creds(a)
    s3 = _client(aws, "s3", "us-east-1", creds)
    assert [(x["Name"], x["BucketRegion"]) for x in s3.list_buckets(MaxBuckets=100)["Buckets"]] == [
        ("a-east", "us-east-1"), ("a-open", "eu-west-1"), ("a-west", "eu-west-1")]
    west = _client(aws, "s3", "eu-west-1", creds)
    assert json.loads(west.get_bucket_policy(Bucket="a-west")["Policy"]) == json.loads(_policy("AWest"))
    assert json.loads(s3.get_bucket_policy(Bucket="a-east")["Policy"]) == json.loads(_policy("AEast"))
    with pytest.raises(ClientError) as err:
        west.get_bucket_policy(Bucket="a-open")
    assert error_of(err) == ("NoSuchBucketPolicy", 404)
    assert west.get_bucket_location(Bucket="a-west")["LocationConstraint"] == "eu-west-1"
    west.put_object(Bucket="a-open", Key="k", Body=b"x")  # an ordinary bucket
    assert [x["Name"] for x in _client(aws, "s3", "us-east-1").list_buckets()["Buckets"]] == ["mgmt-bucket"]

    sqs_east, sqs_west = _client(aws, "sqs", "us-east-1", creds), _client(aws, "sqs", "eu-west-1", creds)
    assert sqs_east.list_queues()["QueueUrls"] == [made["queues"][0]["url"]]
    assert sorted(sqs_west.list_queues()["QueueUrls"]) == sorted(q["url"] for q in made["queues"][1:3])
    assert sqs_west.get_queue_url(QueueName="a-ordered.fifo")["QueueUrl"] == made["queues"][2]["url"]
    attributes = sqs_west.get_queue_attributes(QueueUrl=made["queues"][2]["url"], AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and json.loads(attributes["Policy"]) == json.loads(_policy("AFifo"))
    assert "Policy" not in sqs_west.get_queue_attributes(QueueUrl=made["queues"][1]["url"],
                                                         AttributeNames=["All"])["Attributes"]
    sqs_east.send_message(QueueUrl=made["queues"][0]["url"], MessageBody="an ordinary queue")


def test_a_root_session_sees_exactly_its_accounts_buckets(aws, org):
    a, b = org
    aws.control("POST", "/_localaws/resources", _spec(a, b))
    creds = aws.root_session(a, "S3UnlockBucketPolicy")
    s3 = _client(aws, "s3", "us-east-1", creds)
    assert [(x["Name"], x["BucketRegion"]) for x in _all_buckets(s3)] == [
        ("a-east", "us-east-1"), ("a-open", "eu-west-1"), ("a-west", "eu-west-1")]
    west = _client(aws, "s3", "eu-west-1", creds)
    west.put_bucket_policy(Bucket="a-west", Policy=_policy("Kept"))
    assert json.loads(west.get_bucket_policy(Bucket="a-west")["Policy"]) == json.loads(_policy("Kept"))
    with pytest.raises(ClientError) as err:
        west.get_bucket_policy(Bucket="b-west")  # the owner map knows b-west is b's
    assert error_of(err) == ("AccessDenied", 403)
    b_s3 = _client(aws, "s3", "us-east-1", aws.root_session(b, "S3UnlockBucketPolicy"))
    assert [x["Name"] for x in b_s3.list_buckets()["Buckets"]] == ["b-west"]


def test_a_root_session_sees_exactly_its_accounts_queues_per_region(aws, org):
    a, b = org
    made = aws.control("POST", "/_localaws/resources", _spec(a, b))[1]
    creds = aws.root_session(a, "SQSUnlockQueuePolicy")
    east, west = _client(aws, "sqs", "us-east-1", creds), _client(aws, "sqs", "eu-west-1", creds)
    assert east.list_queues()["QueueUrls"] == [made["queues"][0]["url"]]
    assert sorted(west.list_queues()["QueueUrls"]) == sorted(q["url"] for q in made["queues"][1:3])
    url = made["queues"][2]["url"]
    assert json.loads(west.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]) \
        == json.loads(_policy("AFifo"))
    west.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert "Policy" not in west.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    with pytest.raises(ClientError) as err:
        west.get_queue_attributes(QueueUrl=made["queues"][3]["url"], AttributeNames=["Policy"])
    assert error_of(err) == ("AccessDenied", 403)
    b_west = _client(aws, "sqs", "eu-west-1", aws.root_session(b, "SQSUnlockQueuePolicy"))
    assert b_west.list_queues()["QueueUrls"] == [made["queues"][3]["url"]]


@pytest.mark.parametrize("change, status, words", [
    (lambda s, a: s["buckets"].append({"account_id": "999999999999", "name": "x-b", "region": "us-east-1"}),
     400, "accounts not in any organization: 999999999999"),
    (lambda s, a: s["queues"].append({"account_id": a, "name": "q", "region": "mars-1"}), 400, "not an AWS region"),
    (lambda s, a: s["buckets"].append({"account_id": a, "name": "a-east", "region": "us-east-1"}), 400, "given twice"),
    (lambda s, a: s["buckets"].append({"account_id": a, "name": "Bad_Name", "region": "us-east-1"}), 400,
     "not a valid bucket name"),
    (lambda s, a: s["queues"].append({"account_id": a, "name": "bad.name", "region": "us-east-1"}), 400,
     "not a valid queue name"),
    (lambda s, a: s["buckets"][0].update(policy="{not json"), 400, "not valid JSON"),
    (lambda s, a: s["buckets"][0].update(policy={"Version": "2012-10-17"}), 400, "JSON text"),
    (lambda s, a: s["buckets"][0].update(owner="me"), 400, "unknown fields: owner"),
    (lambda s, a: s.update(topics=[]), 400, "unknown fields: topics"),
    (lambda s, a: s.update(buckets={}), 400, "buckets must be a list"),
    (lambda s, a: s["queues"][0].pop("region"), 400, "queues[0].region must be a string"),
])
def test_a_bad_request_makes_nothing(aws, org, change, status, words):
    a, b = org
    spec = _spec(a, b)
    change(spec, a)
    answer = aws.control("POST", "/_localaws/resources", spec)
    assert answer[0] == status and words in answer[1]["error"], answer
    assert _client(aws, "s3", "us-east-1", aws.member_creds(a)).list_buckets()["Buckets"] == []
    assert "QueueUrls" not in _client(aws, "sqs", "us-east-1", aws.member_creds(a)).list_queues()


def test_existing_resources_conflict(aws, org):
    a, b = org
    assert aws.control("POST", "/_localaws/resources", _spec(a, b))[0] == 200
    answer = aws.control("POST", "/_localaws/resources", {"buckets": [
        {"account_id": b, "name": "a-east", "region": "us-east-1"}]})
    assert answer == (409, {"error": "bucket `a-east` already exists"})
    answer = aws.control("POST", "/_localaws/resources", {"queues": [
        {"account_id": a, "name": "a-queue", "region": "eu-west-1"}]})
    assert answer[0] == 409 and "already exists" in answer[1]["error"]
    # Same queue name, another region or account: a different queue.
    assert aws.control("POST", "/_localaws/resources", {"queues": [
        {"account_id": a, "name": "a-queue", "region": "us-west-2"},
        {"account_id": b, "name": "a-queue", "region": "eu-west-1"}]})[0] == 200


def test_reset_removes_what_it_made(aws, org):
    a, b = org
    assert aws.control("POST", "/_localaws/resources", _spec(a, b))[0] == 200
    aws.reset()
    a = aws.full_setup()
    b = aws.create_account("member-two")
    assert aws.control("POST", "/_localaws/resources", _spec(a, b))[0] == 200


def test_thousands_of_buckets_in_one_call(aws, org):
    a, _ = org
    accounts = [a] + [aws.create_account(f"bulk-{i:02d}") for i in range(19)]
    regions = ("us-east-1", "eu-west-1", "ap-southeast-2")
    spec = {"buckets": [{"account_id": account, "name": f"bulk-{n:02d}-{i:03d}", "region": regions[i % 3],
                         "policy": _policy("Bulk")}
                        for n, account in enumerate(accounts) for i in range(100)]}
    status, made = aws.control("POST", "/_localaws/resources", spec)
    assert status == 200 and len(made["buckets"]) == 2000
    s3 = _client(aws, "s3", "us-east-1", aws.root_session(accounts[7], "S3UnlockBucketPolicy"))
    listed = _all_buckets(s3, page_size=30)
    assert [x["Name"] for x in listed] == [f"bulk-07-{i:03d}" for i in range(100)]
    assert [x["BucketRegion"] for x in listed[:4]] == ["us-east-1", "eu-west-1", "ap-southeast-2", "us-east-1"]
    sydney = [x["Name"] for x in s3.list_buckets(BucketRegion="ap-southeast-2", MaxBuckets=1000)["Buckets"]]
    assert len(sydney) == 33
