"""What vtp costs on top of the framework: the same spec (a) through vtp — deployment, worker,
storage, validation, upload — and (b) as a plain ultralytics run in a fresh Python process,
alternately, with the same data and the same training arguments.

    uv run python bench/overhead.py                 # about a minute per run on 2 CPU cores
    uv run python bench/overhead.py --epochs 3 --repeats 1   # a quick look

It starts its own `vtp up` stack in a temporary VTP_HOME. Printed per repeat: both wall times, the
time inside the plain run's `.train()` call, submit->flow Running and submit->first epoch (server
timestamps). The last line is machine-readable (medians):
ratio=… submit_to_running_s=… submit_to_first_epoch_s=…
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLAIN = r"""
import json, sys, time
t0 = time.time()
from trainers.ultralytics import env
env.prepare()
from ultralytics import YOLO
args = json.loads(sys.argv[1])
model = YOLO(args.pop("model") + ".yaml")
t1 = time.time()
model.train(**args)
t2 = time.time()
print("PLAIN_TIMES " + json.dumps({"import_s": t1 - t0, "train_call_s": t2 - t1}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_plain(args: dict, env: dict) -> dict:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", PLAIN, json.dumps(args)], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    wall = time.time() - t0
    if out.returncode != 0:
        raise SystemExit(f"plain run failed:\n{out.stderr[-3000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("PLAIN_TIMES "))
    return {"wall_s": wall, **json.loads(line.removeprefix("PLAIN_TIMES "))}


def run_vtp(spec) -> dict:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from cli.submit import TERMINAL, submit
    from core.prefect_api import prefect_client

    t0 = time.time()
    run_id = submit(spec)
    with prefect_client() as client:
        while True:
            fr = client.read_flow_run(run_id)
            if fr.state and fr.state.type.value in TERMINAL:
                break
            time.sleep(0.1)
        wall = time.time() - t0
        if not fr.state.is_completed():
            raise SystemExit(f"vtp run {run_id} ended {fr.state.name}: {fr.state.message}")
        states = client.read_flow_run_states(run_id)
        running = min(s.timestamp for s in states if s.type.value == "RUNNING").timestamp()
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        first = min(log.timestamp.timestamp() for log in logs if log.message.startswith("epoch 1/"))
    return {"wall_s": wall, "submit_to_running_s": running - t0, "submit_to_first_epoch_s": first - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="yolo11n")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-val", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="vtp-bench-"))
    os.environ.update({"VTP_HOME": str(home), "VTP_PREFECT_PORT": str(free_port()), "VTP_API_PORT": str(free_port()), "VTP_UI_PORT": str(free_port()),
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "YOLO_OFFLINE": "1"})
    os.environ.pop("VTP_STORAGE_URL", None)
    from cli.stack import Stack
    from core.settings import apply_prefect_env, get_settings
    from core.spec import parse_spec
    from tasks.dataset_formats import prepare_local
    from tasks.dataset_ingest import ingest_sample
    from tasks.dataset_store import download
    from tasks.storage import Storage

    settings = get_settings()
    apply_prefect_env(settings)
    stack = Stack(settings)
    print(f"bench home {home}; starting the stack ...", flush=True)
    stack.up(echo=lambda *_: None)
    try:
        if not stack.wait_zygote():
            print("warning: the warm launcher did not come up; vtp runs start cold", flush=True)
        ingest_sample("shapes-detect", "bench-detect", n_train=opts.n_train, n_val=opts.n_val,
                      storage=Storage(settings=settings))
        spec = parse_spec({"model": opts.model, "dataset": "bench-detect", "epochs": opts.epochs,
                           "image_size": opts.image_size, "batch_size": opts.batch_size, "pretrained": False,
                           "workers": 2, "patience": 0, "device": "cpu"})
        # the plain run gets the same local copy of the data that vtp's cache holds
        local, _, _ = download(Storage(settings=settings), "bench-detect", settings.cache_root)
        info = prepare_local(local, "detect", home / "plain")
        plain_args = {"model": spec.model, "data": str(info.data_yaml), "epochs": spec.epochs,
                      "imgsz": spec.image_size, "batch": spec.batch_size, "device": "cpu", "seed": spec.seed,
                      "patience": spec.patience, "workers": spec.workers, "project": str(home / "plain"),
                      "name": "train", "exist_ok": True, "pretrained": False, "verbose": True}
        plain_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        rows = []
        for i in range(opts.repeats):
            plain = run_plain(plain_args, plain_env)
            vtp = run_vtp(spec)
            rows.append((plain, vtp))
            print(f"repeat {i + 1}: plain {plain['wall_s']:.1f}s (train() {plain['train_call_s']:.1f}s, "
                  f"imports {plain['import_s']:.1f}s) | vtp {vtp['wall_s']:.1f}s | ratio "
                  f"{vtp['wall_s'] / plain['wall_s']:.3f} (vs train() {vtp['wall_s'] / plain['train_call_s']:.3f}) | "
                  f"submit->running {vtp['submit_to_running_s']:.2f}s | submit->first epoch "
                  f"{vtp['submit_to_first_epoch_s']:.2f}s", flush=True)
    finally:
        stack.stop()

    med = statistics.median
    ratio = med(v["wall_s"] / p["wall_s"] for p, v in rows)
    ratio_call = med(v["wall_s"] / p["train_call_s"] for p, v in rows)
    print(f"spec: {opts.model} {opts.epochs} epochs, {opts.n_train}+{opts.n_val} images at {opts.image_size}px, "
          f"batch {opts.batch_size}, cpu; {opts.repeats} alternating repeats; medians below")
    print(f"plain_wall_s={med(p['wall_s'] for p, _ in rows):.2f} vtp_wall_s={med(v['wall_s'] for _, v in rows):.2f} "
          f"ratio_vs_train_call={ratio_call:.3f}")
    print(f"ratio={ratio:.3f} submit_to_running_s={med(v['submit_to_running_s'] for _, v in rows):.2f} "
          f"submit_to_first_epoch_s={med(v['submit_to_first_epoch_s'] for _, v in rows):.2f}")


if __name__ == "__main__":
    main()
