"""Kind's MinIO bucket and advertised addresses (issue 18), checked statically and through
deploy/kind/up.sh run against stub docker / kind / kubectl / uv (no cluster runs here): the bucket Job
makes the bucket of kind.env's VTP_STORAGE_URL with the Secret's credentials by reference, from a
pinned image; up.sh waits for MinIO, applies the Job, waits for it, and gives the in-cluster worker
the advertised Prefect URL (the kind network's gateway), never loopback."""

from __future__ import annotations

import json
import shutil
from urllib.parse import urlsplit

import pytest
import yaml

from cli.pools import ENV_DIR, load_env_file
from tests.deploy.test_docker_files import COMPOSE_FILE, KIND_DIR, UpSh, _as_k8s_object, _kind

BUCKET_JOB = KIND_DIR / "minio-bucket.yaml"
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _job() -> dict:
    return _kind("Job", "minio-bucket")


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_bucket_job_is_a_valid_job_in_the_vtp_namespace():
    job = _job()
    assert type(_as_k8s_object(job)).__name__ == "V1Job"
    assert job["metadata"]["namespace"] == "vtp"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert job["spec"].get("backoffLimit", 6) >= 1, "MinIO may still be starting: the Job needs retries"


def test_bucket_job_makes_the_bucket_kind_env_stores_in():
    bucket = urlsplit(load_env_file(ENV_DIR / "kind.env")["VTP_STORAGE_URL"]).netloc
    container = _container(_job())
    args = container.get("command", []) + container.get("args", [])
    assert args[-3:-1] == ["mb", "--ignore-existing"], f"mc mb --ignore-existing (a rerun is harmless): {args}"
    alias, made = args[-1].split("/", 1)
    assert made == bucket, f"the Job makes bucket {made!r}, kind.env's VTP_STORAGE_URL uses {bucket!r}"
    env = {e["name"]: e for e in container["env"]}
    host = env[f"MC_HOST_{alias}"]["value"]
    endpoint = load_env_file(ENV_DIR / "kind.env")["VTP_S3_ENDPOINT_URL"]
    assert host.startswith("http://") and host.endswith("@" + urlsplit(endpoint).netloc), (
        f"the alias must point at kind.env's endpoint {endpoint}: {host}")


def test_bucket_job_takes_credentials_from_the_secret_by_reference_only():
    container = _container(_job())
    env = {e["name"]: e for e in container["env"]}
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var].get("valueFrom") == {"secretKeyRef": {"name": "vtp-storage", "key": var}}, (
            f"the Job's {var} must come from the Secret vtp-storage (as MinIO's own do)")
    minio = {e["name"]: e for e in _kind("Deployment", "minio")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in minio.values()} == {"vtp-storage"}
    # The alias URL carries the credentials only as $(VAR) references, expanded in the container.
    host = next(e["value"] for name, e in env.items() if name.startswith("MC_HOST_"))
    assert host.startswith("http://$(AWS_ACCESS_KEY_ID):$(AWS_SECRET_ACCESS_KEY)@"), host
    plain = json.dumps([a for a in container.get("args", []) + container.get("command", [])])
    assert "AWS_" not in plain and "$(" not in plain, "credentials on the command line show in ps"


def test_bucket_job_runs_a_pinned_mc_image_as_non_root():
    container = _container(_job())
    image = container["image"]
    assert image.startswith("minio/mc:RELEASE.") and not image.endswith(":latest"), image
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert image == compose["services"]["minio-init"]["image"], "one mc version for compose and Kind"
    pod = _job()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


@needs_bash
def test_up_sh_waits_for_minio_then_applies_and_waits_for_the_bucket_job(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    out = up.run()
    assert out.returncode == 0, out.stderr
    calls = up.calls.splitlines()

    def at(fragment: str) -> int:
        found = [i for i, c in enumerate(calls) if fragment in c]
        assert found, f"up.sh never ran `{fragment}`:\n{up.calls}"
        return found[0]

    secret, minio = at("vtp/vtp-storage"), at("-f deploy/kind/minio.yaml")
    ready = at("rollout status deployment/minio")
    delete, apply, wait = at("delete job minio-bucket"), at(f"-f deploy/kind/{BUCKET_JOB.name}"), at("wait --for=condition=complete job/minio-bucket")
    assert secret < minio < ready < delete < apply < wait < at("vtp pools create"), (
        "order: Secret, MinIO, MinIO ready, old Job removed, Job applied, Job complete, then pools")
    assert "port-forward svc/minio 127.0.0.1:" in out.stdout, "up.sh says how the host reaches MinIO"


@needs_bash
def test_up_sh_stops_when_the_bucket_job_fails(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    fail = up.bin / "kubectl"
    real = fail.read_text()
    fail.write_text(real.replace('tool, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]\n',
                                 'tool, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]\n'
                                 'if "wait" in args and "job/minio-bucket" in args: sys.exit(1)\n', 1))
    out = up.run()
    assert out.returncode != 0 and "logs job/minio-bucket" in out.stderr, out.stderr
    assert "vtp pools create" not in up.calls


def _worker_url(up: UpSh) -> str:
    return yaml.safe_load((up.state / "secret-vtp-endpoints.yaml").read_text())["data"]["PREFECT_API_URL"]


@needs_bash
def test_up_sh_advertises_the_kind_gateway_to_the_worker_and_the_deployments(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    out = up.run(STUB_KIND_GATEWAYS="172.19.0.1 fc00:f853:ccd:e793::1 ")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load((up.state / "secret-vtp-endpoints.yaml").read_text())
    assert doc["kind"] == "ConfigMap" and type(_as_k8s_object(doc)).__name__ == "V1ConfigMap"
    assert _worker_url(up) == "http://172.19.0.1:4200/api"
    assert up.calls.index("vtp/vtp-endpoints") < up.calls.index("deploy/kind/worker.yaml"), "worker before its URL"
    urls = [json.loads(line) for line in (up.state / "uv-urls.log").read_text().splitlines()]
    assert urls and all(u == {"PREFECT_API_URL": "http://172.19.0.1:4200/api", "VTP_API_URL": "http://172.19.0.1:8000",
                              "VTP_ADVERTISE_HOST": "172.19.0.1"} for u in urls), urls
    # the same gateway again: nothing rewritten, no restart
    again = up.run(STUB_KIND_GATEWAYS="172.19.0.1")
    assert again.returncode == 0 and "stdin:" not in up.calls and "rollout restart" not in up.calls, up.calls
    # a new gateway: the ConfigMap follows and the worker restarts to read it
    moved = up.run(STUB_KIND_GATEWAYS="172.20.0.1")
    assert moved.returncode == 0, moved.stderr
    assert _worker_url(up) == "http://172.20.0.1:4200/api"
    assert "rollout restart deployment/prefect-worker" in up.calls


@needs_bash
def test_up_sh_falls_back_to_kind_env_and_obeys_an_explicit_advertise_host(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    assert up.run().returncode == 0  # docker reports no gateway: kind.env's 172.18.0.1
    assert _worker_url(up) == "http://172.18.0.1:4200/api"
    out = up.run(STUB_KIND_GATEWAYS="172.19.0.1", VTP_ADVERTISE_HOST="192.168.49.1")
    assert out.returncode == 0, out.stderr
    assert _worker_url(up) == "http://192.168.49.1:4200/api", "an explicit VTP_ADVERTISE_HOST wins"


@needs_bash
def test_up_sh_refuses_a_loopback_advertised_address(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    out = up.run(VTP_ADVERTISE_HOST="127.0.0.1")
    assert out.returncode != 0 and "loopback" in out.stderr, out.stderr
    assert "kubectl apply -f deploy/kind/worker.yaml" not in up.calls


@needs_bash
def test_up_sh_stops_before_the_pools_when_no_prefect_server_answers_at_the_advertised_address(tmp_path):
    up = UpSh(tmp_path)
    up.save_auth("vtp:abc")
    uv = up.bin / "uv"
    uv.write_text(uv.read_text().replace('tool, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]\n',
                                         'tool, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]\n'
                                         'if args[:2] == ["run", "python"]: sys.exit(1)\n', 1))
    out = up.run(STUB_KIND_GATEWAYS="172.19.0.1")
    assert out.returncode != 0, out.stdout
    assert "no Prefect server answers at http://172.19.0.1:4200/api" in out.stderr, out.stderr
    assert "VTP_PREFECT_HOST=172.19.0.1 VTP_API_HOST=172.19.0.1 VTP_ADVERTISE_HOST=172.19.0.1" in out.stderr
    assert "vtp pools create" not in up.calls and "deploy --all" not in up.calls
    assert "port-forward svc/minio" in out.stdout, "the MinIO hint comes before the stop: the host needs it first"
