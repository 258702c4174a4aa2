"""The Kubernetes base job templates, rendered the way the worker renders them, are valid Jobs.

Each template goes through prefect-kubernetes' own KubernetesWorkerJobConfiguration
(from_template_and_values, then prepare_for_flow_run for a sample flow run) with the job variables
prefect.yaml gives its deployment, and the resulting manifest is deserialized into the kubernetes
client's V1Job (client-side validation on: required fields are checked)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, V1Job
from prefect.client.schemas.objects import Flow, FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.utilities.templating import apply_values
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from cli.pools import (
    GPU_RESOURCE,
    K8S_TARGETS,
    PROJECT_DIR,
    RUN_TOKEN_ENV,
    TARGET_DEFAULTS,
    build_k8s_template,
    image_for,
    load_template,
    pool_frameworks,
    pool_template,
)
from tests.aio import run_async
from tests.deploy.conftest import target_env


def to_v1job(manifest: dict[str, Any]) -> V1Job:
    """The kubernetes client's own deserializer (client 37 takes the response text itself)."""
    return ApiClient().deserialize(json.dumps(manifest), "V1Job", "application/json")


def _deployment_vars(name: str) -> dict[str, Any]:
    config = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    dep = next(d for d in config["deployments"] if d["name"] == name)
    return apply_values(dep["work_pool"]["job_variables"], {}, remove_notset=False)


def render(target: str, framework: str, monkeypatch, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    env = target_env(target)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    template = pool_template(target, framework, env)
    values = {**_deployment_vars(f"train-{framework}"), **(extra or {})}
    # No block or variable references in these templates, so no client is needed: a stand-in keeps
    # Prefect from starting a temporary server.
    config = run_async(functools.partial(KubernetesWorkerJobConfiguration.from_template_and_values,
                                         template, values, client=SimpleNamespace()))
    flow = Flow(id=uuid.uuid4(), name="train")
    deployment = DeploymentResponse(id=uuid.uuid4(), name=f"train-{framework}", flow_id=flow.id)
    flow_run = FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=flow.id, deployment_id=deployment.id,
                       parameters={"spec": {"model": "m", "dataset": "d"}})
    config.prepare_for_flow_run(flow_run, deployment, flow)
    return config.job_manifest


def test_committed_templates_match_prefect_kubernetes_default() -> None:
    """deploy/k8s/*.json are what `vtp pools render --write` makes from the installed package."""
    for target in K8S_TARGETS:
        assert load_template(target) == json.loads(json.dumps(build_k8s_template(target))), (
            f"deploy/k8s/{target}.json is stale: run `uv run vtp pools render --write`")


@pytest.mark.parametrize("target", K8S_TARGETS)
@pytest.mark.parametrize("framework", pool_frameworks())
def test_rendered_job_is_a_valid_v1job(target: str, framework: str, monkeypatch) -> None:
    manifest = render(target, framework, monkeypatch)
    assert "{{" not in json.dumps(manifest), "a placeholder survived rendering"
    job = to_v1job(manifest)
    assert isinstance(job, V1Job)
    env_file = target_env(target)
    defaults = TARGET_DEFAULTS[target]
    assert job.api_version == "batch/v1" and job.kind == "Job"
    assert job.metadata.namespace == env_file["VTP_K8S_NAMESPACE"]
    assert job.spec.ttl_seconds_after_finished == defaults["finished_job_ttl"]
    assert job.spec.backoff_limit == 0
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    assert pod.node_selector == (defaults["node_selector"] or None) or pod.node_selector == {}
    assert [t.key for t in pod.tolerations or []] == [t["key"] for t in defaults["tolerations"]]
    (container,) = pod.containers
    assert container.image == image_for(framework, env_file)
    assert container.image_pull_policy == env_file["VTP_IMAGE_PULL_POLICY"]
    assert container.args == ["prefect", "flow-run", "execute"]
    limits, requests = container.resources.limits, container.resources.requests
    assert limits[GPU_RESOURCE] == defaults["gpu_limit"]
    assert limits["memory"] == defaults["memory_limit"] and requests["memory"] == defaults["memory_request"]
    assert limits["cpu"] == defaults["cpu_limit"] and requests["cpu"] == defaults["cpu_request"]
    shm = next(v for v in pod.volumes if v.name == "dshm")
    assert shm.empty_dir.medium == "Memory" and shm.empty_dir.size_limit == defaults["shm_size"]
    assert [m.mount_path for m in container.volume_mounts] == ["/dev/shm"]

    env = {e.name: e for e in container.env}
    assert env["VTP_STORAGE_URL"].value == env_file["VTP_STORAGE_URL"]
    assert env["VTP_S3_ENDPOINT_URL"].value == env_file["VTP_S3_ENDPOINT_URL"]
    assert env["VTP_API_URL"].value == env_file["VTP_API_URL"]
    assert env["PREFECT__FLOW_RUN_ID"].value  # the worker's own variables survived the merge
    token = env[RUN_TOKEN_ENV]
    assert token.value is None
    assert token.value_from.secret_key_ref.name == "vtp-run-token"
    assert token.value_from.secret_key_ref.key == "token" and token.value_from.secret_key_ref.optional
    assert [s.secret_ref.name for s in container.env_from] == [env_file["VTP_STORAGE_SECRET"]]
    plain = {e.name: e.value for e in container.env if e.value is not None}
    assert not any("TOKEN" in k or "SECRET" in k or "PASSWORD" in k for k in plain), plain


def test_job_variables_override_numbers_and_secret(monkeypatch) -> None:
    """A run asking for 4 GPUs, its own token Secret and a short TTL gets exactly that."""
    manifest = render("k8s", "timm", monkeypatch, {
        "gpu_limit": "4", "run_token_secret": "vtp-run-abc", "finished_job_ttl": 60, "memory_limit": "64Gi"})
    job = to_v1job(manifest)
    (container,) = job.spec.template.spec.containers
    assert container.resources.limits[GPU_RESOURCE] == "4"
    assert container.resources.limits["memory"] == "64Gi"
    assert job.spec.ttl_seconds_after_finished == 60
    ref = next(e for e in container.env if e.name == RUN_TOKEN_ENV).value_from.secret_key_ref
    assert ref.name == "vtp-run-abc"


def test_missing_required_field_is_rejected() -> None:
    """The check has teeth: a container without a name is not a V1Job."""
    manifest = {"apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
    with pytest.raises(ValueError, match="name"):
        to_v1job(manifest)


# --- Advertised addresses: nothing a pod receives points at loopback (issue 18) -------------------

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")
WORKER_YAML = PROJECT_DIR / "deploy" / "kind" / "worker.yaml"


def _worker_env(target_file: dict[str, str]) -> dict[str, str]:
    """The in-cluster worker's plain environment as deploy/kind/worker.yaml gives it, with the
    ConfigMap vtp-endpoints holding what deploy/kind/up.sh writes there (the env file's
    PREFECT_API_URL). Secret references are left out: prefect-kubernetes passes those on as
    references (test_docker_files checks it)."""
    doc = yaml.safe_load(WORKER_YAML.read_text())
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "configMapKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["configMapKeyRef"]
            assert (ref["name"], ref["key"]) == ("vtp-endpoints", "PREFECT_API_URL"), ref
            env[entry["name"]] = target_file["PREFECT_API_URL"]
    return env


def render_in_worker(target: str, framework: str, monkeypatch, tmp_path) -> dict[str, Any]:
    """:func:`render` inside the Prefect settings of the in-cluster worker (a fresh process with only
    worker.yaml's environment): what the Kubernetes worker puts into a job pod, its own
    PREFECT_API_URL included (prefect-kubernetes hands the worker's settings on)."""
    import prefect.context
    from prefect.settings import Settings as PrefectSettings

    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    for name, value in _worker_env(target_env(target)).items():
        monkeypatch.setenv(name, value)
    worker_settings = PrefectSettings()
    context = prefect.context.get_settings_context()
    with prefect.context.SettingsContext(profile=context.profile, settings=worker_settings):
        return render(target, framework, monkeypatch)


def _pod_env(manifest: dict[str, Any]) -> dict[str, str]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _assert_no_loopback(target: str, env: dict[str, str]) -> None:
    for name, value in env.items():
        for lit in LOOPBACK:
            assert lit not in value, (
                f"{target}: a pod gets {name}={value!r}; {lit} inside a pod is the pod itself. "
                "Use the advertised address (VTP_ADVERTISE_HOST, VTP_API_URL, PREFECT_API_URL in deploy/env/)")


@pytest.mark.parametrize("target", K8S_TARGETS)
@pytest.mark.parametrize("framework", pool_frameworks())
def test_pods_get_the_advertised_addresses_never_loopback(target, framework, monkeypatch, tmp_path) -> None:
    env_file = target_env(target)
    env = _pod_env(render_in_worker(target, framework, monkeypatch, tmp_path))
    _assert_no_loopback(target, env)
    assert env["VTP_API_URL"] == env_file["VTP_API_URL"], "the run calls the API back at the env file's URL"
    assert env["PREFECT_API_URL"] == env_file["PREFECT_API_URL"], (
        "the job pod must get the Prefect API URL the worker was given (ConfigMap vtp-endpoints)")
    # S3 goes to the cluster's own MinIO (or the cloud's): never a port-forward on someone's loopback
    _assert_no_loopback(target, {"VTP_S3_ENDPOINT_URL": env_file["VTP_S3_ENDPOINT_URL"]})
    if target == "kind":
        from urllib.parse import urlsplit

        advertised = env_file["VTP_ADVERTISE_HOST"]
        assert advertised == "172.18.0.1", "kind.env's default: the kind network's usual gateway"
        assert {urlsplit(env["VTP_API_URL"]).hostname, urlsplit(env["PREFECT_API_URL"]).hostname} == {advertised}


def test_kind_follows_vtp_advertise_host(monkeypatch, tmp_path) -> None:
    """Another gateway (up.sh reads it from `docker network inspect kind`) reaches every pod: the
    env file derives both URLs from VTP_ADVERTISE_HOST, as the shell that sources it does."""
    monkeypatch.setenv("VTP_ADVERTISE_HOST", "10.89.0.1")
    env_file = target_env("kind")
    assert env_file["VTP_API_URL"] == "http://10.89.0.1:8000"
    assert env_file["PREFECT_API_URL"] == "http://10.89.0.1:4200/api"
    env = _pod_env(render_in_worker("kind", "ultralytics", monkeypatch, tmp_path))
    assert env["VTP_API_URL"] == "http://10.89.0.1:8000" and env["PREFECT_API_URL"] == "http://10.89.0.1:4200/api"
    shell = subprocess.run(["bash", "-c", "set -a; . deploy/env/kind.env; set +a; echo $VTP_API_URL $PREFECT_API_URL"],
                           cwd=PROJECT_DIR, capture_output=True, text=True, env={"PATH": os.environ["PATH"],
                                                                                  "VTP_ADVERTISE_HOST": "10.89.0.1"})
    assert shell.stdout.split() == ["http://10.89.0.1:8000", "http://10.89.0.1:4200/api"], shell.stderr


def test_the_check_has_teeth(monkeypatch, tmp_path) -> None:
    """A loopback address in the env file is caught."""
    monkeypatch.setenv("VTP_ADVERTISE_HOST", "127.0.0.1")
    env = _pod_env(render_in_worker("kind", "timm", monkeypatch, tmp_path))
    with pytest.raises(AssertionError, match="127.0.0.1"):
        _assert_no_loopback("kind", env)


def test_committed_templates_and_worker_hold_no_address() -> None:
    """The job templates leave every address to the env file and the worker; worker.yaml names no
    host either (the ConfigMap up.sh writes does)."""
    for target in K8S_TARGETS:
        text = json.dumps(load_template(target))
        assert not any(lit in text for lit in LOOPBACK), f"deploy/k8s/{target}.json holds a loopback address"
    env = {e["name"]: e for e in yaml.safe_load(WORKER_YAML.read_text())["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert "value" not in env["PREFECT_API_URL"], "worker.yaml must take PREFECT_API_URL from vtp-endpoints"


def test_settings_bind_loopback_and_advertise_what_they_are_told(monkeypatch) -> None:
    """Secure by default: both servers listen on loopback and say so; VTP_ADVERTISE_HOST changes
    the URLs others are given, and `vtp up` refuses an advertised address nothing would listen on."""
    from cli.stack import check_advertised
    from core.settings import Settings

    for name in ("VTP_PREFECT_HOST", "VTP_API_HOST", "VTP_ADVERTISE_HOST", "VTP_API_URL", "VTP_PREFECT_API_URL",
                 "VTP_API_PORT", "VTP_PREFECT_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert (s.prefect_host, s.api_host) == ("127.0.0.1", "127.0.0.1")
    assert (s.prefect_api_url, s.api_url) == ("http://127.0.0.1:4200/api", "http://127.0.0.1:8000")
    check_advertised(s)
    monkeypatch.setenv("VTP_ADVERTISE_HOST", "172.18.0.1")
    with pytest.raises(RuntimeError, match="VTP_PREFECT_HOST=127.0.0.1"):
        check_advertised(Settings(_env_file=None))
    monkeypatch.setenv("VTP_PREFECT_HOST", "172.18.0.1")
    monkeypatch.setenv("VTP_API_HOST", "0.0.0.0")
    s = Settings(_env_file=None)
    check_advertised(s)
    assert (s.prefect_api_url, s.api_url) == ("http://172.18.0.1:4200/api", "http://172.18.0.1:8000")
    monkeypatch.delenv("VTP_ADVERTISE_HOST")
    s = Settings(_env_file=None)
    assert (s.prefect_api_url, s.api_url) == ("http://172.18.0.1:4200/api", "http://127.0.0.1:8000")
