"""A load soak of the whole stack: N training runs of mixed frameworks submitted at once through the
API while K busy-loop CPU hogs keep every core saturated; one run is cancelled through the API once
it is running, another is `kill -9`ed mid-epoch (after its epoch 1 metrics arrive), and the rest
must simply complete.

    uv run python bench/soak.py                          # 6 runs, one hog per core, 5 epochs
    uv run python bench/soak.py --runs 6 --hogs 2 --epochs 4

It starts its own `vtp up` stack (Prefect server, workers, warm launcher, API) in a temporary
VTP_HOME on free ports, with the user defaults except VTP_CRASH_RETRY_DELAY_S=1, and always stops it
(and the hogs) at the end, leaving no process behind. Printed: one line per run (id, model, final
state, epochs done, attempt, events), a summary, and as the last line:

    runs=N completed=C failed=F cancelled=X lost=L false_crash=Z wall_s=S

lost = epochs missing from a completed run's API metrics (each of 1..epochs must be there);
false_crash = runs the soak did not kill that were marked stale, retried, resumed or hung anyway.
The target is: every run that was not cancelled completes (the killed one through crash retry and
resume), lost=0, false_crash=0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.processes import die_with_parent  # noqa: E402 - after the path

FINAL = ("completed", "failed", "cancelled")
ABNORMAL_EVENTS = ("stale", "retrying", "resumed", "hung", "resume_failed")
CRASHED_FINAL_AFTER_S = 300  # a run left Crashed this long is not being retried any more


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hogs(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: die_with_parent(signal.SIGKILL),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(k)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for p in hogs:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
    for p in hogs:
        with contextlib.suppress(Exception):
            p.wait(10)


def _proc_env(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def processes_of_home(home: Path) -> list[int]:
    """Every process whose environment names this soak's VTP_HOME (its stack, forks of the warm
    launcher, training processes), other than this one."""
    mark = f"VTP_HOME={home}".encode()
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and int(p.name) != os.getpid() and mark in _proc_env(int(p.name))]


def training_pid(flow_run_id: str, home: Path, attempt: int = 1, timeout: float = 120) -> int | None:
    """The run's training process, as the crash-recovery test finds it: the flow logs "attempt N,
    pid P" first thing. The process must belong to this soak's stack (VTP_HOME in its environment:
    a fork of this stack's warm launcher, or a `prefect.engine` this stack's worker started). Without
    the log line, a process whose environment names the flow run (a cold `prefect.engine`)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    mark = f"VTP_HOME={home}".encode()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))):
                    m = re.search(rf"attempt {attempt}, pid (\d+) on", log.message)
                    if m and mark in _proc_env(int(m.group(1))):
                        return int(m.group(1))
            want = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
            for pid in processes_of_home(home):
                env = _proc_env(pid)
                if want in env and b"prefect.engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            time.sleep(1)
    return None


def _ts(value: str) -> float:
    from datetime import UTC, datetime

    t = datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def prefect_crashes(flow_run_id: str | None) -> list[tuple[float, str]]:
    """(time, message) of each Crashed state in the flow run's history."""
    if not flow_run_id:
        return []
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run_id)
    return [(s.timestamp.timestamp(), s.message or "") for s in states if s.type.value == "CRASHED"]


def run_notes(run: dict, role: str, crashes: list, home: Path) -> list[str]:
    """What the result line does not count but someone should look at: how the killed run came back
    (one kill should cost one retry and leave a `resumed` event), and whether Prefect agrees with
    the API about how the run ended (a cancelled run must not be trained on by a retry)."""
    import json

    notes = []
    rid = run["id"]
    if role == "killed" and run["state"] == "completed":
        if run["attempt"] > 2 or len(crashes) > 1:
            notes.append(f"killed run {rid}: one kill -9 cost {run['attempt'] - 1} retries ({len(crashes)} Crashed "
                         f"states in Prefect: {'; '.join(m[:80] for _, m in crashes)})")
        if "resumed" not in [e["kind"] for e in run["events"]]:
            notes.append(f"killed run {rid}: completed without a `resumed` event in the API")
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads((home / "storage" / "runs" / rid / "summary.json").read_text())
            if not summary.get("resumed_from_epoch"):
                notes.append(f"killed run {rid}: its summary says it did not resume (attempt "
                             f"{summary.get('attempt')}, resumed_from_epoch {summary.get('resumed_from_epoch')})")
    if run["prefect_flow_run_id"]:
        with contextlib.suppress(Exception):
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                fr = client.read_flow_run(run["prefect_flow_run_id"])
            prefect_state = fr.state.type.value.lower() if fr.state else "none"
            if prefect_state != run["state"] and not (run["state"] == "cancelled" and prefect_state == "failed"):
                notes.append(f"run {rid}: the API says {run['state']}, Prefect says {fr.state.name} "
                             f"(run_count {fr.run_count})")
    return notes


def tiny_vit(folder: Path) -> Path:
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=64,
              patch_size=16).save_pretrained(folder)
    return folder


def run_specs(n: int, epochs: int, hf_model: Path | None) -> list[dict]:
    """Mixed frameworks; index 0 (yolo11n) is the run that gets killed, index 1 (timm) the one cancelled."""
    common = {"epochs": epochs, "batch_size": 8, "pretrained": False, "patience": 0, "device": "cpu"}
    kinds = [
        {"model": "yolo11n", "dataset": "soak-detect", "image_size": 64, "workers": 0},
        {"model": "resnet18", "dataset": "soak-classify", "image_size": 32, "workers": 0},
        {"model": "yolo11n", "dataset": "soak-detect", "image_size": 64, "workers": 1},
        {"model": "resnet18", "dataset": "soak-classify", "image_size": 64, "workers": 1},
        {"model": "yolo11n-cls", "dataset": "soak-classify", "image_size": 64, "workers": 0},
    ]
    if hf_model is not None:
        kinds.insert(2, {"model": str(hf_model), "task": "classify", "dataset": "soak-classify", "image_size": 64,
                         "workers": 0})
    return [{**kinds[i % len(kinds)], **common} for i in range(n)]


class Api:
    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def post(self, path: str, **kw):
        r = self.client.post(path, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def get(self, path: str, **kw):
        r = self.client.get(path, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:500]}")
        return r.json()


def submit_all(api: Api, specs: list[dict], notes: list[str]) -> list[str]:
    """POST every run at once (one thread each), in submission order. Like a careful client, a run
    whose POST fails is submitted again (up to 5 tries, backing off): after a timeout with the same
    client_request_id (the API may have stored it), after a 503 with a new one (the API stored that
    one as failed). Each failed try is noted."""
    import httpx

    ids: list[str | None] = [None] * len(specs)
    errors: list[str] = []
    t0 = time.time()

    def one(i: int) -> None:
        request_id = f"soak-{i}"
        for attempt in range(1, 6):
            try:
                ids[i] = api.post("/api/runs", json={"spec": specs[i], "client_request_id": request_id})["id"]
                return
            except httpx.TimeoutException:
                notes.append(f"run {i}: POST /api/runs try {attempt} timed out after {api.client.timeout.read:.0f} s "
                              f"(at {time.time() - t0:.0f} s)")
            except RuntimeError as e:
                notes.append(f"run {i}: try {attempt} at {time.time() - t0:.0f} s: {str(e)[:300]}")
                request_id = f"soak-{i}-{attempt + 1}"
            time.sleep(5 * 2 ** (attempt - 1))
        errors.append(f"run {i}: not submitted after 5 tries")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("submitting failed: " + "; ".join(errors))
    return [i for i in ids if i]


def soak(opts, home: Path, t0: float) -> dict:
    from cli.stack import Stack
    from core.settings import apply_prefect_env, get_settings
    from tasks.dataset_ingest import ingest_sample
    from tasks.storage import Storage

    settings = get_settings()
    apply_prefect_env(settings)
    stack = Stack(settings)
    hogs: list[subprocess.Popen] = []
    result: dict = {}
    try:
        print(f"soak home {home}; starting the stack ...", flush=True)
        stack.up(echo=lambda *_: None)
        if not stack.wait_zygote():
            print("warning: the warm launcher did not come up; runs start cold", flush=True)
        storage = Storage(settings=settings)
        ingest_sample("shapes-detect", "soak-detect", n_train=16, n_val=8, image_size=64, storage=storage)
        ingest_sample("shapes-classify", "soak-classify", n_train=16, n_val=8, image_size=64, storage=storage)
        hf = None if opts.no_hf else tiny_vit(home / "models" / "tiny-vit")
        specs = run_specs(opts.runs, opts.epochs, hf)
        api = Api(settings.api_url, stack.api_token_file.read_text().strip())
        print(f"stack up in {time.time() - t0:.0f} s; starting {opts.hogs} CPU hogs, submitting {opts.runs} runs",
              flush=True)
        hogs = start_hogs(opts.hogs)
        t_submit = time.time()
        submit_notes: list[str] = []
        try:
            ids = submit_all(api, specs, submit_notes)
        finally:
            for note in submit_notes:
                print(f"  submit problem: {note}", flush=True)
        kill_id, cancel_id = ids[0], ids[1]
        print(f"submitted in {time.time() - t_submit:.1f} s; kill -9 target {kill_id} ({specs[0]['model']}), "
              f"cancel target {cancel_id} ({specs[1]['model']})", flush=True)

        runs: dict[str, dict] = {}
        ended: dict[str, float] = {}
        crashed_since: dict[str, float] = {}
        killed: dict = {}
        cancelled_at: float | None = None
        cancel_note = ""
        deadline = time.monotonic() + opts.timeout_min * 60
        last_print = 0.0
        timed_out = False
        while True:
            try:
                listing = api.get("/api/runs", params={"limit": 500})["items"]
            except Exception as e:  # noqa: BLE001 - a slow API under load: try again
                print(f"  (listing runs failed: {e})", flush=True)
                time.sleep(2)
                continue
            runs.update({r["id"]: r for r in listing if r["id"] in ids})
            now = time.monotonic()
            for rid in ids:
                r = runs.get(rid)
                if r is None:
                    continue
                if r["state"] == "crashed":
                    crashed_since.setdefault(rid, now)
                else:
                    crashed_since.pop(rid, None)
                if rid not in ended and (r["state"] in FINAL or now - crashed_since.get(rid, now) > CRASHED_FINAL_AFTER_S):
                    ended[rid] = time.time() - t_submit
            cr = runs.get(cancel_id)
            if cancelled_at is None and cr and cr["state"] == "running":
                try:
                    api.post(f"/api/runs/{cancel_id}/cancel")
                    cancelled_at = time.time() - t_submit
                    print(f"  {cancelled_at:6.0f} s  cancel requested for {cancel_id} (epochs done "
                          f"{cr['epochs_done']})", flush=True)
                except Exception as e:  # noqa: BLE001 - a 503 still tells the trainer (next heartbeat); a 409: ended
                    cancelled_at = time.time() - t_submit
                    cancel_note = f" (the API answered: {str(e)[:160]})"
                    print(f"  {cancelled_at:6.0f} s  cancel of {cancel_id} not accepted: {e}", flush=True)
            kr = runs.get(kill_id)
            if (not killed and kr and kr["state"] == "running" and 1 <= kr["epochs_done"] < opts.epochs
                    and kr["prefect_flow_run_id"]):
                pid = training_pid(kr["prefect_flow_run_id"], home, attempt=max(1, kr["attempt"]))
                if pid is None:
                    killed = {"pid": None}
                    print(f"  could not find the training process of {kill_id}; not killed", flush=True)
                else:
                    os.kill(pid, signal.SIGKILL)
                    killed = {"pid": pid, "at": time.time() - t_submit, "wall": time.time(),
                              "epochs_done": kr["epochs_done"]}
                    print(f"  {killed['at']:6.0f} s  kill -9 {pid}: training process of {kill_id} after "
                          f"{kr['epochs_done']} epoch(s)", flush=True)
            if len(ended) == len(ids):
                break
            if now > deadline:
                timed_out = True
                print(f"TIMEOUT: {opts.timeout_min:g} min passed with {len(ids) - len(ended)} run(s) unfinished",
                      flush=True)
                break
            if now - last_print > 30:
                last_print = now
                print(f"  {time.time() - t_submit:6.0f} s  " + "  ".join(
                    f"{rid[:8]}:{runs[rid]['state']}:{runs[rid]['epochs_done']}" for rid in ids if rid in runs),
                    flush=True)
            time.sleep(1)

        # the record of each run, read back through the API
        lost = dups = false_crash = 0
        notes: list[str] = []
        counts = {s: 0 for s in FINAL}
        rows = []
        for rid in ids:
            run = api.get(f"/api/runs/{rid}")
            points = api.get(f"/api/runs/{rid}/metrics")["points"]
            kinds = [e["kind"] for e in run["events"]]
            epochs = run["spec"]["epochs"]
            missing = dup = 0
            if run["state"] == "completed":
                by_epoch = {e: {p["name"] for p in points if p["epoch"] == e} for e in range(1, epochs + 1)}
                missing = sum(1 for names in by_epoch.values() if not names)
                dup = len(points) - len({(p["epoch"], p["name"]) for p in points})
                lost += missing
                dups += dup
            counts[run["state"]] = counts.get(run["state"], 0) + 1
            # Crashed states in Prefect's history count too: a run crashed before it trained (say, its
            # worker could not start it) is retried without any trace in the API's events.
            crashes = prefect_crashes(run["prefect_flow_run_id"])
            kill_t = killed.get("wall") if rid == kill_id and killed.get("pid") else None
            if kill_t is None:
                abnormal = (run["attempt"] > 1 or any(k in ABNORMAL_EVENTS for k in kinds) or bool(crashes))
            else:  # the killed run: only what happened to it before the kill (2 s of clock slack)
                abnormal = (any(e["kind"] in ABNORMAL_EVENTS and _ts(e["time"]) < kill_t - 2 for e in run["events"])
                            or any(t < kill_t - 2 for t, _ in crashes))
            flag = ""
            if abnormal:
                false_crash += 1
                flag = "  FALSE CRASH"
            role = "killed" if rid == kill_id else "cancelled" if rid == cancel_id else "plain"
            rows.append(run)
            print(f"{rid}  {Path(run['spec']['model']).name if '/' in run['spec']['model'] else run['spec']['model']:<12} "
                  f"{role:<9} {run['state']:<9} epochs {run['epochs_done']}/{epochs}  attempt {run['attempt']}  "
                  f"points {len(points)} (missing epochs {missing}, duplicates {dup})  ended {ended.get(rid, float('nan')):.0f} s  "
                  f"events {','.join(kinds) or '-'}  prefect crashes {len(crashes)}{flag}", flush=True)
            if abnormal or crashes or run["state"] not in ("completed", "cancelled"):
                for t, message in crashes:
                    print(f"      prefect Crashed at {time.strftime('%H:%M:%S', time.localtime(t))}: {message[:300]}",
                          flush=True)
                for e in run["events"]:
                    print(f"      event {e['time']} {e['kind']} attempt={e.get('attempt')} epoch={e.get('epoch')}: "
                          f"{e['message'][:300]}", flush=True)
                if run.get("error"):
                    print(f"      error: {run['error'][:600]}", flush=True)
            notes += run_notes(run, role, crashes, home)
        # a run left Crashed (no retry came within CRASHED_FINAL_AFTER_S) is a failed run for its user
        stuck = sum(1 for rid in ids if rid in ended and runs[rid]["state"] == "crashed")
        result = {"runs": len(ids), "completed": counts.get("completed", 0),
                  "failed": counts.get("failed", 0) + stuck, "stuck_crashed": stuck,
                  "cancelled": counts.get("cancelled", 0), "lost": lost, "dups": dups, "false_crash": false_crash,
                  "unfinished": len(ids) - sum(counts.get(s, 0) for s in FINAL) - stuck, "timed_out": timed_out,
                  "killed": killed, "cancelled_at": cancelled_at, "cancel_note": cancel_note, "kill_id": kill_id, "cancel_id": cancel_id,
                  "rows": rows, "soak_s": time.time() - t_submit, "notes": notes,
                  "submit_problems": len(submit_notes)}
        return result
    finally:
        stop_hogs(hogs)
        with contextlib.suppress(Exception):
            stack.stop()
        # anything of this stack still alive (a training process orphaned by the stop): gone too
        deadline = time.monotonic() + 10
        while (left := processes_of_home(home)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if left:
            print(f"killing {len(left)} process(es) of this stack still alive 10 s after its stop: "
                  + ", ".join(f"{pid} ({_cmdline(pid)})" for pid in left), flush=True)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        result["leftover_killed"] = len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="training runs submitted at once (at least 6)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="busy-loop CPU hogs (default: one per core)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--timeout-min", type=float, default=20, help="give up waiting for the runs after this long")
    parser.add_argument("--no-hf", action="store_true", help="leave out the tiny HuggingFace ViT run")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary VTP_HOME (kept anyway on failure)")
    opts = parser.parse_args()
    if opts.runs < 6:
        parser.error("--runs must be at least 6")
    if opts.epochs < 3:
        parser.error("--epochs must be at least 3 (the kill lands after epoch 1 and must leave epochs to resume)")

    t0 = time.time()
    home = Path(tempfile.mkdtemp(prefix="vtp-soak-"))
    for key in [k for k in os.environ if k.startswith("VTP_")]:
        os.environ.pop(key)  # the defaults users get, except what the soak sets below
    os.environ.update({"VTP_HOME": str(home), "VTP_PREFECT_PORT": str(free_port()), "VTP_API_PORT": str(free_port()),
                       "VTP_UI_PORT": str(free_port()), "VTP_CRASH_RETRY_DELAY_S": "1",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "YOLO_OFFLINE": "1"})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop the stack and hogs

    r: dict = {}
    try:
        r = soak(opts, home, t0)
    finally:
        wall = time.time() - t0
        if r.get("rows") is not None:
            ok = (r["completed"] + r["cancelled"] == r["runs"] and r["cancelled"] <= 1 and r["lost"] == 0
                  and r["false_crash"] == 0 and not r["timed_out"])
            k = r["killed"]
            print(f"\nsummary: {r['runs']} runs, {opts.hogs} hogs on {os.cpu_count()} cores, {opts.epochs} epochs; "
                  f"runs phase {r['soak_s']:.0f} s, wall {wall:.0f} s")
            print(f"  killed run {r['kill_id']}: " + (f"pid {k['pid']} at {k['at']:.0f} s after {k['epochs_done']} "
                  "epoch(s)" if k.get("pid") else "NOT killed (never found running mid-training)"))
            print(f"  cancelled run {r['cancel_id']}: " + (f"cancel requested at {r['cancelled_at']:.0f} s{r['cancel_note']}"
                  if r["cancelled_at"] is not None else "NOT cancelled (never seen running)"))
            print(f"  failed submit tries (retried) {r['submit_problems']}, duplicate metric points {r['dups']}, "
                  f"left Crashed without a retry (counted failed) {r['stuck_crashed']}, still unfinished "
                  f"{r['unfinished']}, leftover processes killed "
                  f"{r.get('leftover_killed', 0)}; {'PASS' if ok else 'FAIL'}")
            for note in r["notes"]:
                print(f"  note: {note}")
            if not ok or r["notes"] or opts.keep_home:
                print(f"  logs and state kept in {home} (logs/, prefect/, vtp.db)")
            else:
                shutil.rmtree(home, ignore_errors=True)
            print(f"runs={r['runs']} completed={r['completed']} failed={r['failed']} cancelled={r['cancelled']} "
                  f"lost={r['lost']} false_crash={r['false_crash']} wall_s={wall:.0f}", flush=True)
        else:
            print(f"the soak did not get to the end; logs and state kept in {home}", flush=True)


if __name__ == "__main__":
    main()
