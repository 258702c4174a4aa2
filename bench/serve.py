"""`vtp serve` against a plain `YOLO(...).predict` loop on the same images, side by side.

    uv run python bench/serve.py [--formats pytorch,onnx,openvino] [--requests 160] [--imgsz 320]

It trains a yolo11n for one epoch on generated shapes (the weights' quality does not matter for speed),
exports it, promotes one registry version per format (in a temporary VTP_HOME with SQLite and file
storage), and for each format:

- **plain**: one process, ``YOLO(artifact).predict(image)`` on each image in turn (what a person writes
  without a server): images/s and p50/p99 latency per image;
- **vtp serve**: a real `vtp serve` process (LitServe, batches of up to 8 within 10 ms); ``--requests``
  JSON requests (base64 JPEG) from a thread pool at concurrency 1, 8 and 32: requests/s and p50/p99
  latency per request, measured at the client, HTTP and JSON included.

The last line is machine-readable, for the fastest format at concurrency 32:
``format=… rps=… p99_ms=… ratio_vs_plain=…`` (ratio: served requests/s over the plain loop's images/s).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def build(base: Path, formats: list[str], imgsz: int) -> tuple[dict[str, str], dict[str, dict], list[Path], str]:
    """(environment, {format: version}, images, API token) of a fresh registry home."""
    from api import crud, registry
    from api.db import migrate, session_scope
    from api.tokens import create_token
    from core.contracts import Callbacks, TrainContext
    from core.settings import Settings
    from core.spec import parse_spec
    from tasks.dataset_formats import prepare_local
    from tasks.export import export_and_check
    from tasks.samples import make_sample
    from tasks.storage import Storage, upload_folder
    from tasks.train_steps import collect_outputs
    from trainers.ultralytics import train

    env = {"VTP_HOME": str(base / "home"), "VTP_STORAGE_URL": (base / "storage").as_uri(),
           "VTP_DATABASE_URL": f"sqlite:///{base / 'vtp.db'}", "VTP_TRACKERS": "", "YOLO_OFFLINE": "1"}
    settings = Settings(**{k.removeprefix("VTP_").lower(): v for k, v in env.items() if k.startswith("VTP_")})
    migrate(settings.database_url)
    sample = make_sample("shapes-detect", base / "data", n_train=8, n_val=16, image_size=imgsz)
    spec = parse_spec({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 1, "image_size": imgsz,
                       "batch_size": 8, "workers": 0, "pretrained": False})
    info = prepare_local(sample, "detect", base / "work" / "dataset")
    result = train(spec, TrainContext(workdir=base / "work" / "run", dataset=info, callbacks=Callbacks(),
                                      weights_dir=base / "work" / "weights"))
    out = base / "outputs"
    collect_outputs(result, out)
    rows = [export_and_check(spec.model_dump(mode="json"), result.best_checkpoint, f, out, None)
            for f in formats if f != "pytorch"]
    (out / "exports" / "report.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "exports" / "report.json").write_text(json.dumps({"rows": rows}))
    versions = {}
    with session_scope(settings) as db:
        run = crud.create_run(db, spec=spec.model_dump(mode="json"))
        crud.update_run(db, run=run, state="completed")
        storage = Storage(settings=settings)
        run_uri = storage.uri("runs", run.id)
        (out / "summary.json").write_text(json.dumps({"spec": spec.model_dump(mode="json"), "run_uri": run_uri,
                                                      "metrics": result.metrics,
                                                      "checkpoint_uri": f"{run_uri}/checkpoints/best.pt"}))
        upload_folder(storage, out, "runs", run.id, run_id=run.id)
        for fmt in formats:
            version, _ = registry.promote(db, settings, run, "bench", [fmt], export=None if fmt == "pytorch" else fmt)
            versions[fmt] = registry.version_dict(version)
        token = create_token(db, name="bench").token
    images = sorted((sample / "images" / "val").glob("*.jpg"))
    return env, versions, images, token


def plain(artifact: Path, images: list[Path], imgsz: int, n: int) -> dict[str, float]:
    """A plain loop, in this process: YOLO(artifact).predict(image) per image."""
    from ultralytics import YOLO

    model = YOLO(str(artifact), task="detect")
    model.predict(str(images[0]), imgsz=imgsz, verbose=False)  # warm-up
    times = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        model.predict(str(images[i % len(images)]), imgsz=imgsz, verbose=False)
        times.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    return {"rps": n / wall, "p50_ms": statistics.median(times), "p99_ms": percentile(times, 99)}


def served(env: dict[str, str], fmt: str, images: list[Path], token: str, n: int) -> dict[int, dict[str, float]]:
    import httpx

    from tests.integration.conftest import free_port

    port = free_port()
    log = open(Path(env["VTP_HOME"]).parent / f"serve-{fmt}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", f"bench@{fmt}", "--port", str(port),
                             "--max-batch-size", "8", "--batch-timeout-ms", "10"],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    bodies = []
    for path in images:
        buf = io.BytesIO(path.read_bytes())
        bodies.append({"image": base64.b64encode(buf.getvalue()).decode(), "conf": 0.25})
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"vtp serve ({fmt}) did not start: see {log.name}")
            try:
                if httpx.get(f"{url}/health", headers=auth, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out = {}
        with httpx.Client(headers=auth, timeout=120, limits=httpx.Limits(max_connections=64)) as client:
            for _ in range(8):  # warm-up
                client.post(f"{url}/predict", json=bodies[0]).raise_for_status()

            def one(i: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                r = client.post(f"{url}/predict", json=bodies[i % len(bodies)])
                r.raise_for_status()
                return (time.perf_counter() - t0) * 1000, r.json()["batch"]

            for concurrency in (1, 8, 32):
                start = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as ex:
                    results = list(ex.map(one, range(n)))
                wall = time.perf_counter() - start
                times = [t for t, _ in results]
                out[concurrency] = {"rps": n / wall, "p50_ms": statistics.median(times),
                                    "p99_ms": percentile(times, 99),
                                    "mean_batch": statistics.mean(b for _, b in results)}
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="pytorch,onnx,openvino")
    parser.add_argument("--requests", type=int, default=160, help="requests per concurrency level")
    parser.add_argument("--imgsz", type=int, default=320)
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="vtp-bench-serve-") as tmp:
        env, versions, images, token = build(Path(tmp), formats, args.imgsz)
        print(f"machine: {os.cpu_count()} CPUs; yolo11n at {args.imgsz} px; {len(images)} distinct images; "
              f"{args.requests} requests per level")
        print(f"{'format':<10} {'who':<16} {'req or img/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10}")
        best = None
        for fmt in formats:
            v = versions[fmt]
            folder_files = Path(env["VTP_HOME"]) / "serve" / v["id"]
            served_figures = served(env, fmt, images, token, args.requests)
            artifact = folder_files / (v["record"]["export"]["path"] if v["record"].get("export")
                                       else v["record"]["checkpoint"])
            base = plain(artifact, images, args.imgsz, args.requests)
            print(f"{fmt:<10} {'plain loop':<16} {base['rps']:>12.1f} {base['p50_ms']:>8.1f} {base['p99_ms']:>8.1f} {'':>10}")
            for c, f in served_figures.items():
                print(f"{fmt:<10} {f'vtp serve c={c}':<16} {f['rps']:>12.1f} {f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f} "
                      f"{f['mean_batch']:>10.2f}")
            top = served_figures[32]
            if best is None or top["rps"] > best[1]["rps"]:
                best = (fmt, top, base)
        fmt, top, base = best
        print(f"format={fmt} rps={top['rps']:.1f} p99_ms={top['p99_ms']:.1f} "
              f"ratio_vs_plain={top['rps'] / base['rps']:.2f}")


if __name__ == "__main__":
    main()
