"""FIFO queues behave as AWS documents: a message group in flight holds back its later messages (not
other groups'), ChangeMessageVisibility works on FIFO messages, and a deduplication id is
remembered for 5 minutes after its send, even once that message is deleted."""

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def fifo(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
    return sqs, url


def _send(sqs, url: str, body: str, group: str, dedup: str | None = None) -> dict:
    return sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group,
                            MessageDeduplicationId=dedup or body)


def _receive(sqs, url: str, count: int = 10, visibility: int = 60) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count, VisibilityTimeout=visibility,
                               MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])


def test_a_group_in_flight_holds_back_its_later_messages_but_not_other_groups(fifo):
    sqs, url = fifo
    for body, group in (("a1", "account-a"), ("a2", "account-a"), ("b1", "account-b")):
        _send(sqs, url, body, group)
    [first] = _receive(sqs, url, count=1)
    assert first["Body"] == "a1"
    assert [m["Body"] for m in _receive(sqs, url)] == ["b1"]
    assert _receive(sqs, url) == []
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert [m["Body"] for m in _receive(sqs, url)] == ["a2"]


def test_change_message_visibility_works_on_fifo_messages(fifo):
    sqs, url = fifo
    _send(sqs, url, "a1", "account-a")
    _send(sqs, url, "a2", "account-a")
    [first] = _receive(sqs, url, count=1)
    assert _receive(sqs, url) == []
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    again = _receive(sqs, url, count=1)
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [("a1", "2")]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=600)
    assert _receive(sqs, url) == []  # still in flight: a2 waits
    with pytest.raises(ClientError) as err:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="not-a-handle", VisibilityTimeout=0)
    assert err.value.response["Error"]["QueryErrorCode"] == "ReceiptHandleIsInvalid"


def test_a_repeated_deduplication_id_is_accepted_but_not_delivered_twice(fifo):
    sqs, url = fifo
    assert _send(sqs, url, "first", "g", dedup="job-1")["MessageId"]
    assert _send(sqs, url, "second", "g", dedup="job-1")["MessageId"]
    [message] = _receive(sqs, url)
    assert message["Body"] == "first"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # Deleted, yet its id is remembered for the rest of the 5 minutes (moto alone forgets it).
    assert _send(sqs, url, "third", "g", dedup="job-1")["MessageId"]
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "fourth", "MessageGroupId": "g", "MessageDeduplicationId": "job-1"},
        {"Id": "b", "MessageBody": "fifth", "MessageGroupId": "g", "MessageDeduplicationId": "job-2"}])
    assert [m["Body"] for m in _receive(sqs, url)] == ["fifth"]


def test_ids_are_remembered_per_queue(aws, fifo):
    sqs, url = fifo
    other = sqs.create_queue(QueueName="other.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    _send(sqs, url, "here", "g", dedup="job-1")
    _send(sqs, other, "there", "g", dedup="job-1")
    assert [m["Body"] for m in _receive(sqs, other)] == ["there"]
