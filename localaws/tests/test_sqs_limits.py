"""SQS message sizes are counted as AWS counts them: UTF-8 bytes of the body plus each attribute's
name, data type and value, against the queue's MaximumMessageSize, for messages and batches."""

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from localaws.sqs_limits import message_size

from .conftest import error_of

LIMIT = 1024
TOO_LONG = f"One or more parameters are invalid. Reason: Message must be shorter than {LIMIT} bytes."


@pytest.fixture
def small_queue(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": str(LIMIT)})["QueueUrl"]
    return sqs, url


def _count(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_message_size_counts_bytes_of_body_and_attributes():
    assert message_size("é" * 3, None) == 6
    assert message_size("ab", {"k": {"DataType": "String", "StringValue": "vé"}}) == 2 + 1 + 6 + 3
    assert message_size("", {"bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
                             "n": {"DataType": "Number.int", "StringValue": "42"}}) == (3 + 6 + 2) + (1 + 10 + 2)


@pytest.mark.parametrize("body,attributes,accepted", [
    ("x" * LIMIT, None, True),
    ("x" * (LIMIT + 1), None, False),
    ("é" * (LIMIT // 2), None, True),          # 512 characters, 1024 bytes
    ("é" * (LIMIT // 2 + 1), None, False),     # 513 characters, 1026 bytes: moto alone accepts it
    ("x" * 1000, {"abc": {"DataType": "String", "StringValue": "v" * 15}}, True),    # 1000 + 3 + 6 + 15
    ("x" * 1000, {"abc": {"DataType": "String", "StringValue": "v" * 16}}, False),   # 1025
    ("x" * 1000, {"bin": {"DataType": "Binary", "BinaryValue": b"\x01" * 16}}, False),  # 1000 + 3 + 6 + 16
])
def test_send_message_is_refused_above_the_queues_maximum(small_queue, body, attributes, accepted):
    sqs, url = small_queue
    kwargs = {"MessageAttributes": attributes} if attributes else {}
    if accepted:
        sqs.send_message(QueueUrl=url, MessageBody=body, **kwargs)
        assert _count(sqs, url) == 1
        return
    with pytest.raises(ClientError) as err:
        sqs.send_message(QueueUrl=url, MessageBody=body, **kwargs)
    assert error_of(err) == ("InvalidParameterValue", 400)
    assert err.value.response["Error"]["Message"] == TOO_LONG
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    assert _count(sqs, url) == 0


def test_a_batch_whose_total_is_above_the_maximum_fails_as_a_whole(small_queue):
    sqs, url = small_queue
    entries = [{"Id": "a", "MessageBody": "x" * 500}, {"Id": "b", "MessageBody": "y" * 500},
               {"Id": "c", "MessageBody": "z" * 10, "MessageAttributes": {"k": {"DataType": "String",
                                                                               "StringValue": "v" * 10}}}]
    with pytest.raises(ClientError) as err:  # 500 + 500 + 10 + (1 + 6 + 10) = 1027
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["QueryErrorCode"] == "BatchRequestTooLong"
    assert response["Error"]["Message"] == \
        f"Batch requests cannot be longer than {LIMIT} bytes. You have sent 1027 bytes."
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == \
        "AWS.SimpleQueueService.BatchRequestTooLong;Sender"
    assert _count(sqs, url) == 0
    entries[2]["MessageAttributes"]["k"]["StringValue"] = "v" * 7  # 1024: at the limit
    assert len(sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 3
    assert _count(sqs, url) == 3


def test_a_batch_with_one_entry_above_the_maximum_fails_as_a_whole(small_queue):
    sqs, url = small_queue
    with pytest.raises(ClientError) as err:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "ok"},
                                                      {"Id": "b", "MessageBody": "é" * 600}])
    assert err.value.response["Error"]["QueryErrorCode"] == "BatchRequestTooLong"
    assert _count(sqs, url) == 0


def test_the_batch_error_on_the_wire_is_sqs_json(aws, small_queue):
    """What the Rust SDK parses: status, `__type`, and the query-compatible code in the header."""
    _, url = small_queue
    body = json.dumps({"QueueUrl": url, "Entries": [{"Id": "a", "MessageBody": "x" * 600},
                                                    {"Id": "b", "MessageBody": "x" * 600}]}).encode()
    request = urllib.request.Request(aws.endpoint, data=body, method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400
    assert err.value.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.BatchRequestTooLong;Sender"
    payload = json.loads(err.value.read())
    assert payload["__type"] == "com.amazonaws.sqs#BatchRequestTooLong"
    assert "You have sent 1200 bytes." in (payload.get("message") or payload.get("Message"))
