"""Export a finished run's best checkpoint to ONNX or TorchScript, stored beside it.

The framework's plugin does the export (``export_model``: ultralytics through its own exporter,
timm and Hugging Face through :mod:`trainers.common.export`) and names the checkpoint it published
(``CHECKPOINT``: ``checkpoints/best.pt``, or the ``checkpoints/best`` folder). The file goes to
``runs/<id>/exports/model.<ext>`` and the run's manifest is rewritten with it listed (removed first,
written last, as in :func:`upload_folder`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from core import frameworks
from core.errors import TrainerError
from core.settings import Settings, get_settings
from tasks.storage import MANIFEST, Storage, download_files, sha256_file

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}


def plugin(framework: str) -> ModuleType:
    """The trainer plugin package of ``framework`` (from the framework registry), with the entry
    points an export needs (``CHECKPOINT``, ``export_model``); TrainerError for a framework that is
    not installed or has none."""
    try:
        module = frameworks.plugin(framework)
    except KeyError:
        raise TrainerError(f"framework {framework!r} is not installed here: its checkpoints cannot be exported") from None
    missing = [name for name in ("CHECKPOINT", "export_model") if not hasattr(module, name)]
    if missing:
        raise TrainerError(f"the {framework} trainer plugin does not export checkpoints (it has no {', '.join(missing)})")
    return module


def load_for_export(framework: str, checkpoint: Path) -> tuple[Any, bool]:
    """(plain torch module in eval mode, is a detector) of a checkpoint of ``framework`` (the plugin's
    ``load_for_export``; TrainerError for a framework that exports through its own exporter)."""
    return plugin(framework).load_for_export(Path(checkpoint))


def export_checkpoint(framework: str, checkpoint: Path, fmt: str, image_size: int, out: Path) -> Path:
    """Write ``checkpoint`` as ``fmt`` (onnx, torchscript) for ``image_size``-pixel images to ``out``
    and return it; TrainerError when the format is unknown or the checkpoint cannot be exported."""
    offered = frameworks.capabilities(framework).export if framework in frameworks.frameworks() else ()
    if fmt not in FORMATS or fmt not in offered:
        raise TrainerError(f"format={fmt!r} is not an export format of {framework}: use "
                           f"{' or '.join(f for f in offered if f in FORMATS) or 'none (it exports nothing)'}")
    return plugin(framework).export_model(Path(checkpoint), fmt, image_size, Path(out))


def _best_checkpoint(storage: Storage, run_id: str, files: dict[str, Any], local: Path, published: str) -> Path:
    """Fetch the published checkpoint ``published`` (a file, or a folder's files) into ``local``."""
    wanted = {rel: entry for rel, entry in files.items() if rel == published or rel.startswith(published + "/")}
    if not wanted:
        raise TrainerError(f"run {run_id} has no best checkpoint ({published}) to export")
    download_files(storage, local, "runs", run_id, files=wanted)
    return local / published


def export_run(run_id: str, fmt: str, settings: Settings | None = None) -> dict[str, Any]:
    """Export run ``run_id``'s best checkpoint; returns {uri, path, format, size}."""
    storage = Storage(settings=settings or get_settings())
    manifest = storage.read_json("runs", run_id, MANIFEST)
    summary = storage.read_json("runs", run_id, "summary.json")
    if manifest is None or summary is None:
        raise TrainerError(f"run {run_id} has no complete outputs in {storage.url}: only finished runs can be exported")
    spec = summary["spec"]
    with tempfile.TemporaryDirectory(prefix="vtp-export-") as tmp:
        local = Path(tmp)
        checkpoint = _best_checkpoint(storage, run_id, manifest["files"], local, plugin(spec["framework"]).CHECKPOINT)
        rel = f"exports/model{FORMATS.get(fmt, '')}"
        path = export_checkpoint(spec["framework"], checkpoint, fmt, int(spec.get("image_size") or 224), local / rel)
        entry = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        storage.remove("runs", run_id, MANIFEST)  # incomplete while the export goes up
        storage.put_file(path, "runs", run_id, rel)
        manifest["files"][rel] = entry
        manifest["version"] = int(manifest.get("version", 1)) + 1
        manifest["updated"] = time.time()
        storage.write_json(manifest, "runs", run_id, MANIFEST)
    return {"uri": storage.uri("runs", run_id, rel), "path": rel, "format": fmt, "size": entry["size"]}


def export_command(run_id: str, fmt: str = "onnx") -> int:
    """`vtp export RUN --format onnx|torchscript`: prints the stored file's URI; 1 with a message on error."""
    import sys

    try:
        result = export_run(run_id, fmt)
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported {run_id} as {fmt}: {result['uri']} ({result['size']} bytes)")
    return 0
