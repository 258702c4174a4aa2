"""Find pretrained weights for a trainer without ever letting the search hang a run.

Order: the local weights folder (``ctx.weights_dir``, where an operator drops files for offline
machines), then the framework's own cache, then the framework's download, capped at
``ctx.download_timeout_s``. The download runs in a daemon thread: when the cap passes, the run goes
on from scratch and the thread is abandoned (it can never keep the process alive). Each outcome
comes with a sentence for the person, so a run that trains from scratch says why and how to fix it.

The framework-specific parts (file names, cache lookup, download call) come from the trainer plugin,
so this module imports no framework.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.contracts import TrainContext

T = TypeVar("T")
PathFinder = Callable[[], Path | None]


@dataclass(frozen=True)
class WeightsQuery:
    """What a trainer looks for.

    ``local_names`` are paths relative to the weights folder, best first (``yolo11n.pt``,
    ``timm/resnet18.safetensors``); ``cache`` looks in the framework's cache and ``download``
    fetches into it; either returns the file or None when the framework has none.
    """

    model: str
    framework: str
    local_names: list[str]
    cache: PathFinder | None = None
    download: PathFinder | None = None
    hosts: tuple[str, ...] = ()  # where ``download`` fetches from ("huggingface.co:443"): probed first


PROBE_TIMEOUT_S = 1.5
_probed: dict[str, bool] = {}


def reachable(host_port: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout_s`` (DNS included). One
    probe per address and process: offline, a download's own retries cost ~10 s per run (issue 14),
    a failed probe costs at most ``timeout_s``."""
    import socket

    if host_port in _probed:
        return _probed[host_port]
    host, _, port = host_port.rpartition(":")

    def connect() -> bool:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True

    try:
        ok = call_with_timeout(connect, timeout_s + 0.5, what=f"probe of {host_port}")
    except (OSError, DownloadTimeout, ValueError):
        ok = False
    _probed[host_port] = ok
    return ok


def hub_host() -> str:
    """The Hugging Face hub's address (HF_ENDPOINT, for a mirror, else huggingface.co:443)."""
    import os
    from urllib.parse import urlsplit

    parts = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@dataclass(frozen=True)
class WeightsFound:
    path: Path | None
    note: str
    source: str  # local | cache | download | none


class DownloadTimeout(TimeoutError):
    pass


def call_with_timeout(fn: Callable[[], T], timeout_s: float, what: str = "call") -> T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s`` seconds.

    Raises :class:`DownloadTimeout` when it is still running (the thread is left to finish or die
    with the process), or re-raises what ``fn`` raised.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below, not swallowed
            box["error"] = e

    thread = threading.Thread(target=target, name=f"vtp-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise DownloadTimeout(f"{what} did not finish within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def find_local(weights_dir: Path | None, names: list[str]) -> Path | None:
    if weights_dir is None:
        return None
    for name in names:
        path = Path(weights_dir).expanduser() / name
        if path.is_file() and path.stat().st_size > 0:
            return path.resolve()
    return None


def find_weights(query: WeightsQuery, weights_dir: Path | None, timeout_s: float) -> WeightsFound:
    """Local folder, then cache, then a download capped at ``timeout_s``; never raises for a miss."""
    model, fw = query.model, query.framework
    hint = _hint(query, weights_dir)
    if path := find_local(weights_dir, query.local_names):
        return WeightsFound(path, f"using pretrained weights for {model} from {path}.", "local")
    if query.cache is not None and (path := query.cache()):
        return WeightsFound(
            path, f"using pretrained weights for {model} from the {fw} cache ({path}).", "cache"
        )
    if query.download is None:
        return WeightsFound(
            None,
            f"{fw} has no pretrained weights to download for {model}; training from scratch.{hint}",
            "none",
        )
    offline = [h for h in query.hosts if not reachable(h)]
    if query.hosts and len(offline) == len(query.hosts):
        return WeightsFound(
            None,
            f"pretrained weights for {model} could not be downloaded ({', '.join(offline)} cannot be reached: "
            f"offline?); training from scratch.{hint}",
            "none",
        )
    try:
        path = call_with_timeout(query.download, timeout_s, what=f"download of {model} weights")
    except DownloadTimeout:
        note = (
            f"pretrained weights for {model} could not be downloaded within {timeout_s:g} s (offline?); "
            f"training from scratch.{hint}"
        )
        return WeightsFound(None, note, "none")
    except Exception as e:  # any download failure means "train from scratch", said plainly in the note
        reason = " ".join(str(e).replace("\u274c", "").split())[:200] or type(e).__name__  # ultralytics' ❌
        note = (
            f"pretrained weights for {model} could not be downloaded ({reason}); training from scratch.{hint}"
        )
        return WeightsFound(None, note, "none")
    if path is None or not Path(path).is_file():
        return WeightsFound(
            None,
            f"{fw} has no pretrained weights to download for {model}; training from scratch.{hint}",
            "none",
        )
    return WeightsFound(Path(path), f"downloaded pretrained weights for {model} to {path}.", "download")


def find_pretrained(query: WeightsQuery, ctx: TrainContext) -> tuple[Path | None, str]:
    """(path or None, note) using the context's weights folder (else the settings' one) and timeout."""
    weights_dir = ctx.weights_dir
    if weights_dir is None:
        from core.settings import get_settings

        weights_dir = get_settings().weights_dir
    found = find_weights(query, weights_dir, ctx.download_timeout_s)
    return found.path, found.note


def _hint(query: WeightsQuery, weights_dir: Path | None) -> str:
    if not query.local_names:
        return ""
    where = str(weights_dir) if weights_dir is not None else "the folder named by VTP_WEIGHTS_DIR"
    return f" Put {query.local_names[0]} in {where} to use them."
