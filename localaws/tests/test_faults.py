"""Injected faults: count, fraction, latency, and each error in each service's format."""

import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from .conftest import error_of


def _call(aws, service: str):
    return {
        "sts": lambda: aws.client("sts").get_caller_identity(),
        "iam": lambda: aws.client("iam").list_users(),
        "sqs": lambda: aws.client("sqs").list_queues(),
        "s3": lambda: aws.client("s3").list_buckets(),
        "organizations": lambda: aws.client("organizations").list_roots(),
    }[service]


OPERATIONS = {"sts": "GetCallerIdentity", "iam": "ListUsers", "sqs": "ListQueues", "s3": "ListBuckets",
              "organizations": "ListRoots"}


@pytest.mark.parametrize("service,error,code,status", [
    ("sts", "Throttling", "Throttling", 400),
    ("sts", "ServiceUnavailable", "ServiceUnavailable", 503),
    ("sts", "InternalError", "InternalError", 500),
    ("sts", "ExpiredToken", "ExpiredToken", 400),
    ("sts", "AccessDenied", "AccessDenied", 403),
    ("iam", "Throttling", "Throttling", 400),
    ("iam", "AccessDenied", "AccessDenied", 403),
    ("sqs", "Throttling", "Throttling", 400),
    ("sqs", "ServiceUnavailable", "ServiceUnavailable", 503),
    ("sqs", "AccessDenied", "AccessDenied", 403),
    ("s3", "Throttling", "SlowDown", 503),
    ("s3", "NoSuchBucket", "NoSuchBucket", 404),
    ("s3", "InternalError", "InternalError", 500),
    ("s3", "ExpiredToken", "ExpiredToken", 400),
    ("organizations", "Throttling", "TooManyRequestsException", 400),
    ("organizations", "AccessDenied", "AccessDeniedException", 403),
])
def test_each_error_in_the_services_format(aws, service, error, code, status):
    aws.client("organizations").create_organization(FeatureSet="ALL")
    assert aws.control("POST", "/_localaws/faults",
                       {"service": service, "operation": OPERATIONS[service], "error": error, "count": 1}
                       ) == (200, {"id": "f1"})
    with pytest.raises(ClientError) as err:
        _call(aws, service)()
    assert error_of(err) == (code, status)
    _call(aws, service)()  # the count is spent


def test_count_fails_the_next_n_calls_and_lists_what_remains(aws):
    aws.control("POST", "/_localaws/faults", {"service": "sts", "operation": "*", "error": "Throttling", "count": 2})
    sts = aws.client("sts")
    for _ in range(2):
        with pytest.raises(ClientError):
            sts.get_caller_identity()
    sts.get_caller_identity()
    status, listed = aws.control("GET", "/_localaws/faults")
    assert status == 200 and listed["faults"][0]["remaining"] == 0 and listed["faults"][0]["fired"] == 2
    assert aws.control("DELETE", "/_localaws/faults") == (200, {"faults": []})
    assert aws.control("GET", "/_localaws/faults")[1] == {"faults": []}


def _pattern(aws, calls: int) -> list[bool]:
    sts = aws.client("sts")
    outcome = []
    for _ in range(calls):
        try:
            sts.get_caller_identity()
            outcome.append(True)
        except ClientError:
            outcome.append(False)
    return outcome


def test_fraction_is_seeded_and_reproducible(aws):
    spec = {"service": "sts", "operation": "GetCallerIdentity", "error": "ServiceUnavailable",
            "fraction": 0.3, "seed": 7}
    aws.control("POST", "/_localaws/faults", spec)
    first = _pattern(aws, 60)
    aws.control("DELETE", "/_localaws/faults")
    aws.control("POST", "/_localaws/faults", spec)
    assert _pattern(aws, 60) == first
    assert 5 <= first.count(False) <= 35


def test_latency_without_error_only_delays(aws):
    aws.control("POST", "/_localaws/faults", {"service": "sts", "operation": "GetCallerIdentity",
                                              "latency_ms": 200, "count": 1})
    sts = aws.client("sts")
    started = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - started < 0.2


def test_faults_on_other_operations_do_not_fire(aws):
    aws.control("POST", "/_localaws/faults", {"service": "sqs", "operation": "ReceiveMessage", "error": "Throttling"})
    aws.client("sqs").list_queues()
    aws.client("sts").get_caller_identity()


def test_faulted_assume_root_is_logged(aws):
    member = aws.full_setup()
    aws.control("POST", "/_localaws/faults", {"service": "sts", "operation": "AssumeRoot",
                                              "error": "Throttling", "count": 1})
    with pytest.raises(ClientError) as err:
        aws.assume_root(member, "S3UnlockBucketPolicy")
    assert error_of(err) == ("Throttling", 400)
    assert aws.control("GET", "/_localaws/assume-root-log")[1]["calls"][0]["result"] == "Throttling"


def test_sqs_query_protocol_errors_are_query_xml(aws):
    aws.control("POST", "/_localaws/faults", {"service": "sqs", "operation": "ListQueues",
                                              "error": "Throttling", "count": 1})
    request = urllib.request.Request(aws.endpoint, data=b"Action=ListQueues&Version=2012-11-05", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400
    assert b"<Code>Throttling</Code>" in err.value.read()


def test_for_seconds_fires_on_every_call_until_its_time_is_up(aws):
    sts = aws.client("sts")
    added = time.monotonic()
    aws.control("POST", "/_localaws/faults", {"service": "sts", "operation": "GetCallerIdentity",
                                              "error": "Throttling", "for_seconds": 1})
    listed = aws.control("GET", "/_localaws/faults")[1]["faults"][0]
    assert listed["for_seconds"] == 1.0 and 0 < listed["seconds_left"] <= 1 and listed["remaining"] is None
    throttled = 0
    while True:
        try:
            sts.get_caller_identity()
            break
        except ClientError as err:
            assert err.response["Error"]["Code"] == "Throttling"
            throttled += 1
            assert time.monotonic() - added < 5, "the storm did not end"
            time.sleep(0.05)
    assert time.monotonic() - added >= 1 and throttled >= 2
    for _ in range(3):
        sts.get_caller_identity()  # never again
    listed = aws.control("GET", "/_localaws/faults")[1]["faults"][0]
    assert listed["seconds_left"] == 0 and listed["fired"] == throttled


@pytest.mark.parametrize("spec", [{}, {"error": "Throttling", "count": 0}, {"error": "X", "fraction": 2},
                                  {"error": "X", "count": 1, "fraction": 0.5}, {"latency_ms": -1}, {"nope": 1},
                                  {"error": "X", "for_seconds": 0}, {"error": "X", "for_seconds": "5"},
                                  {"error": "X", "for_seconds": True}, {"error": "X", "for_seconds": 5, "count": 2}])
def test_invalid_fault_specs_are_rejected(aws, spec):
    assert aws.control("POST", "/_localaws/faults", spec)[0] == 400
