"""A trainer on a second host (issue 18): the timm worker runs in a network namespace of its own (a
veth pair to this host, no other route) and a mount namespace of its own: its work folder is a tmpfs
the host never sees, and the API's VTP_HOME is covered there by an empty read-only tmpfs. It reaches
Prefect, the API and the storage (moto's S3 server) over the network only. A run asked for in the
chat (through the API) trains there, its checkpoint lands in S3, and the API predicts with it; the
host's view of the worker's folder stays empty. Given the API's folder instead, the worker refuses to
start. (It runs as root: this machine's Python lives under /root, which no other user can open.)

Needs root, `ip netns` and `unshare` (CI runs as root); skipped elsewhere."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port
from tests.stack_fixtures import start_moto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture
def netns():
    """A network namespace joined to this host by a veth pair: (name, host address, its address)."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "unshare")):
        pytest.skip("needs root with ip and unshare")
    tag = f"{os.getpid() % 10000}{random.randint(0, 99):02d}"
    name, host_if, ns_if = f"vtpw{tag}", f"vh{tag}", f"vn{tag}"
    routes = _sh("ip", "-4", "route", "show", "table", "all", check=False).stdout + _sh("ip", "-4", "addr", check=False).stdout
    net = next(n for n in (f"10.{random.randint(64, 127)}.{random.randint(0, 255)}" for _ in range(100))
               if f"{n}." not in routes)  # a /30 no interface or route of this machine uses
    host_ip, ns_ip = f"{net}.1", f"{net}.2"
    try:
        _sh("ip", "netns", "add", name)
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _sh("ip", "link", "set", ns_if, "netns", name)
        _sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _sh("ip", "link", "set", host_if, "up")
        _sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _sh("ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up")
        _sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        _sh("ip", "netns", "del", name, check=False)
        pytest.skip(f"cannot make a network namespace here: {e.stderr.strip()}")
    yield name, host_ip, ns_ip
    _sh("ip", "netns", "del", name, check=False)  # takes the veth pair with it
    _sh("ip", "link", "del", host_if, check=False)


def _start(cmd: list[str], log: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115 - closed at exit
                            start_new_session=True, **kw)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT, wait: float = 60) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_for(text: str, log: Path, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (said := log.read_text(errors="replace")):
        assert proc.poll() is None, said[-4000:]
        assert time.monotonic() < deadline, f"no {text!r} within {timeout:.0f} s:\n{said[-4000:]}"
        time.sleep(0.5)
    return said


def test_chat_run_trains_on_a_second_host_through_s3_only(netns, tmp_path):
    name, host_ip, ns_ip = netns
    exe = Path(sys.executable).with_name("vtp")
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    s3_port, prefect_port, api_port = free_port(), free_port(), free_port()
    moto, s3 = start_moto(host_ip, s3_port, tmp_path / "moto.log")
    procs: list[subprocess.Popen] = [moto]
    base = Path(tempfile.mkdtemp(prefix="vtp-second-host-"))
    api_home = base / "api-home"  # the API's folder
    api_home.mkdir(mode=0o700)
    worker_mount = base / "worker-host"  # the worker's tmpfs is mounted here in its own mount namespace
    worker_mount.mkdir()
    try:
        # the whole stack on this host, listening on the veth address; no local worker for timm
        env = {**os.environ, **creds, "VTP_HOME": str(api_home), "VTP_PREFECT_PORT": str(prefect_port),
               "VTP_API_PORT": str(api_port), "VTP_UI_PORT": str(free_port()), "VTP_PREFECT_HOST": host_ip,
               "VTP_API_HOST": host_ip, "VTP_ADVERTISE_HOST": host_ip, "VTP_S3_ENDPOINT_URL": s3,
               "VTP_LOCAL_WORKERS": "ultralytics,huggingface"}
        for key in ("VTP_STORAGE_URL", "VTP_PREFECT_API_URL", "VTP_API_URL", "PREFECT_API_URL", "VTP_DATABASE_URL",
                    "VTP_PREFECT_DATABASE_URL"):
            env.pop(key, None)
        up = _start([str(exe), "up", "--storage", "s3://second-host/stack"], tmp_path / "up.log", env=env)
        procs.append(up)
        said = _wait_for("ready:", tmp_path / "up.log", up, 300)
        assert "no worker here for timm-process" in said and "bucket second-host created" in said

        # the trainer host: its own network and work folder; only URLs and credentials cross
        worker_env = {"PATH": f"{exe.parent}:/usr/local/bin:/usr/bin:/bin", "HOME": f"{worker_mount}/home",
                      "VTP_HOME": f"{worker_mount}/vtp", "VTP_PREFECT_API_URL": f"http://{host_ip}:{prefect_port}/api",
                      "VTP_PREFECT_AUTH_STRING": (api_home / "prefect_auth").read_text().strip(),
                      "VTP_API_URL": f"http://{host_ip}:{api_port}", "VTP_STORAGE_URL": "s3://second-host/stack",
                      "VTP_S3_ENDPOINT_URL": s3, **creds, "PYTHONDONTWRITEBYTECODE": "1", "YOLO_OFFLINE": "1",
                      "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                      "MPLCONFIGDIR": f"{worker_mount}/mpl"}
        as_worker = ["env", "-i", *[f"{k}={v}" for k, v in worker_env.items()]]
        # its own mount namespace: the work folder on a tmpfs the host never sees, and the API's folder
        # covered by an empty read-only tmpfs (what the worker would find there if it looked)
        inner = (f"mount -t tmpfs -o size=2g,mode=0700 vtp-worker {worker_mount} && "
                 f"mount -t tmpfs -o ro,size=1m,mode=0555 api-hidden {api_home} && "
                 f"test -z \"$(ls -A {api_home})\" && echo 'API folder here: empty' && exec \"$@\"")
        in_worker_host = ["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private", "--",
                          "sh", "-c", inner, "sh"]
        worker = _start([*in_worker_host, *as_worker, str(exe), "worker", "timm"], tmp_path / "worker.log",
                        cwd=str(Path(__file__).resolve().parents[2]))
        procs.append(worker)
        said = _wait_for("worker for timm-process", tmp_path / "worker.log", worker, 120)
        assert "API folder here: empty" in said
        reach = _sh("ip", "netns", "exec", name, "ip", "route", check=False).stdout
        assert "default" not in reach  # no way out but the veth pair to this host

        api = f"http://{host_ip}:{api_port}"
        auth = {"Authorization": f"Bearer {(api_home / 'api_token').read_text().strip()}"}
        message = ("model=test_resnet dataset=shapes-classify epochs=1 image_size=32 batch_size=8 workers=0 "
                   "pretrained=false")
        first = httpx.post(f"{api}/api/chat", json={"message": message}, headers=auth, timeout=60).json()
        assert first["ready"] and first["run"] is None, first
        run = httpx.post(f"{api}/api/chat", json={"session_id": first["session_id"], "message": "", "confirm": True},
                         headers=auth, timeout=60).json()["run"]
        assert run is not None
        deadline = time.monotonic() + 600
        while (state := httpx.get(f"{api}/api/runs/{run['id']}", headers=auth, timeout=30).json())["state"] not in (
                "completed", "failed", "crashed", "cancelled"):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-4000:]
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-4000:]
            time.sleep(2)
        assert state["state"] == "completed", (state.get("error"), (tmp_path / "worker.log").read_text()[-4000:])
        assert state["final_metrics"] and state["checkpoint_uri"].startswith("s3://second-host/stack/runs/")
        worker_log = (tmp_path / "worker.log").read_text(errors="replace")
        assert run["id"] in worker_log or state.get("flow_run_id", "") in worker_log  # the netns worker ran it

        import boto3

        keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3, **{k.lower(): v for k, v in creds.items()
                                                                          if k != "AWS_DEFAULT_REGION"},
                                               region_name="us-east-1").list_objects_v2(
            Bucket="second-host", Prefix=f"stack/runs/{run['id']}/")["Contents"]}
        assert f"stack/runs/{run['id']}/checkpoints/best.pt" in keys and f"stack/runs/{run['id']}/manifest.json" in keys

        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
        pred = httpx.post(f"{api}/api/runs/{run['id']}/predict", files={"file": ("x.png", buf.getvalue(), "image/png")},
                          headers=auth, timeout=120)
        assert pred.status_code == 200, pred.text
        assert len(pred.json()["predictions"]) == 3  # the three shape classes, from the checkpoint in S3

        # the worker's work folder never existed for this host: its mount point here is empty
        assert list(worker_mount.iterdir()) == []

        # given the API's folder instead, the worker refuses to start: there it is an empty read-only folder
        wrong = subprocess.run([*in_worker_host, *as_worker, f"VTP_HOME={api_home}", str(exe), "worker", "timm"],
                               capture_output=True, text=True, timeout=120)
        assert wrong.returncode == 1 and f"VTP_HOME={api_home} cannot be this worker's work folder" in wrong.stderr, \
            wrong.stdout + wrong.stderr
    finally:
        for proc in reversed(procs[1:]):
            _stop(proc)
        moto.kill()  # started in this test's process group: stopped on its own
        moto.wait(10)
        shutil.rmtree(base, ignore_errors=True)
