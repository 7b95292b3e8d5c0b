"""One localaws server per test session, reset before every test.

The server is spawned exactly as the Rust harness does it (`serve --port 0`,
then the READY line on stdout), so these tests also cover that contract.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

REPO = pathlib.Path(__file__).resolve().parents[2]
READY_DEADLINE = 30
MANAGEMENT = "123456789012"
TASK_ARN = "arn:aws:iam::aws:policy/root-task/{}"


def _read_ready_line(process: subprocess.Popen) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=READY_DEADLINE)
    except queue.Empty:
        raise RuntimeError("localaws did not print its READY line in time") from None
    assert line.startswith("LOCALAWS_READY http://127.0.0.1:"), line
    return line.split()[1]


@pytest.fixture(scope="session")
def endpoint():
    process = subprocess.Popen(
        [sys.executable, "-m", "localaws", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield _read_ready_line(process)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Aws:
    """Clients and control-API calls against the session's server."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                             s3={"addressing_style": "path"})

    def client(self, service: str, creds: dict | None = None, key: str = "testing"):
        creds = creds or {"aws_access_key_id": key, "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            config=self.config, **creds)

    def control(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"),
                               timeout=30).read()

    # -- organization helpers -------------------------------------------------

    def organization(self, trusted_access: bool = True, features: tuple[str, ...] = ()) -> str:
        org = self.client("organizations")
        org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        if trusted_access:
            org.enable_aws_service_access(ServicePrincipal="iam.amazonaws.com")
        iam = self.client("iam")
        for feature in features:
            getattr(iam, f"enable_organizations_{_snake(feature)}")()
        return org_id

    def create_account(self, name: str = "member") -> str:
        status = self.client("organizations").create_account(AccountName=name, Email=f"{name}@example.com")
        return status["CreateAccountStatus"]["AccountId"]

    def member_creds(self, account_id: str) -> dict:
        role = f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
        creds = self.client("sts").assume_role(RoleArn=role, RoleSessionName="test")["Credentials"]
        return _creds(creds)

    def assume_root(self, account_id: str, task: str, duration: int = 900, creds: dict | None = None) -> dict:
        sts = self.client("sts", creds)
        response = sts.assume_root(TargetPrincipal=account_id, TaskPolicyArn={"arn": TASK_ARN.format(task)},
                                   DurationSeconds=duration)
        return response["Credentials"]

    def root_session(self, account_id: str, task: str, **kwargs) -> dict:
        return _creds(self.assume_root(account_id, task, **kwargs))

    def full_setup(self) -> str:
        """An organization with both features and one member created before them; returns the member."""
        self.organization()
        member = self.create_account("member-one")
        iam = self.client("iam")
        iam.enable_organizations_root_credentials_management()
        iam.enable_organizations_root_sessions()
        return member


def _creds(credentials: dict) -> dict:
    return {"aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


def _snake(feature: str) -> str:
    return {"RootCredentialsManagement": "root_credentials_management", "RootSessions": "root_sessions"}[feature]


@pytest.fixture
def aws(endpoint):
    env = Aws(endpoint)
    env.reset()
    return env


def error_of(excinfo) -> tuple[str, int]:
    """(code, HTTP status) of a botocore ClientError."""
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]
