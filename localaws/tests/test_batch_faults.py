"""Entry-level faults: the first K entries of a batch call fail, the others are performed."""

import pytest
from botocore.exceptions import ClientError

FAILED = {"Code": "InternalError", "SenderFault": False, "Message": "Injected fault: InternalError"}


def _fault(aws, operation: str, **spec) -> None:
    status, _ = aws.control("POST", "/_localaws/faults", {"service": "sqs", "operation": operation, **spec})
    assert status == 200


def _queue(aws, name: str = "jobs"):
    sqs = aws.client("sqs")
    return sqs, sqs.create_queue(QueueName=name)["QueueUrl"]


def _receive_all(sqs, url: str, visibility: int = 30) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility).get("Messages", [])


def test_send_batch_fails_the_first_entries_and_sends_the_others(aws):
    sqs, url = _queue(aws)
    _fault(aws, "SendMessageBatch", entries=1, count=1)
    response = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "first", "MessageBody": "one"}, {"Id": "second", "MessageBody": "two"},
        {"Id": "third", "MessageBody": "three"}])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["Failed"] == [{"Id": "first", **FAILED}]
    assert sorted(s["Id"] for s in response["Successful"]) == ["second", "third"]
    assert sorted(m["Body"] for m in _receive_all(sqs, url)) == ["three", "two"]
    again = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}])
    assert again.get("Failed", []) == [] and len(again["Successful"]) == 1  # the count is spent


def test_delete_batch_leaves_the_failed_entrys_message_in_the_queue(aws):
    sqs, url = _queue(aws)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(3)])
    received = sorted(_receive_all(sqs, url, visibility=0), key=lambda m: m["Body"])
    assert len(received) == 3
    _fault(aws, "DeleteMessageBatch", entries=1, error="ServiceUnavailable")
    response = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": m["Body"], "ReceiptHandle": m["ReceiptHandle"]} for m in received])
    assert response["Failed"] == [{"Id": "m0", "Code": "ServiceUnavailable", "SenderFault": False,
                                   "Message": "Injected fault: ServiceUnavailable"}]
    assert sorted(s["Id"] for s in response["Successful"]) == ["m1", "m2"]
    assert [m["Body"] for m in _receive_all(sqs, url)] == ["m0"]


def test_change_visibility_batch_fails_the_first_entries(aws):
    sqs, url = _queue(aws)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(2)])
    received = sorted(_receive_all(sqs, url, visibility=60), key=lambda m: m["Body"])
    _fault(aws, "ChangeMessageVisibilityBatch", entries=1, error="Throttling")
    response = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": m["Body"], "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for m in received])
    assert [(f["Id"], f["Code"]) for f in response["Failed"]] == [("m0", "Throttling")]
    assert [s["Id"] for s in response["Successful"]] == ["m1"]
    assert [m["Body"] for m in _receive_all(sqs, url)] == ["m1"]  # m0 stays hidden for 60 s


def test_more_faulted_entries_than_the_batch_has_fail_them_all(aws):
    sqs, url = _queue(aws)
    _fault(aws, "SendMessageBatch", entries=5)
    response = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"},
                                                             {"Id": "b", "MessageBody": "2"}])
    assert [f["Id"] for f in response["Failed"]] == ["a", "b"] and response.get("Successful", []) == []
    assert _receive_all(sqs, url) == []


def test_a_faulted_batch_is_still_validated_as_a_whole(aws):
    sqs, url = _queue(aws)
    _fault(aws, "SendMessageBatch", entries=1)
    with pytest.raises(ClientError) as err:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}])
    assert err.value.response["Error"]["QueryErrorCode"] == "BatchEntryIdsNotDistinct"
    with pytest.raises(ClientError) as err:
        sqs.send_message_batch(QueueUrl=url.replace("jobs", "absent"), Entries=[{"Id": "a", "MessageBody": "1"}])
    assert err.value.response["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert _receive_all(sqs, url) == []


def test_entry_faults_are_listed_and_refused_on_other_operations(aws):
    _fault(aws, "DeleteMessageBatch", entries=2, fraction=0.5)
    listed = aws.control("GET", "/_localaws/faults")[1]["faults"][0]
    assert (listed["entries"], listed["error"], listed["fraction"]) == (2, "InternalError", 0.5)
    for spec in ({"operation": "SendMessage", "entries": 1}, {"operation": "*", "entries": 1},
                 {"service": "sts", "operation": "SendMessageBatch", "entries": 1},
                 {"operation": "SendMessageBatch", "entries": 0},
                 {"operation": "SendMessageBatch", "entries": 1, "status": 500}):
        assert aws.control("POST", "/_localaws/faults", spec)[0] == 400, spec
