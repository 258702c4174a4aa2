"""The ``devices`` of a training run: how many processes train it, and on what.

One form per kind, as the frameworks name them:

- ``0,1`` (or ``cuda:0,1``): these CUDA GPUs, one process each (DDP).
- ``cpu:2``: two processes on the CPU (the ``gloo`` backend), for machines without GPUs and for tests.
- a single GPU (``0``) or ``cpu:1`` is one process, the same as ``device``.

:func:`parse_devices` is used by :class:`core.spec.TrainSpec` (validation, slot accounting) and by
the trainers (:mod:`trainers.common.distributed`). Torch is not imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_PROCESSES", "Devices", "parse_devices"]

MAX_PROCESSES = 64  # CPU processes or GPUs of one run
_CPU_RE = re.compile(r"^cpu:(\d{1,3})$")
_GPU_RE = re.compile(r"^(?:cuda:)?(\d{1,3}(?:,\d{1,3})*)$")
FORMS = "'0,1' (these GPUs) or 'cpu:2' (two CPU processes)"


@dataclass(frozen=True)
class Devices:
    """A parsed ``devices`` value: ``kind`` is 'cpu' or 'cuda'; ``gpus`` the CUDA indices (empty on
    the CPU); ``count`` the number of training processes (the world size)."""

    kind: str
    count: int
    gpus: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"cpu:{self.count}" if self.kind == "cpu" else ",".join(map(str, self.gpus))

    def describe(self) -> str:
        """For people: '2 CPU processes', 'GPUs 0 and 1'."""
        if self.kind == "cpu":
            return f"{self.count} CPU process{'es' if self.count != 1 else ''}"
        ids = [str(i) for i in self.gpus]
        return f"GPU {ids[0]}" if len(ids) == 1 else f"GPUs {', '.join(ids[:-1])} and {ids[-1]}"


def parse_devices(value: str) -> Devices:
    """``value`` ('0,1', 'cuda:0,1', 'cpu:2') -> :class:`Devices`.

    Raises ValueError saying what is accepted when ``value`` is none of those, names a GPU twice,
    or asks for 0 or more than :data:`MAX_PROCESSES` processes."""
    text = str(value).strip().lower().replace(" ", "")
    if m := _CPU_RE.match(text):
        n = int(m.group(1))
        if not 1 <= n <= MAX_PROCESSES:
            raise ValueError(f"devices={value!r} asks for {n} CPU processes: use cpu:1 to cpu:{MAX_PROCESSES}")
        return Devices("cpu", n)
    if m := _GPU_RE.match(text):
        ids = [int(i) for i in m.group(1).split(",")]
        if len(set(ids)) != len(ids):
            raise ValueError(f"devices={value!r} names a GPU twice: list each GPU once, e.g. 0,1")
        if len(ids) > MAX_PROCESSES:
            raise ValueError(f"devices={value!r} names {len(ids)} GPUs: at most {MAX_PROCESSES}")
        return Devices("cuda", len(ids), tuple(ids))
    raise ValueError(f"devices={value!r} is not a set of devices: use {FORMS}")
