"""Redis, Prometheus and Grafana in docker-compose.yml (issue 18), checked statically (no Docker
engine here: nothing is started): pinned images, networks, loopback-only ports, required secrets,
the Redis URL the API reads, Prometheus scraping the API's real metrics path, and a Grafana
dashboard whose every query names metrics api/metrics.py exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_docker_files import COMPOSE_FILE, ROOT, _compose, _env, _networks

PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs", "ceil", "floor", "round",
    "clamp_min", "clamp_max", "label_replace", "label_join", "vector", "scalar", "time", "absent", "changes",
    "resets", "sort", "sort_desc", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "inf", "nan",
}


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


# --- Redis ----------------------------------------------------------------------------------------------

def test_redis_is_pinned_internal_unpublished_and_passworded():
    services = _compose()["services"]
    redis = services["redis"]
    assert _pinned(redis["image"]) and redis["image"].startswith("redis:"), redis["image"]
    assert _networks(redis) == ["backend"] and not redis.get("ports")
    assert _env(redis)["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    command = " ".join(redis.get("command") or [])
    assert "requirepass" in command and "--requirepass" not in command, (
        "the password goes into redis' config file, not its argv (ps, docker top)")
    assert "-a " not in str(redis["healthcheck"]) and "REDISCLI_AUTH" in str(redis["healthcheck"])
    assert redis.get("user") not in (None, "root", "0"), "redis-server runs as the image's redis user"


def test_the_api_gets_the_redis_url_the_code_reads(monkeypatch):
    from core.settings import Settings

    services = _compose()["services"]
    url = _env(services["api"]).get("VTP_REDIS_URL", "")
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+", url), url
    assert services["api"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    # api/events.py's bus is made from Settings.redis_url: the variable it reads is VTP_REDIS_URL
    monkeypatch.setenv("VTP_REDIS_URL", "redis://:pw@redis:6379/0")
    assert Settings(_env_file=None).redis_url == "redis://:pw@redis:6379/0"
    for name, service in services.items():
        if name not in ("api", "redis"):
            assert "REDIS" not in json.dumps(_env(service)), f"{name} gets Redis' password but never talks to Redis"


# --- Prometheus -------------------------------------------------------------------------------------------

def _metrics_route():
    from api.routes.prometheus import router

    (route,) = [r for r in router.routes if getattr(r, "path", None) == "/metrics"]
    return route


def test_prometheus_scrapes_the_apis_metrics_path_at_api_8000():
    services = _compose()["services"]
    prom = services["prometheus"]
    assert _pinned(prom["image"]) and prom["image"].startswith("prom/prometheus:v"), prom["image"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_YML
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "vtp-api"]
    assert job.get("metrics_path", "/metrics") == _metrics_route().path
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["api:8000"]
    assert "127.0.0.1:8000:8000" in services["api"]["ports"], "the API listens on 8000 in its container"
    assert set(_networks(prom)) & set(_networks(services["api"])), "Prometheus cannot reach api:8000"
    assert "backend" not in _networks(prom), "Prometheus needs only the API: keep it off the datastores' network"


def test_prometheus_config_holds_no_credential_because_metrics_needs_none():
    """/metrics takes no token (api/routes/prometheus.py); were that to change, the scrape config
    would need an authorization block reading a credentials_file, never a literal token."""
    from api.deps import get_current_token

    deps = {d.call for d in _metrics_route().dependant.dependencies}
    assert get_current_token not in deps, "/metrics now needs a token: give prometheus.yml a credentials_file"
    text = PROMETHEUS_YML.read_text()
    for key in ("authorization", "bearer_token", "basic_auth", "password"):
        assert not re.search(rf"(?m)^\s*{key}\s*:", text), f"prometheus.yml has {key}: nothing to authenticate"


# --- Grafana ------------------------------------------------------------------------------------------

def test_grafana_is_pinned_loopback_only_and_needs_its_admin_password():
    services = _compose()["services"]
    grafana = services["grafana"]
    assert _pinned(grafana["image"]) and grafana["image"].startswith("grafana/grafana:"), grafana["image"]
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    env = _env(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert set(_networks(grafana)) & set(_networks(services["prometheus"])) and "backend" not in _networks(grafana)
    for volume in grafana["volumes"]:
        src = volume.split(":")[0]
        if src.startswith("./"):
            assert (ROOT / src).exists(), f"grafana mounts {src}, which is not in the repository"
    assert "GRAFANA_ADMIN_PASSWORD" in COMPOSE_FILE.read_text().split("name: vtp", 1)[0], (
        "the header's .env recipe must make GRAFANA_ADMIN_PASSWORD")


def test_grafana_provisioning_points_the_dashboard_at_prometheus():
    (source,) = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "vtp.yml").read_text())["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in _compose()["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert DASHBOARDS, "no dashboard JSON in deploy/grafana/dashboards"
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in [panel, *panel.get("targets", [])]:
                if "datasource" in target:
                    assert target["datasource"]["uid"] == source["uid"], f"{path.name}: {panel['title']}"


# --- Dashboard queries name real metrics ---------------------------------------------------------------

def exported_metrics() -> dict[str, set[str]]:
    """Every sample name api/metrics.py's registry can produce -> its label names."""
    from prometheus_client.metrics import MetricWrapperBase
    from sqlalchemy.exc import SQLAlchemyError

    from api.metrics import ApiMetrics

    def no_database():
        raise SQLAlchemyError("no database in this test")

    metrics = ApiMetrics(no_database)  # type: ignore[arg-type]
    labels = {m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = labels.get(family.name, {"state"} if family.name == "vtp_runs" else set())
    return names


def metric_refs(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value}) for each series a PromQL expression selects; functions,
    aggregations, grouping labels, ranges and numbers are skipped."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    refs = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", expr):
        name, matchers, call = m.groups()
        if call or name in PROMQL_WORDS:
            continue
        refs.append((name, dict(re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"', matchers or ""))))
    return refs


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


def test_every_metric_the_dashboard_queries_is_exported_with_those_labels():
    from api.run_states import RUN_STATES

    exported = exported_metrics()
    assert {"vtp_runs", "vtp_callback_seconds_bucket", "vtp_http_requests_total"} <= set(exported), exported
    titles = set()
    for fname, title, expr in _dashboard_exprs():
        refs = metric_refs(expr)
        assert refs, f"{fname} '{title}': no metric found in {expr!r}"
        for name, matchers in refs:
            assert name in exported, f"{fname} '{title}' queries {name}, which api/metrics.py does not export"
            assert set(matchers) <= exported[name], f"{fname} '{title}': {name} has no label {set(matchers)}"
            if name == "vtp_runs" and "state" in matchers:
                states = set(matchers["state"].split("|"))
                assert states <= set(RUN_STATES), f"{fname} '{title}': no run state {states - set(RUN_STATES)}"
        titles.add(title)
    assert {"Runs by state", "Queue depth", "Callback latency"} <= titles


def test_the_metric_name_check_has_teeth():
    exported = exported_metrics()
    assert [n for n, _ in metric_refs('sum(vtp_queue_depth{pool="x"})') if n not in exported] == ["vtp_queue_depth"]
    assert metric_refs("histogram_quantile(0.95, sum by (le, kind) (rate(vtp_callback_seconds_bucket[5m])))") == [
        ("vtp_callback_seconds_bucket", {})]
    assert metric_refs('sum(vtp_runs{state=~"queued|pending"})') == [("vtp_runs", {"state": "queued|pending"})]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable_json(path: Path):
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
