"""Export a finished run's best checkpoint to ONNX or TorchScript, stored beside it.

ultralytics exports through its own exporter; timm and Hugging Face models through ``torch.onnx``
(the TorchScript-based exporter, ``dynamo=False``: it needs no extra packages and handles these
models) or ``torch.jit.trace``. The file goes to ``runs/<id>/exports/model.<ext>`` and the run's
manifest is rewritten with it listed (removed first, written last, as in :func:`upload_folder`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from core.errors import TrainerError
from core.settings import Settings, get_settings
from tasks.storage import MANIFEST, Storage, download_files, sha256_file

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}


def _wrap(model: Any, detect: bool) -> Any:
    """A module returning plain tensors (tracing cannot return a ModelOutput)."""
    import torch

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> Any:
            out = self.model(pixel_values=x) if hasattr(self.model, "config") else self.model(x)
            if hasattr(out, "logits"):
                return (out.logits, out.pred_boxes) if detect else out.logits
            return out

    return Plain().eval()


def load_for_export(framework: str, checkpoint: Path) -> tuple[Any, bool]:
    """(plain torch module in eval mode, is a detector) for timm and huggingface checkpoints."""
    if framework == "timm":
        from trainers.timm import load_checkpoint

        model, _ = load_checkpoint(checkpoint)
        return _wrap(model, False), False
    from trainers.huggingface import load_checkpoint as hf_load

    model, _, info = hf_load(checkpoint)
    model.config.return_dict = True
    return _wrap(model, info["task"] == "detect"), info["task"] == "detect"


def export_checkpoint(framework: str, checkpoint: Path, fmt: str, image_size: int, out: Path) -> Path:
    """Write ``checkpoint`` as ``fmt`` to ``out`` and return it."""
    if fmt not in FORMATS:
        raise TrainerError(f"format={fmt!r} is not an export format: use {' or '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if framework == "ultralytics":
        from trainers.ultralytics.checkpoint import check_checkpoint
        from trainers.ultralytics.env import import_ultralytics

        check_checkpoint(checkpoint)  # weights_only, or refused with the reason (a TrainerError)
        YOLO = import_ultralytics().YOLO
        work = out.parent / ".ultralytics"
        work.mkdir(parents=True, exist_ok=True)
        local = work / Path(checkpoint).name
        shutil.copyfile(checkpoint, local)  # the exporter writes beside its input
        made = Path(YOLO(str(local)).export(format=fmt, imgsz=image_size, device="cpu", verbose=False))
        shutil.move(made, out)
        shutil.rmtree(work, ignore_errors=True)
        return out
    import torch

    module, detect = load_for_export(framework, Path(checkpoint))
    dummy = torch.randn(1, 3, image_size, image_size)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.trace(module, dummy, strict=False).save(str(out))
        return out
    outputs = ["logits", "pred_boxes"] if detect else ["logits"]
    torch.onnx.export(module, (dummy,), str(out), dynamo=False, opset_version=17, input_names=["images"],
                      output_names=outputs, dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
    return out


def _best_checkpoint(storage: Storage, run_id: str, files: dict[str, Any], local: Path) -> Path:
    """Fetch the best checkpoint (a file, or a save_pretrained folder) into ``local``."""
    wanted = [rel for rel in files if rel.startswith("checkpoints/best")]
    if not wanted:
        raise TrainerError(f"run {run_id} has no best checkpoint to export")
    download_files(storage, local, "runs", run_id, files={rel: files[rel] for rel in wanted})
    folder = local / "checkpoints" / "best"
    return folder if folder.is_dir() else local / wanted[0]


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
        checkpoint = _best_checkpoint(storage, run_id, manifest["files"], local)
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
