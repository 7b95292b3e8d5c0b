"""Root-session requests in flight are counted per member account; the maximum is kept."""

import threading
import time

PATH = "/_localaws/root-concurrency"


def _slow_call_in_background(aws, creds: dict) -> threading.Thread:
    """Start a GetCallerIdentity that a 1 s latency fault holds; return once it is held."""
    aws.control("POST", "/_localaws/faults", {"service": "sts", "operation": "GetCallerIdentity",
                                              "latency_ms": 1000, "count": 1})
    sts = aws.client("sts", creds)
    thread = threading.Thread(target=sts.get_caller_identity)
    thread.start()
    deadline = time.monotonic() + 5
    while aws.control("GET", "/_localaws/faults")[1]["faults"][0]["fired"] == 0:
        assert time.monotonic() < deadline, "the slowed call never arrived"
        time.sleep(0.01)
    return thread


def test_overlapping_calls_of_one_account_give_two(aws):
    member = aws.full_setup()
    creds = aws.root_session(member, "S3UnlockBucketPolicy")
    slow = _slow_call_in_background(aws, creds)
    aws.client("sts", creds).get_caller_identity()  # while the slow one is held
    slow.join()
    assert aws.control("GET", PATH) == (200, {"max_in_flight": {member: 2}})


def test_sequential_calls_give_one_and_accounts_are_counted_apart(aws):
    member = aws.full_setup()
    other = aws.create_account("member-two")
    creds = aws.root_session(member, "S3UnlockBucketPolicy")
    sts = aws.client("sts", creds)
    sts.get_caller_identity()
    sts.get_caller_identity()
    assert aws.control("GET", PATH)[1] == {"max_in_flight": {member: 1}}
    slow = _slow_call_in_background(aws, creds)
    aws.client("sts", aws.root_session(other, "S3UnlockBucketPolicy")).get_caller_identity()
    slow.join()
    assert aws.control("GET", PATH)[1] == {"max_in_flight": {member: 1, other: 1}}


def test_management_calls_are_not_counted_and_delete_and_reset_clear(aws):
    member = aws.full_setup()
    aws.client("sts", aws.root_session(member, "S3UnlockBucketPolicy")).get_caller_identity()
    aws.client("sts").get_caller_identity()
    assert aws.control("GET", PATH)[1] == {"max_in_flight": {member: 1}}
    assert aws.control("DELETE", PATH) == (200, {"max_in_flight": {}})
    assert aws.control("GET", PATH)[1] == {"max_in_flight": {}}
    aws.client("sts", aws.root_session(member, "S3UnlockBucketPolicy")).get_caller_identity()
    aws.reset()
    assert aws.control("GET", PATH)[1] == {"max_in_flight": {}}
