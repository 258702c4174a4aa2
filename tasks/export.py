"""Export a finished run's best checkpoint, check each export against PyTorch, store both beside it.

The framework's plugin does the export (``export_model``: ultralytics through its own exporter,
timm and Hugging Face through :mod:`trainers.common.export`) and the check (``check_export``: the
export loaded back in its runtime and compared with the checkpoint on validation images: the main
metric re-measured and its drop, the largest output difference, latency p50, size). The checkpoint
is the one the plugin published (``CHECKPOINT``: ``checkpoints/best.pt``, or the ``checkpoints/best``
folder). Each export goes to ``runs/<id>/exports/model[-int8|-fp16][-dynamic]<suffix>`` (a file, or a
folder for openvino and ncnn); the table of checks is ``runs/<id>/exports/report.json`` (one row per
export, the latest for each path); the run's manifest is rewritten with them listed (removed first,
written last, as in :func:`upload_folder`).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from core import frameworks
from core.errors import TrainerError, VtpError
from core.settings import Settings, get_settings
from tasks.storage import MANIFEST, Storage, download_files, sha256_file

# format -> what follows "exports/model[-options]": a file suffix, or the folder ending ultralytics reads
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": "_openvino_model", "ncnn": "_ncnn_model"}
OPTIONS = ("half", "int8", "dynamic")  # export options, as ultralytics' exporter names them
REPORT = "exports/report.json"


def export_rel(fmt: str, options: dict[str, Any] | None = None) -> str:
    """Where an export of ``fmt`` with ``options`` is stored in the run's folder."""
    options = options or {}
    tag = "".join(f"-{name}" for key, name in (("int8", "int8"), ("half", "fp16"), ("dynamic", "dynamic"))
                  if options.get(key))
    return f"exports/model{tag}{FORMATS.get(fmt, '.' + fmt)}"


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


def export_checkpoint(framework: str, checkpoint: Path, fmt: str, image_size: int, out: Path,
                      data: Path | None = None, **options: Any) -> Path:
    """Write ``checkpoint`` as ``fmt`` for ``image_size``-pixel images to ``out`` and return it;
    ``options`` (:data:`OPTIONS`) go to the plugin's exporter, ``data`` (the dataset: data.yaml, or its
    folder) calibrates an int8 export. TrainerError when the format is not the framework's, an
    option is not offered, or the exporter fails (with its words)."""
    offered = frameworks.capabilities(framework).export if framework in frameworks.frameworks() else ()
    if fmt not in FORMATS or fmt not in offered:
        raise TrainerError(f"format={fmt!r} is not an export format of {framework}: use "
                           f"{' or '.join(f for f in offered if f in FORMATS) or 'none (it exports nothing)'}")
    if unknown := sorted(set(options) - set(OPTIONS)):
        raise TrainerError(f"export options {', '.join(unknown)} are unknown: use {', '.join(OPTIONS)}")
    kwargs = {k: v for k, v in options.items() if v}
    if kwargs.get("int8"):
        kwargs["data"] = data
    return plugin(framework).export_model(Path(checkpoint), fmt, image_size, Path(out), **kwargs)


def size_bytes(path: Path) -> int:
    """A file's size, or a folder's files' together, in bytes."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_and_check(spec: dict[str, Any], checkpoint: Path, fmt: str, outputs: Path, data: Path | None,
                     options: dict[str, Any] | None = None,
                     unchecked: str = "the run's dataset was not at hand") -> dict[str, Any]:
    """Export ``checkpoint`` (of a run with TrainSpec ``spec``, as JSON) to ``fmt`` under ``outputs``
    and check it on ``data`` (the prepared dataset: data.yaml for YOLO-format data, else its folder;
    None: not checked, for the reason ``unchecked``). Returns the report row: {format, options, path, size_bytes, size_mb, metric, value,
    reference, drop, max_abs_diff, latency_ms_p50, checked, error}; a failed export or check is a
    row with ``error`` saying why, never an exception."""
    options = {k: bool(v) for k, v in (options or {}).items() if v}
    rel = export_rel(fmt, options)
    row: dict[str, Any] = {"format": fmt, "options": sorted(options), "path": rel, "checked": False, "error": None,
                           "image_size": int(spec.get("image_size") or 224), "time": time.time()}
    framework = spec["framework"]
    try:
        path = export_checkpoint(framework, checkpoint, fmt, row["image_size"], Path(outputs) / rel, data, **options)
    except TrainerError as e:
        row["error"] = str(e)
        return row
    except Exception as e:  # noqa: BLE001 - an exporter's own failure, in its words
        row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        return row
    row["size_bytes"] = size_bytes(path)
    row["size_mb"] = round(row["size_bytes"] / 1e6, 3)
    if data is None:
        row["error"] = f"exported, not checked: {unchecked}"
        return row
    try:
        row.update(plugin(framework).check_export(Path(checkpoint), path, fmt, Path(data), row["image_size"],
                                                  task=spec.get("task"), main_metric=main_metric(spec)))
        row["checked"] = True
    except TrainerError as e:
        row["error"] = f"exported, but not checked: {e}"
    except Exception as e:  # noqa: BLE001 - a runtime's own failure, in its words
        row["error"] = f"exported, but not checked: {type(e).__name__}: {str(e)[:300]}"
    return row


def main_metric(spec: dict[str, Any]) -> str | None:
    """The main metric key of a run's spec as JSON (its framework's for its task); None when unknown."""
    try:
        return frameworks.capabilities(spec["framework"]).main_metric.get(spec.get("task") or "")
    except KeyError:
        return None


def merge_report(old: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's export table with ``rows`` added (a new row replaces the one for the same path)."""
    kept = {r["path"]: r for r in (old or {}).get("rows", [])}
    kept.update({r["path"]: r for r in rows})
    return {"rows": sorted(kept.values(), key=lambda r: r["path"]), "machine": _machine()}


def _machine() -> str:
    """Where latencies were measured: the CPU's architecture and count (they hold for this machine only)."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


def describe_row(row: dict[str, Any]) -> str:
    """One line for people: what was exported, how big, how fast, how it compares with PyTorch."""
    name = row["format"] + (f" ({', '.join(row['options'])})" if row.get("options") else "")
    if row.get("size_mb") is None:
        return f"{name}: failed: {row['error']}"
    parts = [f"{row['size_mb']:.1f} MB"]
    if row.get("latency_ms_p50") is not None:
        parts.append(f"{row['latency_ms_p50']:.1f} ms/image (p50)")
    if row.get("metric") and row.get("value") is not None:
        parts.append(f"{row['metric']} {row['value']:.4f} vs PyTorch {row['reference']:.4f} (drop {row['drop']:+.4f})")
    if row.get("max_abs_diff") is not None:
        parts.append(f"max |output difference| {row['max_abs_diff']:.2e}")
    text = f"{name}: {row['path']}, " + ", ".join(parts)
    return text + (f"; {row['error']}" if row.get("error") else "")


def _best_checkpoint(storage: Storage, run_id: str, files: dict[str, Any], local: Path, published: str) -> Path:
    """Fetch the published checkpoint ``published`` (a file, or a folder's files) into ``local``."""
    wanted = {rel: entry for rel, entry in files.items() if rel == published or rel.startswith(published + "/")}
    if not wanted:
        raise TrainerError(f"run {run_id} has no best checkpoint ({published}) to export")
    download_files(storage, local, "runs", run_id, files=wanted)
    return local / published


def _local_dataset(summary: dict[str, Any], work: Path, settings: Settings) -> Path:
    """The run's dataset version, downloaded and prepared as for training; what checks read: its
    data.yaml for YOLO-format data, else its folder."""
    from core.spec import TrainSpec
    from tasks import dataset_store
    from tasks.train_steps import validate_dataset

    spec = TrainSpec.model_validate(summary["spec"])
    ref = (summary.get("dataset") or {}).get("ref") or spec.dataset
    local, _, _ = dataset_store.download(Storage(settings=settings), ref, settings.cache_root)
    info, _ = validate_dataset.fn(local, spec, work)
    return Path(info.data_yaml) if info.data_yaml else Path(info.root)


def export_runs(run_id: str, formats: list[str], options: dict[str, Any] | None = None,
                settings: Settings | None = None, check: bool = True) -> dict[str, Any]:
    """Export run ``run_id``'s best checkpoint to each of ``formats`` with ``options``, check each on
    the run's dataset (``check``), and store the exports and the table beside the run. Returns
    {"rows": [the new rows], "report": REPORT, "uris": {path: uri}}. TrainerError when the run has no
    complete outputs; a format that fails is a row saying why."""
    settings = settings or get_settings()
    storage = Storage(settings=settings)
    manifest = storage.read_json("runs", run_id, MANIFEST)
    summary = storage.read_json("runs", run_id, "summary.json")
    if manifest is None or summary is None:
        raise TrainerError(f"run {run_id} has no complete outputs in {storage.url}: only finished runs can be exported")
    spec = summary["spec"]
    with tempfile.TemporaryDirectory(prefix="vtp-export-") as tmp:
        local = Path(tmp)
        checkpoint = _best_checkpoint(storage, run_id, manifest["files"], local, plugin(spec["framework"]).CHECKPOINT)
        data, unchecked = None, "not asked for (--no-check)"
        if check:  # the check needs the dataset; the export does not, so a dataset that is gone is only said
            try:
                data = _local_dataset(summary, local / "work", settings)
            except VtpError as e:
                unchecked = f"the run's dataset could not be had ({e})"
        rows = [export_and_check(spec, checkpoint, fmt, local, data, options, unchecked) for fmt in formats]
        made = {r["path"]: local / r["path"] for r in rows if r.get("size_mb") is not None}
        report = merge_report(storage.read_json("runs", run_id, REPORT), rows)
        (local / REPORT).parent.mkdir(parents=True, exist_ok=True)
        (local / REPORT).write_text(json.dumps(report, indent=2))
        storage.remove("runs", run_id, MANIFEST)  # incomplete while the exports go up
        for path in [*made.values(), local / REPORT]:
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                name = f.relative_to(local).as_posix()
                storage.put_file(f, "runs", run_id, name)
                manifest["files"][name] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
        manifest["version"] = int(manifest.get("version", 1)) + 1
        manifest["updated"] = time.time()
        storage.write_json(manifest, "runs", run_id, MANIFEST)
    return {"rows": rows, "report": REPORT, "uris": {rel: storage.uri("runs", run_id, rel) for rel in made}}


def export_run(run_id: str, fmt: str, settings: Settings | None = None, **options: Any) -> dict[str, Any]:
    """One format: {uri, path, format, size (bytes), check (its report row)}; TrainerError with the
    reason when the export fails (a failed check is in the row)."""
    result = export_runs(run_id, [fmt], options, settings)
    row = result["rows"][0]
    if row.get("size_mb") is None:
        raise TrainerError(row["error"])
    return {"uri": result["uris"][row["path"]], "path": row["path"], "format": fmt,
            "size": row["size_bytes"], "check": row}


def export_command(run_id: str, formats: list[str], options: dict[str, Any] | None = None, check: bool = True) -> int:
    """`vtp export RUN --format onnx --format openvino [--int8 --half --dynamic]`: prints the table;
    1 when an export failed or the run cannot be exported."""
    import sys

    try:
        result = export_runs(run_id, formats, options, check=check)
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for row in result["rows"]:
        print(describe_row(row))
        if row["path"] in result["uris"]:
            print(f"  {result['uris'][row['path']]}")
    return 0 if all(r.get("size_mb") is not None for r in result["rows"]) else 1
