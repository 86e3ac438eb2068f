"""One consistency check across deploy/: every environment variable, port, scrape target,
topic, image tag, metric and label that compose, Kubernetes, Prometheus, Alertmanager and
Grafana name must be what the code reads (Settings), creates (topic_specs) and exports
(MarketflowMetrics, NotifyMetrics); the Prometheus market alerts mirror the default rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from marketflow import native
from marketflow.core.rules import load_rules
from marketflow.infra.topics import topic_specs
from marketflow.observe.metrics import MarketflowMetrics, NotifyMetrics
from marketflow.settings import PACKAGE_DATA, SECRET_FIELDS, Settings, Topics
from tests.integration.test_manifests import compose_config, example_overlay, kustomize

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SELECTOR = re.compile(r"\b(marketflow_[a-z0-9_]+|marketflow:[a-z0-9_:]+)\b(\{[^}]*\})?")
# defined and exported, on no dashboard or alert on purpose
UNCHARTED = {
    "marketflow_frame_groups_dropped": "zero on a healthy day; a drop is logged and counted",
    "marketflow_stock_turnover_hkd": "per-stock detail for ad-hoc queries",
    "marketflow_rebuild_records": "counted per takeover; each rebuild logs its offsets and "
                                  "how its day start was found",
}
pytestmark = pytest.mark.integration


# -- what the code defines ----------------------------------------------------------------


def setting_variables() -> set[str]:
    names = {f"MARKETFLOW_{name.upper()}" for name in Settings.model_fields if name != "topics"}
    names |= {f"MARKETFLOW_{name.upper()}_FILE" for name in SECRET_FIELDS}
    names |= {f"MARKETFLOW_TOPIC_{name.upper()}" for name in Topics.model_fields}
    return names | set(native.VARIABLES)  # the build's, read before any setting


def metric_families() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names) of every family the worker and notifier export."""
    registry = CollectorRegistry()
    MarketflowMetrics(registry)
    NotifyMetrics(registry)
    out = {}
    for collector in registry._collector_to_names:  # label names have no public API
        for family in collector.describe():
            out[family.name] = (family.type, set(getattr(collector, "_labelnames", ())))
    return out


def series_names() -> dict[str, set[str]]:
    """Every series name a scrape can show -> its labels (plus Prometheus's own)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    out = {}
    for name, (kind, labels) in metric_families().items():
        extra = {"le"} if kind == "histogram" else set()
        for suffix in suffixes.get(kind, ("",)):
            out[name + suffix] = labels | extra | {"instance", "job"}
    return out


def recording_rules() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        out += [(f"{path.name}: {panel['title']}", target["expr"])
                for panel in board["panels"] for target in panel["targets"]]
        out += [(f"{path.name}: annotation", note["expr"])
                for note in board["annotations"]["list"] if "expr" in note]
        out += [(f"{path.name}: ${var['name']}", var["definition"])
                for var in board["templating"]["list"]]
    return out


# -- what deploy/ says ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return kustomize(example_overlay(tmp_path_factory.mktemp("k8s")))


def k8s_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    config = next(d for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"].startswith("marketflow-env"))
    return dict(config["data"])


def workload(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in docs if d["metadata"]["name"] == name
                and d["kind"] in ("Deployment", "Job"))


def dotenv() -> dict[str, str]:
    lines = (DEPLOY / "compose" / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# -- environment variables --------------------------------------------------------------------


def test_every_environment_variable_is_a_setting(compose: dict, k8s: list[dict]) -> None:
    known = setting_variables()
    named: dict[str, str] = {}
    for service, spec in compose["services"].items():
        for variable in spec.get("environment") or {}:
            if variable.startswith("MARKETFLOW_"):
                named[variable] = f"compose service {service}"
    for variable in k8s_env(k8s):
        named[variable] = "k8s ConfigMap marketflow-env"
    for doc in k8s:
        for container in _containers(doc):
            for env in container.get("env", []):
                named[env["name"]] = f"k8s {doc['metadata']['name']}"
    for variable in re.findall(r"\b(MARKETFLOW_[A-Z_]+)=", (DEPLOY / "docker" /
                                                            "Dockerfile").read_text()):
        named[variable] = "Dockerfile"
    unknown = {v: where for v, where in named.items() if v not in known}
    assert not unknown, f"variables no setting reads: {unknown}"
    assert len(named) >= 15


def test_settings_of_compose_and_k8s_are_valid(compose: dict, k8s: list[dict],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings each deployment gives parse (secret files aside)."""
    for source in (compose["services"]["worker"]["environment"], k8s_env(k8s)):
        mounted = ("MARKETFLOW_RULES", "MARKETFLOW_UNIVERSE", "MARKETFLOW_INDICES",
                   "MARKETFLOW_KAFKA_SSL_CAFILE", "MARKETFLOW_KAFKA_SSL_CERTFILE",
                   "MARKETFLOW_KAFKA_SSL_KEYFILE")  # files mounted in the pod, not here
        values = {k: v for k, v in source.items() if not k.endswith("_FILE")
                  and k not in mounted}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        if values.get("MARKETFLOW_KAFKA_SECURITY_PROTOCOL", "").startswith("SASL"):
            monkeypatch.setenv("MARKETFLOW_KAFKA_SASL_PASSWORD", "stand-in")
        Settings()
        for key in values:
            monkeypatch.delenv(key)
        monkeypatch.delenv("MARKETFLOW_KAFKA_SASL_PASSWORD", raising=False)


def test_secret_files_are_mounted(compose: dict, k8s: list[dict]) -> None:
    for service, spec in compose["services"].items():
        env = spec.get("environment") or {}
        mounted = {s.get("target") or f"/run/secrets/{s['source']}"
                   for s in spec.get("secrets", [])}
        mounted = {m if m.startswith("/") else f"/run/secrets/{m}" for m in mounted}
        for key, path in env.items():
            if key.endswith("_FILE"):
                assert path in mounted, f"compose {service}: {key}={path} is not a secret mount"
    env = k8s_env(k8s)
    for name in ("marketflow-worker", "marketflow-notify", "marketflow-simulator"):
        container = _containers(workload(k8s, name))[0]
        files = {k: v for k, v in env.items() if k.endswith("_FILE")}
        files |= {e["name"]: e["value"] for e in container.get("env", [])
                  if e["name"].endswith("_FILE")}
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        for key, path in files.items():
            assert any(path.startswith(m + "/") for m in mounts), f"{name}: {key}={path}"
        for key in ("MARKETFLOW_RULES", "MARKETFLOW_UNIVERSE", "MARKETFLOW_INDICES",
                    "MARKETFLOW_KAFKA_SSL_CAFILE"):
            assert any(env[key].startswith(m + "/") for m in mounts), f"{name}: {key}"


# -- ports and scrape targets -------------------------------------------------------------------


def test_ports_and_scrape_targets(compose: dict, k8s: list[dict]) -> None:
    defaults = Settings()
    env = k8s_env(k8s)
    worker_env = compose["services"]["worker"]["environment"]
    notify_env = compose["services"]["notify"]["environment"]
    metrics, notify, health = (worker_env["MARKETFLOW_METRICS_PORT"],
                               notify_env["MARKETFLOW_NOTIFY_METRICS_PORT"],
                               worker_env["MARKETFLOW_HEALTH_PORT"])
    assert int(metrics) == defaults.metrics_port
    assert (env["MARKETFLOW_METRICS_PORT"], env["MARKETFLOW_NOTIFY_METRICS_PORT"],
            env["MARKETFLOW_HEALTH_PORT"]) == (metrics, notify, health)
    assert worker_env["MARKETFLOW_METRICS_HOST"] == env["MARKETFLOW_METRICS_HOST"] == "0.0.0.0"
    # Prometheus: compose (DNS per replica), local
    scrape = {job["job_name"]: job for job in yaml.safe_load(
        (DEPLOY / "prometheus" / "prometheus-compose.yml").read_text())["scrape_configs"]}
    assert scrape["marketflow-worker"]["dns_sd_configs"][0] == {
        "names": ["worker"], "type": "A", "port": int(metrics), "refresh_interval": "5s"}
    assert scrape["marketflow-notify"]["static_configs"][0]["targets"] == [f"notify:{notify}"]
    local = {job["job_name"]: job["static_configs"][0]["targets"] for job in yaml.safe_load(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    assert local == {"marketflow-worker": [f"127.0.0.1:{metrics}"],
                     "marketflow-notify": [f"127.0.0.1:{notify}"]}
    # the alert rules name the same jobs
    jobs = {m for rule in alert_rules() for m in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert jobs == {"marketflow-worker", "marketflow-notify"}
    # compose health check, k8s probes, annotations and container ports
    assert f"127.0.0.1:{health}/healthz" in " ".join(
        compose["services"]["worker"]["healthcheck"]["test"])
    worker = workload(k8s, "marketflow-worker")
    container = _containers(worker)[0]
    ports = {p["name"]: str(p["containerPort"]) for p in container["ports"]}
    assert ports == {"metrics": metrics, "health": health}
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == metrics
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    notifier = workload(k8s, "marketflow-notify")
    assert str(_containers(notifier)[0]["ports"][0]["containerPort"]) == notify
    assert notifier["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == notify
    # Grafana reaches Prometheus by its compose name and port
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" /
                                 "prometheus.yml").read_text())["datasources"][0]
    assert urlsplit(datasource["url"]).netloc == "prometheus:9090"
    assert "prometheus" in compose["services"]


def test_grafana_provisioning_matches_the_dashboards(compose: dict) -> None:
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" /
                                 "prometheus.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" /
                               "marketflow.yml").read_text())["providers"][0]
    mounts = {v["target"]: v["source"] for v in compose["services"]["grafana"]["volumes"]}
    assert Path(mounts[provider["options"]["path"]]) == DEPLOY / "grafana" / "dashboards"
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids = {panel["datasource"]["uid"] for panel in board["panels"]}
        assert uids == {datasource["uid"]}, path.name


# -- topics -------------------------------------------------------------------------------------


def test_topics_and_partitions(compose: dict, k8s: list[dict]) -> None:
    env = k8s_env(k8s)
    partitions = int(env["MARKETFLOW_TICKS_PARTITIONS"])
    assert compose["services"]["worker"]["environment"]["MARKETFLOW_TICKS_PARTITIONS"] == str(
        partitions)
    specs = {s.name: s for s in topic_specs(Settings(ticks_partitions=partitions))}
    topics = {d["spec"]["topicName"]: d["spec"] for d in k8s if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(specs), "a KafkaTopic for every topic, and no other"
    for name, spec in specs.items():
        assert topics[name]["partitions"] == spec.partitions, name
        config = {k: v for k, v in topics[name]["config"].items() if k != "min.insync.replicas"}
        assert config == spec.configs, name
    # KEDA: the worker group on md.ticks, never more replicas than partitions
    scaled = next(d for d in k8s if d["kind"] == "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    assert trigger["topic"] == Topics().ticks
    # the worker reads md.ticks in a consumer group of its own, "{app id}.ticks"
    assert 'f"{config.app_id}.ticks"' in (ROOT / "services" / "marketflow" / "stream" /
                                          "app.py").read_text()
    assert trigger["consumerGroup"] == f"{env['MARKETFLOW_APP_ID']}.ticks"
    assert trigger["bootstrapServers"] == env["MARKETFLOW_KAFKA_BOOTSTRAP"]
    assert scaled["spec"]["maxReplicaCount"] == partitions
    assert scaled["spec"]["scaleTargetRef"]["name"] == "marketflow-worker"
    assert workload(k8s, "marketflow-worker")["spec"]["replicas"] <= partitions
    assert int(dotenv()["MARKETFLOW_WORKERS"]) <= partitions
    # the Strimzi user may use every topic and the worker's consumer group
    user = next(d for d in k8s if d["kind"] == "KafkaUser")
    prefixes = [a["resource"]["name"] for a in user["spec"]["authorization"]["acls"]
                if a["resource"]["type"] == "topic"]
    assert all(any(t.startswith(p) for p in prefixes) for t in specs)
    assert user["metadata"]["name"] == env["MARKETFLOW_KAFKA_SASL_USERNAME"]


# -- images -------------------------------------------------------------------------------------


def test_images_pinned_in_one_place(compose: dict, k8s: list[dict]) -> None:
    pins = dotenv()
    for name, value in pins.items():
        if name.endswith("_IMAGE"):
            assert ":" in value and not value.endswith(":latest"), f"{name} not pinned"
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={pins['PYTHON_IMAGE']}" in dockerfile
    for service, spec in compose["services"].items():
        assert spec["image"] in pins.values(), f"compose {service}: {spec['image']}"
    tag = pins["MARKETFLOW_IMAGE"].rsplit(":", 1)[1]
    for name in ("marketflow-worker", "marketflow-notify", "marketflow-simulator"):
        assert _containers(workload(k8s, name))[0]["image"].endswith(f"/marketflow:{tag}")


def test_worker_resources_cover_the_bench(k8s: list[dict]) -> None:
    """Requests hold the README's measured peak RSS plus the calendar's ~54 MB; one core."""
    readme = (ROOT / "README.md").read_text()
    rss_mb = int(re.search(r"worker peak RSS\s+(\d+) MB", readme)[1])  # type: ignore[index]
    resources = _containers(workload(k8s, "marketflow-worker"))[0]["resources"]
    request_mb = int(resources["requests"]["memory"].removesuffix("Mi")) * 1.048576
    limit_mb = int(resources["limits"]["memory"].removesuffix("Mi")) * 1.048576
    assert request_mb >= rss_mb + 54 and limit_mb > request_mb
    assert resources["requests"]["cpu"] == "1"


def test_k8s_config_is_the_package_data() -> None:
    for name in ("rules.yaml", "universe.csv", "indices.csv"):
        copy = DEPLOY / "k8s" / "base" / "config" / name
        assert copy.read_bytes() == (PACKAGE_DATA / name).read_bytes(), (
            f"{copy} differs from services/marketflow/data/{name}: copy it again")


# -- metrics ------------------------------------------------------------------------------------


def test_every_metric_and_label_used_is_exported() -> None:
    series = series_names()
    records = recording_rules()
    used: dict[str, str] = {}
    problems = []
    exprs = [(f"record {name}", expr) for name, expr in records.items()]
    exprs += [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    exprs += dashboard_exprs()
    for where, expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            used[name] = where
            if name.startswith("marketflow:"):
                if name not in records:
                    problems.append(f"{where}: recording rule {name} is not defined")
                continue
            if name not in series:
                problems.append(f"{where}: {name} is not exported")
                continue
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                if label not in series[name]:
                    problems.append(f"{where}: {name} has no label {label!r}")
        for label in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for name in (n.strip() for n in label.split(",")):
                if name and not any(name in labels for labels in series.values()):
                    problems.append(f"{where}: no metric has label {name!r}")
    assert not problems, "\n".join(problems)
    families = metric_families()
    unused = {f for f in families if not any(u.startswith(f) for u in used)} - set(UNCHARTED)
    assert not unused, f"exported but on no dashboard or rule: {unused}"
    assert set(UNCHARTED) <= set(families)


def test_contracts_document_every_metric() -> None:
    contracts = (ROOT / "docs" / "contracts.md").read_text()
    missing = [name for name in metric_families() if f"`{name}" not in contracts]
    assert not missing, f"docs/contracts.md#metrics lacks {missing}"


# -- the default rules mirrored --------------------------------------------------------------


MIRRORED_METRIC = {  # rule metric -> (Prometheus metric, subject label, scale)
    "index.change_pct": ("marketflow_index_change_ratio", "index", 100),
    "stock.change_pct": ("marketflow_stock_change_ratio", "symbol", 100),
    "sector.gain_pct": ("marketflow_sector_gain_ratio", "sector", 100),
    "market.turnover_hkd": ("marketflow_market_turnover_hkd", None, 1),
    "southbound.net_inflow_hkd": ("marketflow_southbound_net_inflow_hkd", "channel", 1),
}


def test_market_alerts_mirror_the_default_rules() -> None:
    rules = load_rules(PACKAGE_DATA / "rules.yaml").rules
    alerts = {a["labels"].get("rule"): a for a in alert_rules() if "rule" in a["labels"]}
    assert set(alerts) == {rule.id for rule in rules}
    for rule in rules:
        alert = alerts[rule.id]
        metric, label, scale = MIRRORED_METRIC[rule.metric]
        expr = alert["expr"]
        match = re.fullmatch(r"(?:\w+(?: by \([^)]*\))? ?\()?(\w+)(\{[^}]*\})?\)? (>=|<=) (\S+)",
                             expr.strip())
        assert match, f"{alert['alert']}: cannot read {expr!r}"
        name, matchers, op, threshold = match.groups()
        assert name == metric, alert["alert"]
        assert op == rule.op, alert["alert"]
        assert float(threshold) == pytest.approx(rule.threshold / scale), alert["alert"]
        assert alert["labels"]["severity"] == rule.severity, alert["alert"]
        wanted = dict(re.findall(r'(\w+)=~?"([^"]*)"', matchers or ""))
        if rule.metric == "sector.gain_pct":
            assert wanted.get("window") == rule.window, alert["alert"]
        subjects = "*" if rule.subjects is None else set(rule.subjects)
        if rule.metric == "market.turnover_hkd":
            subjects = "*"  # one market: its only subject is "market"
        given = wanted.get(label, "*") if label else "*"
        if label and given != "*":
            given = set(given.split("|"))
        assert given == subjects, f"{alert['alert']}: subjects {given} != {subjects}"


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))
