"""Training in several processes (``TrainSpec.devices``: GPUs ``0,1`` or ``cpu:2``), with the same
callbacks, checkpoints and result as a run in one process.

How: the plugin's ``train(spec, ctx)`` calls :func:`launch` when :func:`wanted` says so. The calling
process (the flow run's) starts one process per device (``python -m trainers.common.distributed``: a
fresh interpreter, no inherited Prefect threads, whatever the caller's ``__main__``), connected back
over an authenticated Unix socket (``multiprocessing.connection``, a random key, a 0700 folder), each
with the ``torch.distributed`` environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``
on 127.0.0.1, ``LOCAL_RANK``; ``CUDA_VISIBLE_DEVICES`` for GPUs, the cores shared out on the CPU),
and each calls the same plugin's ``train(spec, ctx)``, where ``accelerate`` (timm) or transformers'
``Trainer`` (Hugging Face) sets up DDP from that environment (``gloo`` on the CPU, ``nccl`` on GPUs).

- **Callbacks**: rank 0's :class:`RankCallbacks` sends every event (log, heartbeat, epoch end,
  checkpoint, train start) to the calling process over its connection, where the run's real
  :class:`core.contracts.Callbacks` handle them (HTTP callbacks, resume uploads, the watchdog).
  The other ranks send nothing.
- **Stop**: the calling process polls ``ctx.callbacks.should_stop()`` and sends "stop" to every rank;
  ``RankCallbacks.should_stop`` all-reduces each rank's flag so every rank stops at the same batch (a rank
  that stopped alone would leave the others waiting in a collective).
- **Files**: rank 0 alone writes checkpoints, results and reports in ``ctx.workdir``, as in one process.
- **Failure**: a rank's error comes back with its class (TrainerError, ResumeCheckpointError, ...)
  and message; a rank that dies without one (killed, out of memory) ends the others and the caller
  gets a TrainerError naming it. No rank outlives :func:`launch`.

Sources: torch.distributed's environment-variable initialisation
(https://pytorch.org/docs/stable/distributed.html#environment-variable-initialization) and
accelerate's ``PartialState`` (which reads the same variables).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import errors
from core.contracts import Callbacks, DatasetInfo, TrainContext, TrainResult
from core.devices import Devices, parse_devices
from core.errors import TrainerError

if TYPE_CHECKING:
    from core.spec import TrainSpec

__all__ = ["Rank", "RankCallbacks", "check_gpus", "current", "launch", "wanted"]

log = logging.getLogger("vtp.trainers")
_ENV_RANK = "VTP_DIST_RANK"  # set in a rank: launch() is never nested
_ENV_KEY = "VTP_DIST_KEY"  # the connection's authentication key, hex (taken out of the environment at once)


@dataclasses.dataclass(frozen=True)
class Rank:
    """This process's place in a multi-process run: ``rank`` 0..``world``-1; ``devices`` the run's."""

    rank: int
    world: int
    devices: Devices

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_current: Rank | None = None


def current() -> Rank | None:
    """The :class:`Rank` of this process in a multi-process run; None in a single-process run."""
    return _current


def wanted(spec: TrainSpec) -> bool:
    """Whether ``train(spec, ctx)`` should :func:`launch` ranks: several devices, not already in a rank."""
    return spec.device_count > 1 and _current is None and _ENV_RANK not in os.environ


# ------------------------------------------------------------------------------- in a rank


class RankCallbacks(Callbacks):
    """The callbacks a rank's trainer calls. Rank 0 sends every event to the calling process over
    ``conn``; :meth:`should_stop` is agreed by all ranks (an all-reduce of each rank's "the caller
    said stop" flag, so every rank must call it at the same points of its loop)."""

    def __init__(self, rank: Rank, conn: Any) -> None:
        super().__init__(heartbeat_every_s=1.0, stop_poll_every_s=0.0)
        self.rank, self._conn, self._told_stop = rank, conn, False

    def _send(self, *event: Any) -> None:
        if self.rank.is_main:
            self._conn.send(event)

    def train_start(self, *, epochs: int, **info: Any) -> None:
        self._send("train_start", epochs, info)

    def epoch_end(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        super().epoch_end(epoch, epochs, metrics)
        self._send("epoch_end", epoch, epochs, self.epochs[-1]["metrics"])

    def checkpoint(self, epoch: int, epochs: int, path: Path) -> None:
        self._send("checkpoint", epoch, epochs, str(path))

    def heartbeat(self, force: bool = False) -> None:
        self.beats_in_epoch += 1
        if force or self._beat():
            self._send("heartbeat", force)

    def log(self, message: str) -> None:
        self._send("log", message)

    def train_end(self, result: TrainResult) -> None:
        pass  # the calling process reports the result it gets back from launch()

    def should_stop(self, force: bool = False) -> bool:
        if self._stop_requested:
            return True
        try:
            while not self._told_stop and self._conn.poll():
                self._told_stop = self._conn.recv() == ("stop",)
        except (EOFError, OSError):  # the calling process is gone: nobody takes the results, stop
            self._told_stop = True
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self._told_stop else 0.0])
        if dist.is_available() and dist.is_initialized():
            if dist.get_backend() == "nccl":
                flag = flag.cuda()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._stop_requested = bool(flag.item() > 0)
        return self._stop_requested


def _rank_main(args_file: str, rank: int) -> None:
    """A rank's process (``python -m trainers.common.distributed ARGS RANK``): connect to the calling
    process, set the distributed environment, run the plugin's ``train``; the result or the error
    goes back over the connection."""
    global _current
    from multiprocessing.connection import Client

    from core.processes import die_with_parent

    die_with_parent()
    args = json.loads(Path(args_file).read_text())
    conn = Client(args["address"], family="AF_UNIX", authkey=bytes.fromhex(os.environ.pop(_ENV_KEY)))
    devs, world = parse_devices(args["devices"]), int(args["world"])
    os.environ.update({
        _ENV_RANK: str(rank), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(args["port"]),
    })
    _current = Rank(rank, world, devs)
    code = 0
    try:
        import torch

        if devs.kind == "cpu":
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        from core.spec import TrainSpec

        spec = TrainSpec.model_validate(args["spec"])
        callbacks = RankCallbacks(_current, conn)
        result = importlib.import_module(args["module"]).train(spec, _context(args["ctx"], callbacks))
        if rank == 0:
            conn.send(("result", _result_fields(result)))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the calling process
        conn.send(("error", rank, type(e).__name__, str(e) or type(e).__name__, traceback.format_exc(limit=20)))
        code = 1
    finally:
        with contextlib.suppress(Exception):
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    conn.send(("done", rank))
    conn.close()
    raise SystemExit(code)


def _context_fields(ctx: TrainContext) -> dict[str, Any]:
    """``ctx`` but its callbacks, as JSON (paths as strings)."""
    out = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name != "callbacks"}
    out["dataset"] = dataclasses.asdict(ctx.dataset)
    return json.loads(json.dumps(out, default=str))


def _context(fields: dict[str, Any], callbacks: Callbacks) -> TrainContext:
    data = dict(fields["dataset"])
    data["root"] = Path(data["root"])
    data["data_yaml"] = Path(data["data_yaml"]) if data.get("data_yaml") else None
    paths = {k: Path(v) if v else None for k, v in fields.items() if k in ("weights_dir", "resume_from", "init_from")}
    return TrainContext(workdir=Path(fields["workdir"]), dataset=DatasetInfo(**data), callbacks=callbacks,
                        download_timeout_s=float(fields["download_timeout_s"]), **paths)


def _result_fields(result: TrainResult) -> dict[str, Any]:
    out = dataclasses.asdict(result)
    out["best_checkpoint"], out["last_checkpoint"] = str(result.best_checkpoint), str(result.last_checkpoint)
    out["artifacts"] = [str(p) for p in result.artifacts]
    return out


# ------------------------------------------------------------------------- in the caller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _error(kind: str, message: str) -> Exception:
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.VtpError):
        return cls(message)
    return TrainerError(f"{kind}: {message}")


def launch(module: str, spec: TrainSpec, ctx: TrainContext, poll_s: float = 0.5) -> TrainResult:
    """Run ``module.train(spec, ctx)`` in ``spec.device_count`` processes (see the module doc) and
    return rank 0's result. ``ctx.callbacks`` gets every event rank 0 reports, in order.

    Raises the failing rank's error (TrainerError or a subclass, with its message; the first one to
    arrive), or TrainerError when a rank dies without one. Every rank has ended when this returns."""
    from multiprocessing.connection import Listener

    devs = parse_devices(spec.devices or "")
    check_gpus(devs, spec)
    folder = Path(tempfile.mkdtemp(prefix="vtp-ranks-"))  # 0700: the socket and the arguments
    key = secrets.token_bytes(32)
    listener = Listener(str(folder / "s"), family="AF_UNIX", authkey=key)
    args = {"address": str(folder / "s"), "devices": str(devs), "world": devs.count, "port": _free_port(),
            "module": module, "spec": spec.model_dump(mode="json"), "ctx": _context_fields(ctx)}
    (folder / "args.json").write_text(json.dumps(args))
    env = {**os.environ, _ENV_KEY: key.hex()}
    if devs.kind == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devs.gpus))
    else:  # the CPU's cores shared out, so the ranks do not oversubscribe them
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devs.count))
    ctx.callbacks.log(f"training in {devs.count} processes ({devs.describe()}, "
                      f"{'gloo' if devs.kind == 'cpu' else 'nccl'}); batch_size {spec.batch_size} is "
                      f"{spec.batch_size // devs.count} images per process a step")
    procs: list[subprocess.Popen[bytes]] = []
    inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
    conns: list[Any] = []
    try:
        procs = [subprocess.Popen([sys.executable, "-m", __name__, str(folder / "args.json"), str(r)], env=env)
                 for r in range(devs.count)]
        threading.Thread(target=_accept, args=(listener, devs.count, conns, inbox), daemon=True,
                         name="vtp-ranks-accept").start()
        return _relay(procs, conns, inbox, ctx, poll_s)
    finally:
        _end(procs)
        listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        shutil.rmtree(folder, ignore_errors=True)


def check_gpus(devs: Devices, spec: TrainSpec) -> None:
    """TrainerError, saying what to use, unless every GPU of ``devs`` is visible here (nothing for the CPU)."""
    if devs.kind != "cuda":
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not visible:
        raise TrainerError(f"devices={spec.devices!r} asks for CUDA GPUs but none is visible here: "
                           f"use devices=cpu:{devs.count}, or one device")
    if max(devs.gpus) >= visible:
        raise TrainerError(f"devices={spec.devices!r} names {devs.describe()} but {visible} GPUs are visible here: "
                           f"use GPUs 0 to {visible - 1}")


def _accept(listener: Any, count: int, conns: list[Any], inbox: queue.Queue[tuple[Any, ...]]) -> None:
    """Accept each rank's connection and hand everything it sends to ``inbox`` (a thread per rank)."""
    for _ in range(count):
        try:
            conn = listener.accept()
        except OSError:  # the listener closed: launch() is ending
            return
        conns.append(conn)
        threading.Thread(target=_read, args=(conn, inbox), daemon=True, name="vtp-rank-reader").start()


def _read(conn: Any, inbox: queue.Queue[tuple[Any, ...]]) -> None:
    with contextlib.suppress(EOFError, OSError):
        while True:
            inbox.put(conn.recv())


def _relay(procs: list[subprocess.Popen[bytes]], conns: list[Any], inbox: queue.Queue[tuple[Any, ...]],
           ctx: TrainContext, poll_s: float) -> TrainResult:
    """Hand rank 0's events to ``ctx.callbacks`` and the caller's stop to the ranks until every rank is done."""
    result: dict[str, Any] | None = None
    done: set[int] = set()
    stop_sent = False
    while len(done) < len(procs):
        try:
            event = inbox.get(timeout=poll_s)
        except queue.Empty:
            event = None
        if event is not None:
            kind, *args = event
            if kind == "error":
                rank, cls, message, trace = args
                log.debug("training process %s failed:\n%s", rank, trace)
                _raise_if_a_rank_died(procs, rank, message)
                raise _error(cls, message)
            if kind == "done":
                done.add(int(args[0]))
            elif kind == "result":
                result = args[0]
            else:
                _dispatch(ctx.callbacks, kind, args)
        if not stop_sent and ctx.callbacks.should_stop():
            stop_sent = True
            for c in list(conns):
                with contextlib.suppress(OSError):
                    c.send(("stop",))
        if event is None:  # nothing came: has a rank died without a word?
            for r, p in enumerate(procs):
                if r not in done and p.poll() is not None and inbox.empty():
                    time.sleep(0.5)  # its last words may still be on their way
                    if inbox.empty():
                        raise _died(r, len(procs), p.returncode)
    if result is None:
        raise TrainerError("the training processes ended without a result")
    result["best_checkpoint"], result["last_checkpoint"] = Path(result["best_checkpoint"]), Path(result["last_checkpoint"])
    result["artifacts"] = [Path(p) for p in result["artifacts"]]
    return TrainResult(**result)


def _died(rank: int, world: int, code: int | None, peer: str = "") -> TrainerError:
    return TrainerError(f"training process {rank} of {world} ended (exit code {code}) without a result or an error: "
                        "it was killed or ran out of memory; see the worker's log"
                        + (f" (the others then failed: {peer})" if peer else ""))


def _raise_if_a_rank_died(procs: list[subprocess.Popen[bytes]], failed: int, message: str) -> None:
    """A rank's error that is only the echo of another rank's death (gloo's "Connection reset by
    peer", NCCL's timeouts): name the dead rank instead. Waits briefly for its exit to be seen."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for r, p in enumerate(procs):
            if r != failed and p.poll() is not None and p.returncode < 0:  # ended by a signal: no error message
                raise _died(r, len(procs), p.returncode, message[:300])
        time.sleep(0.1)


def _dispatch(callbacks: Callbacks, kind: str, args: list[Any]) -> None:
    if kind == "log":
        callbacks.log(args[0])
    elif kind == "heartbeat":
        callbacks.heartbeat(force=args[0])
    elif kind == "epoch_end":
        callbacks.epoch_end(args[0], args[1], args[2])
    elif kind == "checkpoint":
        callbacks.checkpoint(args[0], args[1], Path(args[2]))
    elif kind == "train_start":
        callbacks.train_start(epochs=args[0], **args[1])


def _end(procs: list[subprocess.Popen[bytes]]) -> None:
    """Every rank gone: a short wait for those finishing, then terminate, then kill."""
    deadline = time.monotonic() + 10
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


if __name__ == "__main__":  # a rank: run in the imported module, whose current() the trainers read
    from trainers.common import distributed

    distributed._rank_main(sys.argv[1], int(sys.argv[2]))
