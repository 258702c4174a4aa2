"""Child processes that end with their parent."""

from __future__ import annotations

import contextlib
import signal
import sys


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` to this process when the process that started it dies, even
    by SIGKILL (``prctl(PR_SET_PDEATHSIG)``), so nothing is left behind: a `vtp up` child, a training
    rank whose flow run was killed, a `vtp serve` inference worker. Elsewhere a no-op: the parent's
    orderly stop is what there is. Call it in the child (e.g. as ``preexec_fn``)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # 1 = PR_SET_PDEATHSIG
