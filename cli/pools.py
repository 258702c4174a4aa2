"""Work pools for every target: process pools on this machine, Kubernetes pools for Kind and cloud.

The Kubernetes base job templates are prefect-kubernetes' own default plus what training needs:
a GPU limit, CPU/memory requests and limits, node selector and tolerations, a memory-backed
/dev/shm for data loaders, the run token and the storage credentials from Secrets (never plain
env), and a TTL on finished Jobs. They are generated here and committed as
``deploy/k8s/<target>.json`` (``vtp pools render --write``); ``vtp pools create`` reads those files
and fills in what differs per environment (image, namespace, pull policy) from the environment.

Numbers (the Job TTL) are template defaults, not prefect.yaml values: a value templated from the
environment is a string, and the server rejects a string for an integer variable. The GPU count is
a resource quantity, which Kubernetes types as a string, so it is a string variable ("1").
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = PROJECT_DIR / "deploy" / "k8s"
ENV_DIR = PROJECT_DIR / "deploy" / "env"
K8S_TARGETS = ("kind", "k8s")
GPU_RESOURCE = "nvidia.com/gpu"
RUN_TOKEN_ENV = "VTP_RUN_TOKEN"
RUN_TOKEN_KEY = "token"

# Per-target defaults of the variables vtp adds or changes; a deployment or run overrides any.
TARGET_DEFAULTS: dict[str, dict[str, Any]] = {
    "kind": {
        "gpu_limit": "0", "cpu_request": "500m", "cpu_limit": "2", "memory_request": "1Gi",
        "memory_limit": "6Gi", "shm_size": "1Gi", "node_selector": {}, "tolerations": [],
        "finished_job_ttl": 3600, "image_pull_policy": "IfNotPresent",
    },
    "k8s": {
        "gpu_limit": "1", "cpu_request": "4", "cpu_limit": "8", "memory_request": "16Gi",
        "memory_limit": "32Gi", "shm_size": "8Gi", "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "finished_job_ttl": 86400, "image_pull_policy": "Always",
    },
}

_EXTRA_VARIABLES: dict[str, dict[str, Any]] = {
    # A resource quantity, which the Kubernetes schema types as a string ("1", not 1).
    "gpu_limit": {"title": "GPUs", "type": "string", "pattern": "^[0-9]+$",
                  "description": f"{GPU_RESOURCE} limit of the training container (\"0\" = CPU only)."},
    "node_selector": {"title": "Node selector", "type": "object", "additionalProperties": {"type": "string"},
                      "description": "Labels a node must have, e.g. a GPU node pool."},
    "tolerations": {"title": "Tolerations", "type": "array", "items": {"type": "object"},
                    "description": "Pod tolerations, e.g. for tainted GPU nodes."},
    "shm_size": {"title": "Shared memory", "type": "string",
                 "description": "Size of the memory-backed /dev/shm (PyTorch data loader workers)."},
    "run_token_secret": {
        "title": "Run token Secret", "type": "string", "default": "vtp-run-token",
        "description": f"Secret whose key '{RUN_TOKEN_KEY}' becomes {RUN_TOKEN_ENV} (optional: the run "
                       "still starts without it, it just cannot call the API back)."},
    "storage_secret": {
        "title": "Storage Secret", "type": "string", "default": "vtp-storage",
        "description": "Secret loaded as environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)."},
}


def build_k8s_template(target: str) -> dict[str, Any]:
    """prefect-kubernetes' default base job template with vtp's training additions for ``target``."""
    from prefect_kubernetes.worker import KubernetesWorker

    if target not in K8S_TARGETS:
        raise ValueError(f"{target!r} is not a Kubernetes target; use one of {', '.join(K8S_TARGETS)}")
    template = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    props: dict[str, Any] = template["variables"]["properties"]
    props.update(copy.deepcopy(_EXTRA_VARIABLES))
    for name, default in TARGET_DEFAULTS[target].items():
        props[name]["default"] = default
        if props[name].get("anyOf"):  # e.g. cpu_limit: string | null -> a concrete default
            props[name].pop("anyOf")
            props[name]["type"] = "integer" if isinstance(default, int) else "string"

    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    pod["nodeSelector"] = "{{ node_selector }}"
    pod["tolerations"] = "{{ tolerations }}"
    pod["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "{{ shm_size }}"}}]
    container = pod["containers"][0]
    container["resources"]["limits"][GPU_RESOURCE] = "{{ gpu_limit }}"
    container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    # A list instead of "{{ env }}": prefect-kubernetes puts the deployment's env in front of it
    # and keeps these entries, so the token and credentials never appear as plain values.
    container["env"] = [{"name": RUN_TOKEN_ENV, "valueFrom": {"secretKeyRef": {
        "name": "{{ run_token_secret }}", "key": RUN_TOKEN_KEY, "optional": True}}}]
    container["envFrom"] = [{"secretRef": {"name": "{{ storage_secret }}", "optional": True}}]
    return template


def template_path(target: str) -> Path:
    return TEMPLATE_DIR / f"{target}.json"


def write_templates() -> list[Path]:
    """Regenerate deploy/k8s/<target>.json from the installed prefect-kubernetes."""
    paths = []
    for target in K8S_TARGETS:
        path = template_path(target)
        path.write_text(json.dumps(build_k8s_template(target), indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def load_template(target: str) -> dict[str, Any]:
    return json.loads(template_path(target).read_text())


def image_for(framework: str, env: dict[str, str]) -> str:
    """``<VTP_IMAGE_REGISTRY>/vtp-<framework>:<VTP_IMAGE_TAG>``: one image per trainer (docker/)."""
    registry = env.get("VTP_IMAGE_REGISTRY", "localhost:5001").rstrip("/")
    return f"{registry}/vtp-{framework}:{env.get('VTP_IMAGE_TAG', 'dev')}"


def pool_template(target: str, framework: str, env: dict[str, str]) -> dict[str, Any]:
    """The committed template for ``target`` with this environment's image, namespace and secrets."""
    template = load_template(target)
    props = template["variables"]["properties"]
    props["image"]["default"] = image_for(framework, env)
    props["namespace"]["default"] = env.get("VTP_K8S_NAMESPACE", "vtp")
    if env.get("VTP_IMAGE_PULL_POLICY"):
        props["image_pull_policy"]["default"] = env["VTP_IMAGE_PULL_POLICY"]
    if env.get("VTP_STORAGE_SECRET"):
        props["storage_secret"]["default"] = env["VTP_STORAGE_SECRET"]
    return template


def load_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (shell-compatible; comments and blanks ignored), values as strings."""
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(path).items()}


def pool_frameworks(prefect_file: Path = PROJECT_DIR / "prefect.yaml") -> list[str]:
    """The frameworks prefect.yaml deploys (pool names ``<framework>-{{ $VTP_TARGET }}``), so every
    deployment in it finds its pool; in order, without repeats."""
    config = yaml.safe_load(prefect_file.read_text())
    names = [d["work_pool"]["name"] for d in config["deployments"]]
    found = [n.split("-{{", 1)[0] for n in names if "{{ $VTP_TARGET }}" in n]
    return list(dict.fromkeys(found))


def deployments_for(frameworks: list[str], prefect_file: Path = PROJECT_DIR / "prefect.yaml") -> list[str]:
    """Names of the deployments in prefect.yaml whose pool (``<framework>-{{ $VTP_TARGET }}``) belongs
    to one of ``frameworks``, in file order: what `vtp up` deploys for the registered trainers."""
    config = yaml.safe_load(prefect_file.read_text())
    wanted = {f"{fw}-{{{{ $VTP_TARGET }}}}" for fw in frameworks}
    return [d["name"] for d in config["deployments"] if d["work_pool"]["name"] in wanted]


def ensure_pools(target: str, env: dict[str, str], frameworks: list[str] | None = None) -> list[str]:
    """Create or update the pool ``<framework>-<target>`` for each framework; returns the names.

    The Prefect API used is the current one (PREFECT_API_URL)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    from cli.prefect_setup import process_job_template

    names = []
    with get_client(sync_client=True) as client:
        for fw in frameworks or pool_frameworks():
            name = f"{fw}-{target}"
            if target == "process":
                kind, template = "process", process_job_template()
            else:
                kind, template = "kubernetes", pool_template(target, fw, env)
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type=kind, base_job_template=template,
                    description=f"vtp {fw} trainers ({target})"))
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
            names.append(name)
    return names


def run_token_secret(name: str, token: str, namespace: str) -> dict[str, Any]:
    """The Secret a submitter creates for one run when it passes ``run_token_secret=name`` as a job
    variable instead of the ``run_token`` parameter (see docs/deploy.md for the trade-off)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "vtp"}},
            "stringData": {RUN_TOKEN_KEY: token}}


pools_app = typer.Typer(help="Kubernetes work pools for the kind and k8s targets.", no_args_is_help=True)


@pools_app.command("create")
def pools_create(
    target: Annotated[str, typer.Option(help="process | kind | k8s")],
    env_file: Annotated[Path | None, typer.Option(help="Default: deploy/env/<target>.env")] = None,
) -> None:
    """Create or update the pools <framework>-<target> from deploy/k8s/<target>.json."""
    env = {**load_env_file(env_file or ENV_DIR / f"{target}.env"), **_vtp_environ()}
    if target not in ("process", *K8S_TARGETS):
        raise typer.BadParameter(f"{target!r}: use process, kind or k8s")
    os.environ.setdefault("PREFECT_API_URL", env.get("PREFECT_API_URL", "http://127.0.0.1:4200/api"))
    for name in ensure_pools(target, env):
        typer.echo(f"work pool {name}")


@pools_app.command("render")
def pools_render(write: Annotated[bool, typer.Option(help="Rewrite deploy/k8s/*.json")] = False) -> None:
    """Print (or write) the Kubernetes base job templates generated from prefect-kubernetes' default."""
    if write:
        for path in write_templates():
            typer.echo(f"wrote {path.relative_to(PROJECT_DIR)}")
        return
    typer.echo(json.dumps({t: build_k8s_template(t) for t in K8S_TARGETS}, indent=2))


def _vtp_environ() -> dict[str, str]:
    """VTP_* already in the environment win over the file (one knob to override one value)."""
    return {k: v for k, v in os.environ.items() if k.startswith("VTP_")}
