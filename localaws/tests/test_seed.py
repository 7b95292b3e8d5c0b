"""The seed makes a usable organization; start/stop manage a background server."""

import json
import pathlib
import subprocess
import sys
import urllib.request

import pytest
from botocore.exceptions import ClientError

from localaws.seed import SeedError, seed

from .conftest import MANAGEMENT, REPO


def test_seed_builds_an_organization_rootwarden_can_work_on(aws):
    result = seed(aws.endpoint, accounts=20, locked_buckets=2, locked_queues=2)
    assert result["management_account"] == MANAGEMENT
    assert result["features"] == ["RootCredentialsManagement", "RootSessions"]
    accounts = result["accounts"]
    assert len(accounts) == 20 and len({a["id"] for a in accounts}) == 20
    before = [a for a in accounts if a["created"].startswith("before")]
    after = [a for a in accounts if a["created"].startswith("after")]
    assert before and after
    assert all(a["root"]["password"] for a in before) and not any(a["root"]["password"] for a in after)
    assert any(a["root"]["access_keys"] for a in before) and any(a["root"]["mfa_devices"] for a in before)
    for account in accounts[:3] + accounts[-2:]:
        state = aws.control("GET", f"/_localaws/accounts/{account['id']}/root")[1]
        assert (state["login_profile"] is not None) == account["root"]["password"]
        assert len(state["access_keys"]) == account["root"]["access_keys"]

    bucket = result["buckets"][0]
    s3 = aws.client("s3", aws.root_session(bucket["account_id"], "S3UnlockBucketPolicy"))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket["name"])["Policy"])["Statement"][0]["Effect"] == "Deny"
    queue = result["queues"]["locked"][0]
    sqs = aws.client("sqs", aws.root_session(queue["account_id"], "SQSUnlockQueuePolicy"))
    assert "Deny" in sqs.get_queue_attributes(QueueUrl=queue["url"], AttributeNames=["Policy"])["Attributes"]["Policy"]

    management = aws.client("sqs")
    intake = management.get_queue_attributes(QueueUrl=result["queues"]["intake"], AttributeNames=["All"])["Attributes"]
    assert json.loads(intake["RedrivePolicy"])["maxReceiveCount"] in (5, "5")
    assert intake["RedrivePolicy"].find("rootwarden-intake-dlq") > 0
    assert intake["MaximumMessageSize"] == "1048576" and "FifoQueue" not in intake  # moto's defaults
    assert result["queues"]["results"].endswith(f"/{MANAGEMENT}/rootwarden-results")


def _management_queue_attributes(aws, queues: dict) -> dict:
    sqs = aws.client("sqs")
    return {key: sqs.get_queue_attributes(QueueUrl=queues[key], AttributeNames=["All"])["Attributes"]
            for key in ("intake", "dead_letter", "results")}


def test_seed_with_fifo_queues_and_a_message_size(aws):
    result = seed(aws.endpoint, accounts=1, locked_buckets=0, locked_queues=0, fifo=True, max_message_size=2048)
    queues = result["queues"]
    assert queues["intake"].endswith(f"/{MANAGEMENT}/rootwarden-intake.fifo")
    assert queues["dead_letter"].endswith(f"/{MANAGEMENT}/rootwarden-intake-dlq.fifo")
    assert queues["results"].endswith(f"/{MANAGEMENT}/rootwarden-results.fifo")
    attributes = _management_queue_attributes(aws, queues)
    for queue in attributes.values():
        assert (queue["FifoQueue"], queue["ContentBasedDeduplication"], queue["MaximumMessageSize"]) == \
            ("true", "false", "2048")
    redrive = json.loads(attributes["intake"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == attributes["dead_letter"]["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5

    sqs = aws.client("sqs")
    with pytest.raises(ClientError) as err:  # no content-based deduplication: senders give ids
        sqs.send_message(QueueUrl=queues["intake"], MessageBody="job", MessageGroupId="member")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as err:
        sqs.send_message(QueueUrl=queues["intake"], MessageBody="x" * 2049, MessageGroupId="member",
                         MessageDeduplicationId="job-1")
    assert "shorter than 2048 bytes" in err.value.response["Error"]["Message"]
    sqs.send_message(QueueUrl=queues["intake"], MessageBody="job", MessageGroupId="member",
                     MessageDeduplicationId="job-1")


def test_seed_command_line_takes_fifo_and_max_message_size(aws):
    seeded = subprocess.run([sys.executable, "-m", "localaws", "seed", "--endpoint", aws.endpoint, "--accounts", "1",
                             "--locked-buckets", "0", "--locked-queues", "0", "--fifo", "--max-message-size", "4096"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert seeded.returncode == 0, seeded.stderr
    queues = json.loads(seeded.stdout)["queues"]
    assert set(queues) == {"intake", "dead_letter", "results", "locked"}
    for queue in _management_queue_attributes(aws, queues).values():
        assert (queue["FifoQueue"], queue["MaximumMessageSize"]) == ("true", "4096")


@pytest.mark.parametrize("size", [1023, 1_048_577])
def test_seed_refuses_a_message_size_sqs_refuses(aws, size):
    with pytest.raises(SeedError):
        seed(aws.endpoint, accounts=1, max_message_size=size)


def test_start_and_stop_in_the_background(tmp_path: pathlib.Path):
    state_dir = tmp_path / "state"
    started = subprocess.run([sys.executable, "-m", "localaws", "start", "--port", "0", "--state-dir", str(state_dir)],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("http://127.0.0.1:")
    assert (state_dir / "endpoint").read_text().strip() == url
    pid = int((state_dir / "localaws.pid").read_text())
    with urllib.request.urlopen(f"{url}/_localaws/health", timeout=10) as response:
        assert response.status == 200
    stopped = subprocess.run([sys.executable, "-m", "localaws", "stop", "--state-dir", str(state_dir)],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not (state_dir / "localaws.pid").exists()
    assert not pathlib.Path(f"/proc/{pid}").exists() or "Z" in pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert "LOCALAWS_READY" in (state_dir / "localaws.log").read_text()
