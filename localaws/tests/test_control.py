"""Call counts, the clock, and reset of everything the extension holds."""

import urllib.error
import urllib.request

import pytest


def test_counts_every_call_by_service_and_operation(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="counted-bucket")
    s3.put_bucket_policy(Bucket="counted-bucket", Policy='{"Version":"2012-10-17","Statement":[]}')
    s3.get_bucket_policy(Bucket="counted-bucket")
    s3.delete_bucket_policy(Bucket="counted-bucket")
    s3.put_object(Bucket="counted-bucket", Key="k/x", Body=b"1")
    s3.list_buckets()
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.receive_message(QueueUrl=url)
    sqs.receive_message(QueueUrl=url)
    aws.client("sts").get_caller_identity()
    status, body = aws.control("GET", "/_localaws/call-counts")
    assert status == 200
    assert body["counts"] == {
        "s3.CreateBucket": 1, "s3.PutBucketPolicy": 1, "s3.GetBucketPolicy": 1, "s3.DeleteBucketPolicy": 1,
        "s3.PutObject": 1, "s3.ListBuckets": 1, "sqs.CreateQueue": 1, "sqs.ReceiveMessage": 2,
        "sts.GetCallerIdentity": 1,
    }
    assert aws.control("DELETE", "/_localaws/call-counts") == (200, {"counts": {}})
    assert aws.control("GET", "/_localaws/call-counts")[1] == {"counts": {}}


def test_reset_clears_everything(aws):
    member = aws.full_setup()
    aws.control("POST", f"/_localaws/accounts/{member}/root", {"access_keys": 1})
    aws.assume_root(member, "S3UnlockBucketPolicy")
    aws.control("POST", "/_localaws/faults", {"service": "s3", "error": "Throttling"})
    aws.control("POST", "/_localaws/clock", {"advance_seconds": 60})
    aws.reset()
    assert aws.control("GET", "/_localaws/assume-root-log")[1] == {"calls": []}
    assert aws.control("GET", "/_localaws/call-counts")[1] == {"counts": {}}
    assert aws.control("GET", "/_localaws/faults")[1] == {"faults": []}
    assert aws.control("GET", "/_localaws/clock")[1]["offset_seconds"] == 0
    assert aws.control("GET", f"/_localaws/accounts/{member}/root")[1]["access_keys"] == []
    aws.organization()  # moto's organization is gone too, and the features with it
    assert aws.client("iam").list_organizations_features()["EnabledFeatures"] == []


def test_clock_can_be_advanced(aws):
    assert aws.control("POST", "/_localaws/clock", {"advance_seconds": 30})[1]["offset_seconds"] == 30
    assert aws.control("POST", "/_localaws/clock", {"advance_seconds": "x"})[0] == 400


def test_unknown_control_path_is_404(aws):
    assert aws.control("GET", "/_localaws/nothing")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(f"{aws.endpoint}/_localaws/faults", data=b"[1]"))
    assert err.value.code == 400
