"""Flow-run launcher for vtp's process pools (the pool's ``command``). Standard library only.

The process worker starts this instead of ``python -m prefect.engine``. It hands its environment,
working directory and standard streams to the warm process (:mod:`cli.zygote`), which forks a
ready-imported copy of itself to run the flow, so a run starts in a fraction of a second instead of
re-importing prefect, torch and the trainers. Signals are relayed to the run and its exit code
becomes ours. Without a zygote (none started, or another machine) it becomes the plain engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys


def _plain_engine() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def main() -> None:
    path = os.environ.get("VTP_ZYGOTE_SOCKET")
    if not path:
        _plain_engine()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        _plain_engine()
    payload = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}).encode()
    socket.send_fds(sock, [struct.pack("!I", len(payload))], [0, 1, 2])
    sock.sendall(payload)

    def relay(signum, _frame):
        with contextlib.suppress(OSError):
            sock.sendall(f"signal {signum}\n".encode())

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    code = 1
    buf = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            kind, _, value = line.decode().partition(" ")
            if kind == "exit":
                code = int(value)
    sys.exit(code)


if __name__ == "__main__":
    main()
