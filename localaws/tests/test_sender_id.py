"""SQS SenderId equals the sender's GetCallerIdentity UserId, and differs per access key."""

import pytest


def _sender_of(aws, creds, url: str) -> str:
    aws.client("sqs", creds).send_message(QueueUrl=url, MessageBody="hi")
    messages = aws.client("sqs").receive_message(QueueUrl=url, MessageSystemAttributeNames=["SenderId"],
                                                 MaxNumberOfMessages=1)["Messages"]
    aws.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    return messages[0]["Attributes"]["SenderId"]


def _plain(key: str) -> dict:
    return {"aws_access_key_id": key, "aws_secret_access_key": "x"}


def test_plain_keys_get_distinct_stable_ids_matching_get_caller_identity(aws):
    url = aws.client("sqs").create_queue(QueueName="intake")["QueueUrl"]
    ids = {}
    for key in ("AKIAPRODUCERONE00001", "AKIAPRODUCERTWO00002"):
        sender = _sender_of(aws, _plain(key), url)
        assert sender == aws.client("sts", _plain(key)).get_caller_identity()["UserId"]
        assert sender.startswith("AIDA") and len(sender) == 21
        assert _sender_of(aws, _plain(key), url) == sender
        ids[key] = sender
    assert len(set(ids.values())) == 2


@pytest.mark.parametrize("existing_role", [True, False])
def test_assumed_role_sender_is_the_role_session_id(aws, existing_role):
    url = aws.client("sqs").create_queue(QueueName="intake")["QueueUrl"]
    role_name = "producer" if existing_role else "missing-role"
    if existing_role:
        aws.client("iam").create_role(RoleName=role_name, AssumeRolePolicyDocument="{}")
    creds = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{role_name}",
                                          RoleSessionName="jira")["Credentials"]
    creds = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
             "aws_session_token": creds["SessionToken"]}
    caller = aws.client("sts", creds).get_caller_identity()["UserId"]
    assert caller.startswith("AROA") and caller.endswith(":jira")
    assert aws.client("sts", creds).get_caller_identity()["UserId"] == caller
    assert _sender_of(aws, creds, url) == caller


def test_batch_sends_are_stamped_too(aws):
    url = aws.client("sqs").create_queue(QueueName="intake")["QueueUrl"]
    creds = _plain("AKIABATCHSENDER00003")
    aws.client("sqs", creds).send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"}])
    messages = aws.client("sqs").receive_message(QueueUrl=url, MessageSystemAttributeNames=["SenderId"],
                                                 MaxNumberOfMessages=10)["Messages"]
    expected = aws.client("sts", creds).get_caller_identity()["UserId"]
    assert [m["Attributes"]["SenderId"] for m in messages] == [expected, expected]
