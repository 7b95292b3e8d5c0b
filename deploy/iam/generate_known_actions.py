#!/usr/bin/env python3
"""Regenerate deploy/iam/known-actions.txt from botocore's service models.

Usage (any Python environment with botocore installed):
    python3 deploy/iam/generate_known_actions.py > deploy/iam/known-actions.txt

Only the services that deploy/iam/*.json and deploy/ecs/rootwarden.yaml use are listed. IAM
action names are mostly the API operation names; the few permission-only actions (no API
operation of that name) are added by hand in PERMISSION_ONLY, and the API operations that IAM
authorizes under another action (SQS batch calls: SendMessageBatch needs sqs:SendMessage) are
left out in API_ONLY.
"""
import gzip
import json
import pathlib

import botocore

# IAM prefix -> botocore service directory.
SERVICES = {"ecs": "ecs", "iam": "iam", "organizations": "organizations", "sqs": "sqs", "sts": "sts"}

# Permission-only actions: checked by IAM but not API operations.
PERMISSION_ONLY = {
    "iam": ["PassRole"],
    "sts": ["SetContext", "SetSourceIdentity", "TagSession"],
}

# API operations without an IAM action of their own.
API_ONLY = {
    "sqs": {"ChangeMessageVisibilityBatch", "DeleteMessageBatch", "SendMessageBatch"},
}


def operations(service_dir: pathlib.Path) -> list[str]:
    latest = sorted(p for p in service_dir.iterdir() if p.is_dir())[-1]
    for name in ("service-2.json.gz", "service-2.json"):
        path = latest / name
        if path.exists():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                return list(json.load(f)["operations"])
    raise FileNotFoundError(latest)


def main() -> None:
    data = pathlib.Path(botocore.__file__).parent / "data"
    print(f"# IAM actions of the services rootwarden's policies use, from botocore {botocore.__version__}")
    print("# service models (operation names), plus permission-only actions marked below; SQS batch")
    print("# operations are authorized by their single-message action and are not listed.")
    print("# Regenerate: python3 deploy/iam/generate_known_actions.py > deploy/iam/known-actions.txt")
    for prefix, directory in sorted(SERVICES.items()):
        for op in sorted(set(operations(data / directory)) - API_ONLY.get(prefix, set())):
            print(f"{prefix}:{op}")
        for op in PERMISSION_ONLY.get(prefix, []):
            print(f"{prefix}:{op}  # permission-only")


if __name__ == "__main__":
    main()
