"""Shared loaders for the deploy tests: every value is read from the shipped files."""
import json
import pathlib
import re
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "kubernetes" / "base"
K8S_KEDA = DEPLOY / "kubernetes" / "overlays" / "keda"


class CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags as {"Ref": x} / {"Fn::X": x}."""


def _cfn_tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def parse_duration(text: str) -> float:
    """Seconds in "20s", "15m", "1h", "500ms", "1min 30s" (rootwarden and systemd forms)."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.strip())
    if not parts or re.sub(r"[\d.\sa-z]", "", text.strip()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def systemd_directives(path: pathlib.Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def yaml_docs(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


@pytest.fixture(scope="session")
def toml_config() -> dict:
    with open(DEPLOY / "rootwarden.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="session")
def cfn() -> dict:
    return yaml.load((DEPLOY / "ecs" / "rootwarden.yaml").read_text(), Loader=CfnLoader)


@pytest.fixture(scope="session")
def k8s_base() -> list[dict]:
    docs = []
    for path in sorted(K8S_BASE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += yaml_docs(path)
    return docs


@pytest.fixture(scope="session")
def keda() -> list[dict]:
    return yaml_docs(K8S_KEDA / "scaledobject.yaml") + yaml_docs(K8S_KEDA / "triggerauthentication.yaml")


@pytest.fixture(scope="session")
def systemd_unit() -> dict[str, list[str]]:
    return systemd_directives(ROOT / "systemd" / "rootwarden.service")


@pytest.fixture(scope="session")
def dockerfile() -> list[str]:
    return (ROOT / "Dockerfile").read_text().splitlines()


def load_json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())
