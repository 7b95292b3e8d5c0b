"""IAM policy documents: well-formed, grammatical, only real actions, and the CloudFormation
template grants exactly what deploy/iam/*.json documents."""
import fnmatch
import json
import re

import pytest

from conftest import DEPLOY, load_json

IAM = DEPLOY / "iam"
TASKS = ["IAMAuditRootUserCredentials", "IAMDeleteRootUserCredentials", "IAMCreateRootUserPassword",
         "S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"]
TASK_POLICY_ARNS = [f"arn:aws:iam::aws:policy/root-task/{t}" for t in TASKS]

# file -> kind: identity policies and SCPs name no Principal, resource policies must.
POLICY_FILES = {
    "rootwarden-policy.json": "identity",
    "rootwarden-audit-policy.json": "identity",
    "intake-queue-policy.json": "resource",
    "deny-assume-root-scp.json": "scp",
}

CONDITION_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
    "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals",
    "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
    "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals",
    "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}
STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
                  "NotResource", "Condition"}
ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$")


def known_actions() -> set[str]:
    actions = set()
    for line in (IAM / "known-actions.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            actions.add(line)
    return actions


KNOWN = known_actions()


def as_list(value):
    return value if isinstance(value, list) else [value]


def is_intrinsic(value) -> bool:
    """A CloudFormation intrinsic ({"Ref": ..}, {"Fn::GetAtt": ..}) stands for a value."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::"))


def action_problems(action) -> list[str]:
    if not isinstance(action, str) or not ACTION_RE.match(action):
        return [f"malformed action {action!r}"]
    if "*" in action or "?" in action:
        if not any(fnmatch.fnmatchcase(a, action) for a in KNOWN):
            return [f"wildcard {action} matches no known action"]
        return []
    if action not in KNOWN:
        return [f"unknown action {action} (not in deploy/iam/known-actions.txt)"]
    return []


def grammar_problems(doc, kind: str) -> list[str]:
    """Every problem of an IAM policy document; kind: identity, resource, scp or trust."""
    problems = []
    if not isinstance(doc, dict):
        return ["policy is not a JSON object"]
    if set(doc) - {"Version", "Id", "Statement"}:
        problems.append(f"unknown top-level keys {sorted(set(doc) - {'Version', 'Id', 'Statement'})}")
    if doc.get("Version") != "2012-10-17":
        problems.append(f"Version must be 2012-10-17, not {doc.get('Version')!r}")
    statements = doc.get("Statement")
    if not isinstance(statements, list) or not statements:
        return problems + ["Statement must be a non-empty list"]
    sids = [st.get("Sid") for st in statements if isinstance(st, dict) and "Sid" in st]
    if len(sids) != len(set(sids)):
        problems.append(f"duplicate Sid in {sids}")
    for i, st in enumerate(statements):
        where = f"Statement[{i}] {st.get('Sid', '') if isinstance(st, dict) else ''}"
        if not isinstance(st, dict):
            problems.append(f"{where}: not an object")
            continue
        if set(st) - STATEMENT_KEYS:
            problems.append(f"{where}: unknown keys {sorted(set(st) - STATEMENT_KEYS)}")
        if "Sid" in st and not re.fullmatch(r"[A-Za-z0-9]*", str(st["Sid"])):
            problems.append(f"{where}: Sid must be alphanumeric")
        if st.get("Effect") not in ("Allow", "Deny"):
            problems.append(f"{where}: Effect must be Allow or Deny")
        if ("Action" in st) == ("NotAction" in st):
            problems.append(f"{where}: exactly one of Action, NotAction")
        for action in as_list(st.get("Action", st.get("NotAction", []))):
            if action == "*" and st.get("Effect") == "Allow":
                problems.append(f"{where}: Allow of every action")
            elif not is_intrinsic(action):
                problems += [f"{where}: {p}" for p in action_problems(action)]
        has_resource = "Resource" in st or "NotResource" in st
        if kind == "trust":
            if has_resource:
                problems.append(f"{where}: a trust policy names no Resource")
        elif ("Resource" in st) == ("NotResource" in st):
            problems.append(f"{where}: exactly one of Resource, NotResource")
        has_principal = "Principal" in st or "NotPrincipal" in st
        if kind in ("resource", "trust") and not has_principal:
            problems.append(f"{where}: a {kind} policy statement needs a Principal")
        if kind in ("identity", "scp") and has_principal:
            problems.append(f"{where}: a {kind} policy names no Principal")
        condition = st.get("Condition", {})
        if not isinstance(condition, dict):
            problems.append(f"{where}: Condition must be an object")
            continue
        for operator, block in condition.items():
            base = re.sub(r"^(ForAllValues|ForAnyValue):", "", operator).removesuffix("IfExists")
            if base not in CONDITION_OPERATORS:
                problems.append(f"{where}: unknown condition operator {operator}")
            if not isinstance(block, dict) or not block:
                problems.append(f"{where}: {operator} must map condition keys to values")
                continue
            for key, value in block.items():
                if not re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9/_:-]+", key):
                    problems.append(f"{where}: malformed condition key {key}")
                if not (is_intrinsic(value) or all(isinstance(v, str) for v in as_list(value))):
                    problems.append(f"{where}: {operator}/{key} values must be strings")
    return problems


def statement_actions(doc) -> dict[str, set[str]]:
    return {st["Sid"]: set(as_list(st["Action"])) for st in doc["Statement"]}


# --- the shipped JSON documents --------------------------------------------------------------

def test_known_actions_list_is_plausible():
    prefixes = {a.split(":")[0] for a in KNOWN}
    assert prefixes == {"ecs", "iam", "organizations", "sqs", "sts"}
    assert {"sts:AssumeRoot", "iam:ListOrganizationsFeatures", "sqs:ReceiveMessage", "ecs:RunTask", "iam:PassRole"} <= KNOWN
    # Batch calls are authorized by the single-message action and are no IAM action.
    assert "sqs:SendMessageBatch" not in KNOWN


@pytest.mark.parametrize("name,kind", sorted(POLICY_FILES.items()))
def test_policy_file_is_valid(name, kind):
    text = (IAM / name).read_text()
    doc = json.loads(text)  # well-formed JSON
    assert grammar_problems(doc, kind) == []


def test_every_policy_file_is_checked():
    assert {p.name for p in IAM.glob("*.json")} == set(POLICY_FILES)


def test_assume_root_is_limited_to_the_task_policies():
    doc = load_json(IAM / "rootwarden-policy.json")
    (st,) = [s for s in doc["Statement"] if "sts:AssumeRoot" in as_list(s["Action"])]
    assert st["Effect"] == "Allow" and as_list(st["Action"]) == ["sts:AssumeRoot"]
    assert st["Resource"] == "arn:aws:iam::*:root"
    assert st["Condition"] == {"StringEquals": {"sts:TaskPolicyArn": TASK_POLICY_ARNS}}


def test_rootwarden_policy_grants_no_wildcard_action():
    doc = load_json(IAM / "rootwarden-policy.json")
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        assert not any("*" in a for a in as_list(st["Action"])), st["Sid"]


def test_intake_queue_policy_admits_only_named_producers():
    doc = load_json(IAM / "intake-queue-policy.json")
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    allow = by_sid["AllowNamedProducers"]
    producers = allow["Principal"]["AWS"]
    assert allow["Action"] == "sqs:SendMessage" and "*" not in producers
    deny = by_sid["DenyOtherSenders"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": producers}}
    tls = by_sid["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_scp_denies_assume_root_to_everyone_else():
    doc = load_json(IAM / "deny-assume-root-scp.json")
    (st,) = doc["Statement"]
    assert (st["Effect"], st["Action"], st["Resource"]) == ("Deny", "sts:AssumeRoot", "*")
    assert list(st["Condition"]) == ["ArnNotEquals"]
    assert list(st["Condition"]["ArnNotEquals"]) == ["aws:PrincipalArn"]


@pytest.mark.parametrize("bad,kind", [
    ({"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "sqs:SendMessage", "Resource": "*"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessages", "Resource": "*"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:Frobnicate*", "Resource": "*"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage"}]}, "identity"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}, "resource"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "sts:AssumeRoot", "Resource": "*",
                                              "Condition": {"ArnNotEqual": {"aws:PrincipalArn": "x"}}}]}, "scp"),
])
def test_checker_rejects_bad_policies(bad, kind):
    assert grammar_problems(bad, kind)


# --- the CloudFormation template's policies --------------------------------------------------

def cfn_policy_documents(cfn) -> list[tuple[str, str, dict]]:
    docs = []
    for name, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            docs.append((f"{name} trust", "trust", props["AssumeRolePolicyDocument"]))
            docs += [(f"{name} {p['PolicyName']}", "identity", p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif res["Type"] == "AWS::SQS::QueuePolicy":
            docs.append((name, "resource", props["PolicyDocument"]))
    return docs


def test_template_policies_are_valid(cfn):
    docs = cfn_policy_documents(cfn)
    assert len(docs) >= 5
    for where, kind, doc in docs:
        assert grammar_problems(doc, kind) == [], where


def test_template_task_role_matches_rootwarden_policy(cfn):
    (policy,) = cfn["Resources"]["TaskRole"]["Properties"]["Policies"]
    assert statement_actions(policy["PolicyDocument"]) == statement_actions(load_json(IAM / "rootwarden-policy.json"))
    (assume_root,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Action"] == "sts:AssumeRoot"]
    assert assume_root["Condition"] == {"StringEquals": {"sts:TaskPolicyArn": {"Ref": "AllowedTaskPolicyArns"}}}
    default = cfn["Parameters"]["AllowedTaskPolicyArns"]["Default"].split(",")
    assert default == TASK_POLICY_ARNS


def test_template_intake_queue_policy_matches_json(cfn):
    doc = cfn["Resources"]["IntakeQueuePolicy"]["Properties"]["PolicyDocument"]
    shipped = load_json(IAM / "intake-queue-policy.json")
    assert statement_actions(doc) == statement_actions(shipped)
    assert [st["Effect"] for st in doc["Statement"]] == [st["Effect"] for st in shipped["Statement"]]
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    # The producers and the scheduled audit's role, in both statements.
    senders = {"Fn::Split": [",", {"Fn::Join": [",", [{"Fn::Join": [",", {"Ref": "ProducerRoleArns"}]},
                                                      {"Fn::GetAtt": ["AuditTaskRole", "Arn"]}]]}]}
    assert by_sid["AllowNamedProducers"]["Principal"] == {"AWS": senders}
    assert by_sid["DenyOtherSenders"]["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": senders}}
    shipped_by_sid = {st["Sid"]: st for st in shipped["Statement"]}
    audit_role = f"arn:aws:iam::{shipped_by_sid['AllowNamedProducers']['Resource'].split(':')[4]}:role/" + \
        cfn["Resources"]["AuditTaskRole"]["Properties"]["RoleName"]
    assert audit_role in shipped_by_sid["AllowNamedProducers"]["Principal"]["AWS"]
    assert audit_role in shipped_by_sid["DenyOtherSenders"]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]


def test_template_task_trust_is_scoped_to_this_account(cfn):
    for role in ("TaskRole", "TaskExecutionRole", "AuditTaskRole"):
        (st,) = cfn["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert st["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# --- the scheduled audit's roles -------------------------------------------------------------

def test_audit_policy_cannot_assume_root():
    doc = load_json(IAM / "rootwarden-audit-policy.json")
    actions = {a for st in doc["Statement"] for a in as_list(st["Action"])}
    assert all(st["Effect"] == "Allow" for st in doc["Statement"])
    assert not any("*" in a for a in actions)
    assert not any(a.startswith(("sts:", "iam:")) for a in actions), actions
    # What a sweep calls: SendMessageBatch; ReceiveMessage, DeleteMessageBatch and
    # ChangeMessageVisibilityBatch on the results; DescribeOrganization and ListAccounts, and
    # ListAccountsForParent / ListChildren for --exclude-ou.
    assert actions == {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                       "organizations:DescribeOrganization", "organizations:ListAccounts",
                       "organizations:ListAccountsForParent", "organizations:ListChildren"}


def test_template_audit_role_matches_audit_policy(cfn):
    role = cfn["Resources"]["AuditTaskRole"]["Properties"]
    (policy,) = role["Policies"]
    assert statement_actions(policy["PolicyDocument"]) == statement_actions(load_json(IAM / "rootwarden-audit-policy.json"))
    by_sid = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    assert by_sid["PostJobsToIntakeQueue"]["Resource"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert by_sid["CollectResults"]["Resource"] == {"Fn::GetAtt": ["ResultsQueue", "Arn"]}
    assert "ManagedPolicyArns" not in role


def test_scheduler_role_may_only_start_the_audit_task(cfn):
    role = cfn["Resources"]["AuditSchedulerRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    schedule_name = cfn["Resources"]["AuditSchedule"]["Properties"]["Name"]
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(f":schedule/default/{schedule_name}")
    (policy,) = role["Policies"]
    run, pass_role = policy["PolicyDocument"]["Statement"]
    assert (run["Effect"], run["Action"]) == ("Allow", "ecs:RunTask")
    assert run["Resource"] == {"Ref": "AuditTaskDefinition"}
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["Cluster", "Arn"]}}}
    assert (pass_role["Effect"], pass_role["Action"]) == ("Allow", "iam:PassRole")
    assert pass_role["Resource"] == [{"Fn::GetAtt": ["AuditTaskRole", "Arn"]}, {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # The roles it passes are exactly the audit task definition's.
    task = cfn["Resources"]["AuditTaskDefinition"]["Properties"]
    assert [task["TaskRoleArn"], task["ExecutionRoleArn"]] == pass_role["Resource"]
