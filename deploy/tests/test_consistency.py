"""Values that must agree across the deployment files are checked here, not kept in step by hand.

deploy/rootwarden.toml is the source of truth; every other file is compared with it.
"""
import re
from urllib.parse import urlparse

from conftest import DEPLOY, K8S_BASE, ROOT, find, load_json, parse_duration

CONFIG_PATH = "/etc/rootwarden/rootwarden.toml"


# --- helpers ---------------------------------------------------------------------------------

def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def queue_name_of_url(url: str) -> str:
    parsed = urlparse(url)
    assert parsed.scheme == "https" and parsed.hostname.startswith("sqs."), url
    return parsed.path.rsplit("/", 1)[1]


def queue_name_of_arn(arn: str) -> str:
    return arn.split(":")[5]


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def ecs_container(cfn: dict) -> dict:
    (c,) = cfn["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    return c


def ecs_env(cfn: dict) -> dict:
    return {e["Name"]: e["Value"] for e in ecs_container(cfn)["Environment"]}


def dockerfile_instructions(lines: list[str], keyword: str) -> list[str]:
    return [l.split(None, 1)[1] for l in lines if l.upper().startswith(keyword + " ")]


def iam_resources(policy: dict) -> list[str]:
    out = []
    for st in policy["Statement"]:
        res = st.get("Resource", [])
        out += [res] if isinstance(res, str) else res
    return out


# --- shutdown grace vs every supervisor's stop timeout ---------------------------------------

def test_grace_shorter_than_ecs_stop_timeout(toml_config, cfn):
    grace = parse_duration(toml_config["shutdown"]["grace"])
    stop = ecs_container(cfn)["StopTimeout"]
    assert grace < stop <= 120, (grace, stop)


def test_grace_shorter_than_kubernetes_termination_grace(toml_config, k8s_base):
    grace = parse_duration(toml_config["shutdown"]["grace"])
    spec = find(k8s_base, "Deployment", "rootwarden")["spec"]["template"]["spec"]
    assert grace < spec["terminationGracePeriodSeconds"]


def test_grace_shorter_than_systemd_timeout_stop(toml_config, systemd_unit):
    grace = parse_duration(toml_config["shutdown"]["grace"])
    (stop,) = systemd_unit["TimeoutStopSec"]
    assert grace < parse_duration(stop)


# --- one metrics port everywhere -------------------------------------------------------------

def test_metrics_port_agrees(toml_config, dockerfile, k8s_base, cfn):
    port = port_of(toml_config["telemetry"]["listen"])
    assert port == 9464

    # Dockerfile: EXPOSE and the container-wide listen address.
    assert dockerfile_instructions(dockerfile, "EXPOSE") == [str(port)]
    (env,) = [e for e in dockerfile_instructions(dockerfile, "ENV") if e.startswith("ROOTWARDEN_TELEMETRY__LISTEN=")]
    assert env == f"ROOTWARDEN_TELEMETRY__LISTEN=0.0.0.0:{port}"

    # Kubernetes: containerPort, listen env, probes by name, Service, ServiceMonitor, NetworkPolicy.
    c = container(find(k8s_base, "Deployment", "rootwarden"))
    (p,) = c["ports"]
    assert (p["name"], p["containerPort"]) == ("metrics", port)
    assert {e["name"]: e["value"] for e in c["env"]}["ROOTWARDEN_TELEMETRY__LISTEN"] == f"0.0.0.0:{port}"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    (sp,) = find(k8s_base, "Service")["spec"]["ports"]
    assert (sp["name"], sp["port"], sp["targetPort"]) == ("metrics", port, "metrics")
    (ep,) = find(k8s_base, "ServiceMonitor")["spec"]["endpoints"]
    assert (ep["port"], ep["path"]) == ("metrics", "/metrics")
    (ingress,) = find(k8s_base, "NetworkPolicy", "rootwarden")["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": port}]

    # ECS: port mapping, listen env, health check URL.
    ec = ecs_container(cfn)
    assert [m["ContainerPort"] for m in ec["PortMappings"]] == [port]
    assert ecs_env(cfn)["ROOTWARDEN_TELEMETRY__LISTEN"] == f"0.0.0.0:{port}"
    check = ec["HealthCheck"]["Command"]
    assert check[:3] == ["CMD", "/usr/local/bin/rootwarden", "healthcheck"]
    assert f"http://127.0.0.1:{port}/healthz" in check


# --- queues ----------------------------------------------------------------------------------

def test_queue_names_agree(toml_config, cfn, keda):
    intake = queue_name_of_url(toml_config["intake"]["queue_url"])
    dlq = queue_name_of_url(toml_config["intake"]["dead_letter_queue_url"])
    results = queue_name_of_url(toml_config["results"]["queue_url"])
    assert (intake, dlq, results) == ("rootwarden-intake", "rootwarden-intake-dlq", "rootwarden-results")

    res = cfn["Resources"]
    assert res["IntakeQueue"]["Properties"]["QueueName"] == intake
    assert res["DeadLetterQueue"]["Properties"]["QueueName"] == dlq
    assert res["ResultsQueue"]["Properties"]["QueueName"] == results
    # The ECS task takes its queue URLs from the queues the template creates.
    env = ecs_env(cfn)
    assert env["ROOTWARDEN_INTAKE__QUEUE_URL"] == {"Ref": "IntakeQueue"}
    assert env["ROOTWARDEN_INTAKE__DEAD_LETTER_QUEUE_URL"] == {"Ref": "DeadLetterQueue"}
    assert env["ROOTWARDEN_RESULTS__QUEUE_URL"] == {"Ref": "ResultsQueue"}
    # The dead-letter queue accepts redrives from the intake queue only.
    (source,) = res["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]["sourceQueueArns"]
    assert source["Fn::Sub"].endswith(f":{intake}")

    scaled = find(keda, "ScaledObject", "rootwarden")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == toml_config["intake"]["queue_url"]
    assert trigger["metadata"]["awsRegion"] == toml_config["aws"]["region"]


def test_iam_policy_queue_arns_match_the_configuration(toml_config):
    policy = load_json(DEPLOY / "iam" / "rootwarden-policy.json")
    queue_policy = load_json(DEPLOY / "iam" / "intake-queue-policy.json")
    region = toml_config["aws"]["region"]
    urls = [toml_config["intake"]["queue_url"], toml_config["intake"]["dead_letter_queue_url"],
            toml_config["results"]["queue_url"]]
    expected = set()
    for url in urls:
        account = urlparse(url).path.split("/")[1]
        assert urlparse(url).hostname == f"sqs.{region}.amazonaws.com"
        expected.add(f"arn:aws:sqs:{region}:{account}:{queue_name_of_url(url)}")
    sqs_arns = {r for r in iam_resources(policy) if r.startswith("arn:aws:sqs:")}
    assert sqs_arns == expected
    # The scheduled audit's sweep posts to the intake queue and reads the results queue.
    audit = load_json(DEPLOY / "iam" / "rootwarden-audit-policy.json")
    audit_arns = {r for r in iam_resources(audit) if r.startswith("arn:aws:sqs:")}
    assert audit_arns == {a for a in expected if a.endswith((":rootwarden-intake", ":rootwarden-results"))}
    intake_arn = f"arn:aws:sqs:{region}:{urlparse(urls[0]).path.split('/')[1]}:rootwarden-intake"
    assert set(iam_resources(queue_policy)) == {intake_arn}


def test_redrive_matches_max_receive_count(toml_config, cfn):
    intake = cfn["Resources"]["IntakeQueue"]["Properties"]
    assert intake["RedrivePolicy"]["maxReceiveCount"] == toml_config["intake"]["max_receive_count"] == 5
    assert intake["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_queue_timing_matches_configuration(toml_config, cfn):
    intake = cfn["Resources"]["IntakeQueue"]["Properties"]
    assert intake["VisibilityTimeout"] == parse_duration(toml_config["intake"]["visibility_timeout"])
    assert intake["ReceiveMessageWaitTimeSeconds"] == parse_duration(toml_config["intake"]["wait_time"])


def test_queues_are_encrypted_and_dlq_keeps_14_days(cfn):
    res = cfn["Resources"]
    for name in ("IntakeQueue", "DeadLetterQueue", "ResultsQueue"):
        assert res[name]["Properties"]["SqsManagedSseEnabled"] is True, name
    assert res["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600


# --- configuration file, paths, identities ---------------------------------------------------

def test_configmap_copy_is_identical():
    assert (K8S_BASE / "rootwarden.toml").read_bytes() == (DEPLOY / "rootwarden.toml").read_bytes(), (
        "deploy/kubernetes/base/rootwarden.toml differs: cp deploy/rootwarden.toml deploy/kubernetes/base/")


def test_configmap_generator_uses_the_copy():
    import yaml
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    (gen,) = kustomization["configMapGenerator"]
    assert gen == {"name": "rootwarden-config", "files": ["rootwarden.toml"]}


def test_config_path_agrees(dockerfile, k8s_base, cfn, systemd_unit):
    assert any(l.split()[-1] == CONFIG_PATH for l in dockerfile_instructions(dockerfile, "COPY")
               if l.split()[-2] == "deploy/rootwarden.toml")
    deployment = find(k8s_base, "Deployment", "rootwarden")
    c = container(deployment)
    assert c["args"] == ["run", "--config", CONFIG_PATH]
    (mount,) = c["volumeMounts"]
    assert f"{mount['mountPath']}/rootwarden.toml" == CONFIG_PATH and mount["readOnly"] is True
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == "rootwarden-config"
    assert ecs_container(cfn)["Command"] == ["run", "--config", CONFIG_PATH]
    assert systemd_unit["ExecStart"] == [f"/usr/local/bin/rootwarden run --config {CONFIG_PATH}"]


def test_non_root_user_agrees(dockerfile, k8s_base, cfn):
    (user,) = dockerfile_instructions(dockerfile, "USER")
    uid, gid = (int(x) for x in user.split(":"))
    assert uid >= 10000
    pod = find(k8s_base, "Deployment", "rootwarden")["spec"]["template"]["spec"]
    for ctx in (pod["securityContext"], container(find(k8s_base, "Deployment", "rootwarden"))["securityContext"]):
        assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["runAsNonRoot"]) == (uid, gid, True)
    assert ecs_container(cfn)["User"] == f"{uid}:{gid}"


def test_rootwarden_role_name_agrees(cfn, k8s_base):
    role_name = cfn["Resources"]["TaskRole"]["Properties"]["RoleName"]
    scp = load_json(DEPLOY / "iam" / "deny-assume-root-scp.json")
    (statement,) = scp["Statement"]
    exempt = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{role_name}", exempt)
    sa = find(k8s_base, "ServiceAccount", "rootwarden")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == exempt
    assert sa["automountServiceAccountToken"] is False


def test_placeholder_account_agrees(toml_config, k8s_base):
    accounts = {urlparse(toml_config[s][k]).path.split("/")[1]
                for s, k in (("intake", "queue_url"), ("intake", "dead_letter_queue_url"), ("results", "queue_url"))}
    for name in ("rootwarden", "rootwarden-audit"):
        sa = find(k8s_base, "ServiceAccount", name)
        accounts.add(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].split(":")[4])
    producers = load_json(DEPLOY / "iam" / "intake-queue-policy.json")["Statement"][0]["Principal"]["AWS"]
    accounts |= {arn.split(":")[4] for arn in producers}
    assert len(accounts) == 1, accounts


def test_namespace_agrees(k8s_base):
    import yaml
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    assert find(k8s_base, "Namespace")["metadata"]["name"] == kustomization["namespace"]


def test_duration_parser():
    assert parse_duration("20s") == 20
    assert parse_duration("15m") == 900
    assert parse_duration("1min 30s") == 90
    for bad in ("20", "20 parsecs!", ""):
        try:
            parse_duration(bad)
        except (ValueError, KeyError):
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_dockerignore_keeps_the_shipped_configuration():
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "!deploy/rootwarden.toml" in lines
    assert lines.index("!deploy/rootwarden.toml") > lines.index("deploy")
