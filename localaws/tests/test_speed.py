"""localaws.speed keeps moto's answers: the remembered account of a key follows keys created and
deleted, and SQS sends read queue attributes as moto does."""

from moto.iam import models as iam_models

from localaws import speed

MEMBER = "210987654321"


def _lookup(access_key: str) -> str:
    speed.install()
    # Through the module: install() replaced the function there.
    return iam_models.get_account_id_from(access_key)


def test_a_key_found_nowhere_is_looked_for_again_once_a_key_is_created():
    unknown = "AKIAUNKNOWNSPEED0001"
    assert _lookup(unknown) == iam_models.DEFAULT_ACCOUNT_ID
    assert _lookup(unknown) == iam_models.DEFAULT_ACCOUNT_ID
    backend = iam_models.iam_backends[MEMBER]["aws"]
    created = backend.create_temp_access_key()
    # Only a created key can make an unknown one known; give the new key the unknown id.
    backend.access_keys[unknown] = backend.access_keys.pop(created.physical_resource_id)
    assert _lookup(unknown) == MEMBER


def test_a_remembered_key_that_is_deleted_is_found_nowhere():
    backend = iam_models.iam_backends[MEMBER]["aws"]
    key = backend.create_temp_access_key().physical_resource_id
    assert _lookup(key) == MEMBER
    assert _lookup(key) == MEMBER
    del backend.access_keys[key]
    assert _lookup(key) == iam_models.DEFAULT_ACCOUNT_ID


def test_a_fifo_queue_with_content_based_deduplication_drops_a_repeated_body(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="jobs.fifo",
                           Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g")
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "2"


def test_queue_attributes_count_messages_sent_and_received(aws):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="intake")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(3)])
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "2"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "0"
