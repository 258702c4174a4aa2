"""DataLoader worker processes of the trainers with a PyTorch loop of their own (timm, huggingface):
each worker exits cleanly, and a run stops its workers itself when training ends.

Why: a flow-run process has Prefect's queue services running (the API log and event workers).
Each registers a ``threading._register_atexit`` hook, and a DataLoader worker forked from that
process inherits the hook. When the worker exits, ``threading._shutdown()`` runs it; Prefect has
reset the service for the fork (its ``_done_event`` is None), so its drain fails an assertion,
and ``multiprocessing`` turns that into a silent ``os._exit(1)``. The main process, joining the
worker in ``_MultiProcessingDataLoaderIter._shutdown_workers``, gets SIGCHLD and torch raises
"DataLoader worker (pid N) exited unexpectedly with exit code 1" out of ``__del__``: a traceback
after a run that succeeded. (Whether it prints depends on whether the signal handler or the join
reaps the worker first, hence "sometimes".)

:func:`init_worker` (every loader's ``worker_init_fn``) makes the inherited hooks harmless in the
worker; :func:`shut_down` stops persistent workers at a point of the trainer's choosing instead of
whenever the garbage collector or the interpreter's exit gets to them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("vtp.trainers")


def _quiet(hook: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(Exception):
            hook()

    run.vtp_quiet = True  # type: ignore[attr-defined]
    return run


def quiet_inherited_exit_hooks() -> None:
    """In a forked child: let no thread-exit hook inherited from the parent fail the child's exit.

    The hooks belong to the parent's threads and services, which the child does not have; each
    still runs (``concurrent.futures`` joins its executors' threads with one), but an exception
    in one no longer aborts the child's shutdown with exit code 1."""
    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list behind _register_atexit
    if isinstance(hooks, list):
        hooks[:] = [h if getattr(h, "vtp_quiet", False) else _quiet(h) for h in hooks]


_FORK_GUARD = False


def install_fork_guard() -> None:
    """Quiet the inherited exit hooks in every child this process forks from now on — data-loader
    workers of any framework, ultralytics' included (they have no ``worker_init_fn`` of vtp's).
    Once per process."""
    global _FORK_GUARD
    if not _FORK_GUARD:
        import os

        os.register_at_fork(after_in_child=quiet_inherited_exit_hooks)
        _FORK_GUARD = True


def init_worker(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """``worker_init_fn`` for every DataLoader with workers (see the module doc)."""
    quiet_inherited_exit_hooks()


def shut_down(loaders: Iterable[Any]) -> None:
    """Stop the worker processes of ``loaders`` now and wait for them (persistent ones stay alive
    between epochs, and would otherwise live on until the loader is garbage-collected). Idempotent;
    a loader without workers, or never iterated, is left as it is."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        if iterator is None or not hasattr(iterator, "_shutdown_workers"):
            continue
        loader._iterator = None
        try:
            iterator._shutdown_workers()
        except RuntimeError as e:  # a worker died on its way out: training is over, its results are whole
            log.warning("a data-loader worker did not exit cleanly after training: %s", e)
