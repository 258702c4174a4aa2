"""A warm process that forks flow runs (the server side of :mod:`cli.launch`).

It imports prefect, the training flow, torch and the trainers once, then waits on a Unix socket.
For each launcher that connects it forks a supervisor, which forks the flow-run process: that one
takes the launcher's environment, working directory and standard streams and runs
``prefect.engine`` exactly as ``python -m prefect.engine`` would. The supervisor relays the
launcher's signals to the run and reports its exit code. The zygote itself never runs a flow and
never starts a thread, so every fork begins from the same clean, single-threaded state.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from core.frameworks import frameworks, plugin_package

# What every flow run needs, whatever it trains; each trainer plugin package is added from the
# registry (core.frameworks), so a new framework is preloaded without a change here.
PRELOAD = ("prefect.engine", "prefect.flow_engine", "prefect.deployments.steps", "flows.train",
           "torch", "torchvision")


def preload_modules() -> tuple[str, ...]:
    """:data:`PRELOAD` followed by the plugin package of every installed framework."""
    return PRELOAD + tuple(plugin_package(fw) for fw in frameworks())


def preload(modules: tuple[str, ...] | None = None) -> list[str]:
    """Import ``modules`` (default :func:`preload_modules`) once, in the zygote; returns those that
    imported. A trainer plugin package may define ``preload()`` for its own heavy imports (its
    framework library, after setting the environment that library reads at import): it is called
    right after the package is imported. A module that fails only stays lazy (reported on stderr)."""
    plugins = {plugin_package(fw) for fw in frameworks()}
    loaded = []
    for name in modules if modules is not None else preload_modules():
        try:
            module = importlib.import_module(name)
            warm = getattr(module, "preload", None) if name in plugins else None
            if callable(warm):
                warm()
            loaded.append(name)
        except Exception as e:  # noqa: BLE001 - a missing extra only makes that import lazy again
            print(f"zygote: could not preload {name}: {e}", file=sys.stderr)
    return loaded


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("launcher went away")
        data += chunk
    return data


def _run_flow(request: dict, fds: list[int]) -> None:
    """In the flow-run process: become the launcher's engine process, then exit."""
    code = 0
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        from prefect.context import refresh_global_settings_context
        from prefect.logging.configuration import setup_logging

        refresh_global_settings_context()  # prefect read its settings when the zygote imported it
        setup_logging(incremental=False)
        sys.argv = ["prefect.engine", *request.get("argv", [])]
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - print it as the engine would, then exit non-zero
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _supervise(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the supervisor: fork the run, relay signals to it, report its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_flow(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())
    conn.settimeout(0.2)
    status = None
    buf = b""
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
            break
        try:
            chunk = conn.recv(1024)
            if not chunk:  # the launcher died: the run must not outlive it unseen
                os.kill(pid, signal.SIGTERM)
                conn = None
                _, status = os.waitpid(pid, 0)
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                kind, _, value = line.decode().partition(" ")
                if kind == "signal":
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, int(value))
        except TimeoutError:
            continue
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
    os._exit(0)


def serve(path: Path) -> None:
    started = time.monotonic()
    loaded = preload()
    if threading.active_count() > 1:
        print(f"zygote: {threading.active_count()} threads after preload; forking stays safe only "
              "without them", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp))
    server.listen(64)
    os.replace(tmp, path)  # the socket appears only once the zygote is ready
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped automatically
    print(f"zygote: ready in {time.monotonic() - started:.1f}s at {path}; preloaded {', '.join(loaded)}", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    while True:
        for _ in sel.select():
            conn, _ = server.accept()
            try:
                header, fds, _, _ = socket.recv_fds(conn, 4, 3)
                (size,) = struct.unpack("!I", header)
                request = json.loads(_recv_exact(conn, size))
            except (OSError, ValueError, ConnectionError, struct.error) as e:
                print(f"zygote: bad launch request: {e}", file=sys.stderr)
                conn.close()
                continue
            if os.fork() == 0:
                server.close()
                _supervise(conn, request, fds)
            for fd in fds:
                os.close(fd)
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="vtp's warm flow-run process (started by `vtp up`)")
    parser.add_argument("--socket", required=True, type=Path)
    serve(parser.parse_args().socket)


if __name__ == "__main__":
    main()
