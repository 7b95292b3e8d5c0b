"""S3 regions as AWS has them: ListBuckets' BucketRegion, filters and pages; the 301 redirect."""

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import error_of

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Deny", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]})
PLAIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _client(aws, service: str, region: str, creds: dict | None = None):
    return boto3.client(service, endpoint_url=aws.endpoint, region_name=region, config=aws.config,
                        **(creds or PLAIN))


def _signed(aws, method: str, path: str, region: str, creds: dict | None = None) -> tuple[int, dict, bytes]:
    """A request signed (SigV4, service s3) for `region`: (status, headers, body), redirects not followed."""
    creds = creds or PLAIN
    request = AWSRequest(method=method, url=f"{aws.endpoint}{path}")
    S3SigV4Auth(Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"],
                            creds.get("aws_session_token")), "s3", region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _buckets(aws, names_regions: list[tuple[str, str]], account: str) -> None:
    status, body = aws.control("POST", "/_localaws/resources", {"buckets": [
        {"account_id": account, "name": name, "region": region, "policy": POLICY} for name, region in names_regions]})
    assert status == 200, body


def test_list_buckets_without_new_parameters_is_the_classic_answer(aws):
    s3 = aws.client("s3")
    for name in ("zeta", "alpha", "mid"):
        s3.create_bucket(Bucket=name)
    answer = s3.list_buckets()
    assert [b["Name"] for b in answer["Buckets"]] == ["alpha", "mid", "zeta"]  # by name, as AWS lists them
    assert all(set(b) == {"Name", "CreationDate"} for b in answer["Buckets"])
    assert "ContinuationToken" not in answer and "Prefix" not in answer


def test_any_new_parameter_adds_bucket_region(aws):
    _client(aws, "s3", "eu-west-1").create_bucket(
        Bucket="in-ireland", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    aws.client("s3").create_bucket(Bucket="in-virginia")
    s3 = aws.client("s3")
    for params in ({"MaxBuckets": 10}, {"Prefix": "in-"}, {"BucketRegion": "us-east-1"}, {"ContinuationToken": ""}):
        answer = s3.list_buckets(**params)
        assert all("BucketRegion" in b for b in answer["Buckets"]), params
    regions = {b["Name"]: b["BucketRegion"] for b in s3.list_buckets(MaxBuckets=10)["Buckets"]}
    assert regions == {"in-ireland": "eu-west-1", "in-virginia": "us-east-1"}
    assert [b["Name"] for b in s3.list_buckets(BucketRegion="eu-west-1")["Buckets"]] == ["in-ireland"]
    answer = s3.list_buckets(Prefix="in-v")
    assert [b["Name"] for b in answer["Buckets"]] == ["in-virginia"]
    assert answer["Prefix"] == "in-v"


def test_raw_paginated_answer_has_aws_shape(aws):
    aws.client("s3").create_bucket(Bucket="b-one")
    aws.client("s3").create_bucket(Bucket="b-two")
    status, _, body = _signed(aws, "GET", "/?max-buckets=1&prefix=b-", "us-east-1")
    assert status == 200
    text = body.decode()
    assert "<Bucket><Name>b-one</Name><CreationDate>" in text
    assert "<BucketRegion>us-east-1</BucketRegion></Bucket>" in text
    assert "<ContinuationToken>" in text and "<Prefix>b-</Prefix>" in text
    assert "b-two" not in text


def test_max_buckets_pages_with_continuation_tokens(aws):
    s3 = aws.client("s3")
    names = [f"page-{i:02d}" for i in range(7)]
    for name in reversed(names):
        s3.create_bucket(Bucket=name)
    seen, token, pages = [], None, 0
    while True:
        params = {"MaxBuckets": 3, **({"ContinuationToken": token} if token else {})}
        answer = s3.list_buckets(**params)
        pages += 1
        seen += [b["Name"] for b in answer["Buckets"]]
        token = answer.get("ContinuationToken")
        if not token:
            break
    assert (seen, pages) == (names, 3)
    paginated = [b["Name"] for page in s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 2})
                 for b in page["Buckets"]]
    assert paginated == names
    # A filter holds across pages.
    _client(aws, "s3", "eu-west-1").create_bucket(
        Bucket="page-x", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    first = s3.list_buckets(MaxBuckets=1, BucketRegion="eu-west-1")
    assert [b["Name"] for b in first["Buckets"]] == ["page-x"] and "ContinuationToken" not in first


def test_bad_max_buckets_or_token_is_invalid_argument(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="some-bucket")
    for query in ("max-buckets=0", "max-buckets=10001", "max-buckets=x", "continuation-token=%25%25"):
        status, _, body = _signed(aws, "GET", f"/?{query}", "us-east-1")
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (query, body)


def test_request_signed_for_another_region_is_redirected(aws):
    member = aws.full_setup()
    _buckets(aws, [("far-bucket", "eu-west-1")], member)
    status, headers, body = _signed(aws, "GET", "/far-bucket?policy", "us-east-1")
    assert status == 301
    assert headers["x-amz-bucket-region"] == "eu-west-1"
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>')
    assert "<Endpoint>s3.eu-west-1.amazonaws.com</Endpoint><Bucket>far-bucket</Bucket>" in text
    for method, path in (("PUT", "/far-bucket?policy"), ("DELETE", "/far-bucket?policy"), ("GET", "/far-bucket/key")):
        assert _signed(aws, method, path, "us-west-2")[0] == 301, (method, path)
    status, headers, body = _signed(aws, "HEAD", "/far-bucket", "us-east-1")
    assert (status, headers["x-amz-bucket-region"], body) == (301, "eu-west-1", b"")
    # Signed for the bucket's region: served. GetBucketLocation is served from anywhere.
    assert _signed(aws, "GET", "/far-bucket?policy", "eu-west-1")[0] == 200
    status, _, body = _signed(aws, "GET", "/far-bucket?location", "us-east-1")
    assert status == 200 and b"eu-west-1" in body


def test_redirect_applies_to_root_sessions_and_sdks_follow_it(aws):
    member = aws.full_setup()
    _buckets(aws, [("far-bucket", "eu-west-1"), ("near-bucket", "us-east-1")], member)
    creds = aws.root_session(member, "S3UnlockBucketPolicy")
    assert _signed(aws, "GET", "/far-bucket?policy", "us-east-1", creds)[0] == 301
    assert _signed(aws, "GET", "/near-bucket?policy", "us-east-1", creds)[0] == 200
    ireland = _client(aws, "s3", "eu-west-1", creds)
    assert json.loads(ireland.get_bucket_policy(Bucket="far-bucket")["Policy"]) == json.loads(POLICY)
    ireland.delete_bucket_policy(Bucket="far-bucket")
    ireland.put_bucket_policy(Bucket="far-bucket", Policy=POLICY)
    aws.control("DELETE", "/_localaws/call-counts")
    # botocore follows the redirect: one 301, then the call re-signed for eu-west-1.
    virginia = _client(aws, "s3", "us-east-1", creds)
    assert json.loads(virginia.get_bucket_policy(Bucket="far-bucket")["Policy"]) == json.loads(POLICY)
    assert aws.control("GET", "/_localaws/call-counts")[1]["counts"] == {"s3.GetBucketPolicy": 2}


def test_redirect_comes_before_the_task_scope(aws):
    member = aws.full_setup()
    other = aws.create_account("member-two")
    _buckets(aws, [("others-bucket", "eu-west-1")], other)
    creds = aws.root_session(member, "S3UnlockBucketPolicy")
    assert _signed(aws, "GET", "/others-bucket?policy", "us-east-1", creds)[0] == 301
    with pytest.raises(ClientError) as err:
        _client(aws, "s3", "eu-west-1", creds).get_bucket_policy(Bucket="others-bucket")
    assert error_of(err) == ("AccessDenied", 403)


def test_unsigned_and_unknown_buckets_are_not_redirected(aws):
    member = aws.full_setup()
    _buckets(aws, [("far-bucket", "eu-west-1")], member)
    with urllib.request.urlopen(f"{aws.endpoint}/far-bucket?location", timeout=30) as response:
        assert response.status == 200
    assert _signed(aws, "GET", "/no-such-bucket?policy", "eu-west-1")[0] == 404
