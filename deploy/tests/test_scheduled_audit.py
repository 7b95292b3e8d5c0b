"""The scheduled posture audit: the same sweep, identity and hardening on every target, and a
schedule that agrees with the RootwardenRootCredentialAppeared alert's comparison window."""
import re

import yaml

from conftest import DEPLOY, ROOT, find, parse_duration, systemd_directives

CONFIG_PATH = "/etc/rootwarden/rootwarden.toml"
SWEEP = ["sweep", "--config", CONFIG_PATH, "--task", "IAMAuditRootUserCredentials", "--report"]
DAY = 24 * 3600
# The most any target may start a run after its scheduled time; the alert's window leaves this
# plus as much again for differences in the sweep's own duration.
MAX_START_DELAY = 3600

AUDIT_SERVICE = systemd_directives(ROOT / "systemd" / "rootwarden-audit.service")
AUDIT_TIMER = systemd_directives(ROOT / "systemd" / "rootwarden-audit.timer")
DAEMON_SERVICE = systemd_directives(ROOT / "systemd" / "rootwarden.service")


def cronjob(k8s_base) -> dict:
    return find(k8s_base, "CronJob", "rootwarden-audit")


def audit_pod(k8s_base) -> dict:
    return cronjob(k8s_base)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def daemon_pod(k8s_base) -> dict:
    return find(k8s_base, "Deployment", "rootwarden")["spec"]["template"]["spec"]


def only(items: list) -> dict:
    (item,) = items
    return item


def ecs_audit_container(cfn) -> dict:
    return only(cfn["Resources"]["AuditTaskDefinition"]["Properties"]["ContainerDefinitions"])


def alert_offset_seconds() -> float:
    rules = yaml.safe_load((ROOT / "dashboards" / "alerts.yaml").read_text())["groups"][0]["rules"]
    offsets = set()
    for rule in rules:
        if rule.get("alert") == "RootwardenRootCredentialAppeared":
            offsets |= set(re.findall(r"offset\s+(\w+)", rule["expr"]))
    assert len(offsets) == 1, offsets
    return parse_duration(offsets.pop())


# --- one sweep everywhere --------------------------------------------------------------------

def test_every_target_runs_the_same_sweep(k8s_base, cfn):
    k8s_args = only(audit_pod(k8s_base)["containers"])["args"]
    ecs_command = ecs_audit_container(cfn)["Command"]
    (exec_start,) = AUDIT_SERVICE["ExecStart"]
    binary, *systemd_args = exec_start.split()
    assert binary == "/usr/local/bin/rootwarden"
    for args in (k8s_args, ecs_command, systemd_args):
        assert args[:-1] == SWEEP, args
        assert args[-1].endswith("/audit"), args


def test_kubernetes_report_is_on_a_writable_scratch_volume(k8s_base):
    pod = audit_pod(k8s_base)
    container = only(pod["containers"])
    report_dir = container["args"][-1].rsplit("/", 1)[0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[report_dir]["name"]]
    assert not mounts[report_dir].get("readOnly", False)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_ecs_report_directory_is_writable(cfn, dockerfile):
    container = ecs_audit_container(cfn)
    report_dir = container["Command"][-1].rsplit("/", 1)[0]
    # Fargate has no tmpfs, and mounts a bind volume as root 0755 unless the image declares its
    # path as a VOLUME (owned by the image's user): only then can the root file system be
    # read-only with the report on a volume. Otherwise the sweep writes to /tmp.
    volumes = set()
    for line in dockerfile:
        if line.upper().startswith("VOLUME "):
            volumes |= set(re.findall(r"/[^\s\"',\]]+", line))
    if report_dir in volumes:
        assert container["ReadonlyRootFilesystem"] is True
        assert [m["ContainerPath"] for m in container["MountPoints"]] == [report_dir]
    else:
        assert report_dir == "/tmp"
        assert container["ReadonlyRootFilesystem"] is False
        assert "MountPoints" not in container


def test_systemd_report_is_in_the_state_directory():
    (state,) = AUDIT_SERVICE["StateDirectory"]
    (exec_start,) = AUDIT_SERVICE["ExecStart"]
    report = exec_start.split()[-1]
    assert report == f"%S/{state}/audit"
    # A sweep refuses to start over an existing state file: the previous run's go first.
    (pre,) = AUDIT_SERVICE["ExecStartPre"]
    assert pre.split()[:2] == ["/bin/rm", "-f"]
    assert set(pre.split()[2:]) == {f"{report}.csv", f"{report}.json", f"{report}.state.json"}


# --- Kubernetes: like the Deployment, but its own identity -----------------------------------

def test_cronjob_runs_one_bounded_sweep_at_a_time(k8s_base):
    spec = cronjob(k8s_base)["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert 0 < spec["startingDeadlineSeconds"] <= MAX_START_DELAY
    job = spec["jobTemplate"]["spec"]
    assert 0 < job["activeDeadlineSeconds"] <= 6 * 3600
    assert job["backoffLimit"] == 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_cronjob_pod_is_hardened_like_the_deployment(k8s_base):
    pod, daemon = audit_pod(k8s_base), daemon_pod(k8s_base)
    container, daemon_container = only(pod["containers"]), only(daemon["containers"])
    assert pod["securityContext"] == daemon["securityContext"]
    assert container["securityContext"] == daemon_container["securityContext"]
    assert container["image"] == daemon_container["image"]
    assert container["imagePullPolicy"] == daemon_container["imagePullPolicy"]
    for key in ("automountServiceAccountToken", "enableServiceLinks"):
        assert pod[key] == daemon[key], key
    # The same configuration, mounted at the same place.
    config = only([m for m in container["volumeMounts"] if m["name"] == "config"])
    daemon_config = only(daemon_container["volumeMounts"])
    assert config == daemon_config
    assert {v["name"]: v for v in pod["volumes"]}["config"] == only(daemon["volumes"])


def test_cronjob_has_its_own_service_account_and_network_policy(k8s_base, cfn):
    pod = audit_pod(k8s_base)
    sa = find(k8s_base, "ServiceAccount", pod["serviceAccountName"])
    assert sa["metadata"]["name"] != daemon_pod(k8s_base)["serviceAccountName"]
    assert sa["automountServiceAccountToken"] is False
    role_arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn.endswith(":role/" + cfn["Resources"]["AuditTaskRole"]["Properties"]["RoleName"])
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/sts-regional-endpoints"] == "true"
    # Its pods are selected by a policy of their own: no ingress, egress DNS and 443 only.
    labels = cronjob(k8s_base)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    policy = find(k8s_base, "NetworkPolicy", "rootwarden-audit")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"] == [] and policy["policyTypes"] == ["Ingress", "Egress"]
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    # ...and by none of the daemon's (metrics ingress, disruption budget, Service).
    for kind, name in (("NetworkPolicy", "rootwarden"), ("PodDisruptionBudget", "rootwarden")):
        selector = find(k8s_base, kind, name)["spec"]["podSelector" if kind == "NetworkPolicy" else "selector"]
        assert not selector["matchLabels"].items() <= labels.items(), kind
    assert not find(k8s_base, "Service")["spec"]["selector"].items() <= labels.items()


# --- ECS: the service's image, queues and user; its own role ---------------------------------

def test_ecs_audit_task_matches_the_service_task(cfn):
    res = cfn["Resources"]
    audit, daemon = res["AuditTaskDefinition"]["Properties"], res["TaskDefinition"]["Properties"]
    container, daemon_container = ecs_audit_container(cfn), only(daemon["ContainerDefinitions"])
    for key in ("Image", "User", "Privileged", "LinuxParameters"):
        assert container[key] == daemon_container[key], key
    daemon_env = {e["Name"]: e["Value"] for e in daemon_container["Environment"]}
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env == {k: v for k, v in daemon_env.items() if k != "ROOTWARDEN_TELEMETRY__LISTEN"}
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    for key in ("RequiresCompatibilities", "NetworkMode", "RuntimePlatform", "ExecutionRoleArn"):
        assert audit[key] == daemon[key], key
    assert audit["TaskRoleArn"] == {"Fn::GetAtt": ["AuditTaskRole", "Arn"]}
    assert "PortMappings" not in container and "HealthCheck" not in container


def test_ecs_schedule_runs_the_audit_task_like_the_service(cfn):
    res = cfn["Resources"]
    schedule = res["AuditSchedule"]["Properties"]
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["Cluster", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["AuditSchedulerRole", "Arn"]}
    ecs = target["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == {"Ref": "AuditTaskDefinition"} and ecs["TaskCount"] == 1
    service = res["Service"]["Properties"]
    assert ecs["LaunchType"] == service["LaunchType"]
    assert ecs["NetworkConfiguration"]["AwsvpcConfiguration"] == {
        "AssignPublicIp": "DISABLED", **{k: v for k, v in service["NetworkConfiguration"]["AwsvpcConfiguration"].items()
                                        if k != "AssignPublicIp"}}
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= MAX_START_DELAY


# --- systemd: the daemon's hardening ---------------------------------------------------------

HARDENING = [
    "DynamicUser", "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "UMask",
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "DevicePolicy", "PrivateUsers",
    "PrivateIPC", "PrivateMounts", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset", "RemoveIPC",
    "KeyringMode", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
    "LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures", "SystemCallFilter",
    "SystemCallErrorNumber", "IPAddressDeny", "IPAddressAllow", "EnvironmentFile",
]


def test_systemd_audit_service_is_hardened_like_the_daemon():
    for key in HARDENING:
        assert AUDIT_SERVICE.get(key) == DAEMON_SERVICE.get(key), key
    assert AUDIT_SERVICE["Type"] == ["oneshot"]
    assert "Restart" not in AUDIT_SERVICE and "WantedBy" not in AUDIT_SERVICE
    # A stop (or the run's time limit) is SIGINT, on which the sweep saves its state.
    assert AUDIT_SERVICE["KillSignal"] == ["SIGINT"]
    (limit,) = AUDIT_SERVICE["TimeoutStartSec"]
    assert 0 < parse_duration(limit) <= 6 * 3600


def test_systemd_timer_starts_the_audit_daily_and_catches_up():
    assert "Unit" not in AUDIT_TIMER  # rootwarden-audit.service, by name
    assert AUDIT_TIMER["Persistent"] == ["true"]
    assert AUDIT_TIMER["FixedRandomDelay"] == ["yes"]
    (delay,) = AUDIT_TIMER["RandomizedDelaySec"]
    assert 0 < parse_duration(delay) <= MAX_START_DELAY
    assert AUDIT_TIMER["WantedBy"] == ["timers.target"]


# --- the schedule and the alert --------------------------------------------------------------

def test_every_target_audits_daily_at_the_same_time(k8s_base, cfn):
    spec = cronjob(k8s_base)["spec"]
    minute, hour, *rest = spec["schedule"].split()
    assert rest == ["*", "*", "*"] and spec["timeZone"] == "Etc/UTC"
    expression = cfn["Parameters"]["AuditScheduleExpression"]["Default"]
    assert expression == f"cron({minute} {hour} * * ? *)"
    assert cfn["Resources"]["AuditSchedule"]["Properties"]["ScheduleExpressionTimezone"] == "UTC"
    assert cfn["Resources"]["AuditSchedule"]["Properties"]["ScheduleExpression"] == {"Ref": "AuditScheduleExpression"}
    (calendar,) = AUDIT_TIMER["OnCalendar"]
    assert calendar == f"*-*-* {int(hour):02d}:{int(minute):02d}:00 UTC"


def test_alert_window_fits_a_daily_schedule():
    # The alert compares now with `offset` ago, which must fall after the previous audit: two
    # audits are at least a day less the latest start apart, and sweeps differ in length.
    offset = alert_offset_seconds()
    assert offset + MAX_START_DELAY + 3600 <= DAY, offset
    # ...and before the latest one for as long as possible: it lasts until the next audit.
    assert offset >= DAY - 3 * 3600, offset


def test_intake_queue_admits_the_audit_role():
    import json
    doc = json.loads((DEPLOY / "iam" / "intake-queue-policy.json").read_text())
    producers = {st["Sid"]: st for st in doc["Statement"]}["AllowNamedProducers"]["Principal"]["AWS"]
    assert any(arn.endswith(":role/rootwarden-audit") for arn in producers)
