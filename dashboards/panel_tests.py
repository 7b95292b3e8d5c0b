#!/usr/bin/env python3
"""Writes promtool unit tests (JSON, which promtool reads as YAML) for dashboard panels whose
answer depends on how replicas' series are merged, with each panel's own expression taken from
rootwarden.json ($instance = .*), so a panel edit is tested as it ships:

    python3 dashboards/panel_tests.py > panel_tests.json && promtool test rules panel_tests.json

The case they cover: every replica keeps, per account, the last value IT observed (an audit's
root credentials, a discovery's locked resources), so after another replica observes the account
again the first one's value is stale. The panels must count each account's freshest observation
(rootwarden_account_observed_timestamp_seconds), not the largest value of any replica.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dashboard  # noqa: E402

AUDIT = "IAMAuditRootUserCredentials"
S3 = "S3UnlockBucketPolicy"
SQS = "SQSUnlockQueuePolicy"


def series(name, values, **labels):
    text = ",".join(f'{k}="{v}"' for k, v in {"job": "rootwarden", **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def observed(instance, task, account, values):
    return series("rootwarden_account_observed_timestamp_seconds", values,
                  instance=instance, task=task, account_id=account)


# Replica a observed each account at minute 0; replica b observed some again at minute 30
# (timestamp 1800 s) or 10 (600 s). Evaluated at minute 60.
LOCKED = [
    # 111111111111, S3: a found 3 locked, then b found none (unlocked since).
    series("rootwarden_locked_resources", "3x90", instance="a:9464", task=S3, account_id="111111111111"),
    observed("a:9464", S3, "111111111111", "0x90"),
    series("rootwarden_locked_resources", "_x29 0x60", instance="b:9464", task=S3, account_id="111111111111"),
    observed("b:9464", S3, "111111111111", "_x29 1800x60"),
    # 222222222222, S3: only a, 2 locked.
    series("rootwarden_locked_resources", "2x90", instance="a:9464", task=S3, account_id="222222222222"),
    observed("a:9464", S3, "222222222222", "0x90"),
    # 111111111111, SQS: a found none, then b found 1.
    series("rootwarden_locked_resources", "0x90", instance="a:9464", task=SQS, account_id="111111111111"),
    observed("a:9464", SQS, "111111111111", "0x90"),
    series("rootwarden_locked_resources", "_x9 1x80", instance="b:9464", task=SQS, account_id="111111111111"),
    observed("b:9464", SQS, "111111111111", "_x9 600x80"),
]

CREDENTIALS = [
    # 111111111111: a's audit found a password; it was deleted and b's later audit found none.
    series("rootwarden_root_credentials_present", "1x90", instance="a:9464", account_id="111111111111", credential="password"),
    observed("a:9464", AUDIT, "111111111111", "0x90"),
    series("rootwarden_root_credentials_present", "_x29 0x60", instance="b:9464", account_id="111111111111", credential="password"),
    observed("b:9464", AUDIT, "111111111111", "_x29 1800x60"),
    # 222222222222: b's audit found none, a's later one found a password.
    series("rootwarden_root_credentials_present", "0x90", instance="b:9464", account_id="222222222222", credential="password"),
    observed("b:9464", AUDIT, "222222222222", "0x90"),
    series("rootwarden_root_credentials_present", "_x29 1x60", instance="a:9464", account_id="222222222222", credential="password"),
    observed("a:9464", AUDIT, "222222222222", "_x29 1800x60"),
]

# Panel title -> (input series, expected samples at minute 60).
CASES = {
    "Locked buckets and queues (last discovery)": (LOCKED, [
        {"labels": f'{{task="{S3}"}}', "value": 2},
        {"labels": f'{{task="{SQS}"}}', "value": 1},
    ]),
    "Accounts with root credentials present": (CREDENTIALS, [
        {"labels": '{credential="password"}', "value": 1},
    ]),
    "Accounts with root credentials": (CREDENTIALS, [
        {"labels": '{account_id="222222222222",credential="password"}', "value": 1},
    ]),
}


def main():
    errors, queries = check_dashboard.check(check_dashboard.DASHBOARD)
    if queries is None:
        print("\n".join(errors), file=sys.stderr)
        return 1
    by_title = {}
    for query in queries:
        by_title.setdefault(query["title"], []).append(query)
    tests = []
    for title, (inputs, expected) in CASES.items():
        panel = by_title.get(title)
        if not panel or len(panel) != 1:
            print(f"panel_tests.py: the dashboard has {len(panel or [])} queries titled {title!r}, not 1", file=sys.stderr)
            return 1
        expr = check_dashboard.substitute(panel[0]["expr"], {"instance": ".*", "task": ".*"})
        tests.append({
            "name": f"{title}: each account's freshest observation across replicas",
            "interval": "1m",
            "input_series": inputs,
            "promql_expr_test": [{"expr": expr, "eval_time": "60m", "exp_samples": expected}],
        })
    json.dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
