"""The seed makes a usable organization; start/stop manage a background server."""

import json
import pathlib
import subprocess
import sys
import urllib.request

from localaws.seed import seed

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
    assert result["queues"]["results"].endswith(f"/{MANAGEMENT}/rootwarden-results")


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
