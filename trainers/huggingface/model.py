"""Build a transformers model and image processor for a run: pretrained when the weights can be had,
else (only when the person allowed it) the architecture's config with random initialisation.

``spec.model`` is a hub id (``google/vit-base-patch16-224``) or a local folder written by
``save_pretrained`` (with or without a weights file). Hub weights are looked up like every other
trainer's (:mod:`core.weights`): ``<weights_dir>/huggingface/<org>/<name>/``, then the HF cache, then a
download capped at ``ctx.download_timeout_s``; nothing here can hang a run on a dead network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contracts import TrainContext
from core.errors import TrainerError
from core.weights import DownloadTimeout, WeightsQuery, call_with_timeout, find_pretrained, hub_host

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILES = ("config.json", "preprocessor_config.json")


@dataclass
class Built:
    model: Any
    processor: Any
    pretrained_used: bool
    note: str


def local_folder(model: str) -> Path | None:
    path = Path(model).expanduser()
    return path.resolve() if path.is_dir() else None


def _has_weights(folder: Path) -> bool:
    return any((folder / n).is_file() for n in WEIGHT_FILES) or any(folder.glob("model-*.safetensors"))


def hub_query(model: str) -> WeightsQuery:
    def cached() -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        for name in WEIGHT_FILES:
            hit = try_to_load_from_cache(model, name)
            if isinstance(hit, str) and os.path.isfile(hit) and os.path.isfile(Path(hit).parent / "config.json"):
                return Path(hit)
        return None

    def download() -> Path | None:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.txt"]))
        return next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)

    names = [f"huggingface/{model}/{n}" for n in WEIGHT_FILES]
    return WeightsQuery(model, "huggingface", names, cached, download, (hub_host(),))


def _config(source: str, timeout_s: float) -> Any:
    """The architecture's config: from a folder, the HF cache, or a capped download."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        if local_folder(source) is not None:
            raise
    try:
        return call_with_timeout(lambda: AutoConfig.from_pretrained(source), timeout_s, f"config of {source}")
    except (DownloadTimeout, OSError, ValueError) as e:
        raise TrainerError(
            f"the config of {source} cannot be had here ({' '.join(str(e).split())[:160]}): give model= a local "
            "folder holding its config.json (written by save_pretrained), or run where the Hugging Face hub is reachable"
        ) from e


def processor_for(source: Path | str, config: Any, task: str, image_size: int) -> Any:
    """The model's own image processor when saved with it, else the default one of its architecture."""
    import transformers
    from transformers import AutoImageProcessor

    try:
        proc = AutoImageProcessor.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError, TypeError):
        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

        names = IMAGE_PROCESSOR_MAPPING_NAMES.get(config.model_type) or {}
        if isinstance(names, dict):
            name = names.get("torchvision") or names.get("pil")
        else:
            name = next((n for n in names if n), None)
        fallback = "ConditionalDetrImageProcessor" if task == "detect" else "ViTImageProcessor"
        proc = getattr(transformers, name or fallback)()
    proc.size = {"height": image_size, "width": image_size}
    if hasattr(proc, "crop_size"):
        proc.do_center_crop = False
    if hasattr(proc, "do_pad") and task == "detect":
        proc.do_pad = False  # every image is resized to the same square
    return proc


def _auto(task: str) -> Any:
    from transformers import AutoModelForImageClassification, AutoModelForObjectDetection

    return AutoModelForObjectDetection if task == "detect" else AutoModelForImageClassification


def _labels(classes: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
    }


def build(spec: Any, ctx: TrainContext, classes: list[str]) -> Built:
    """Model + processor for ``spec`` with a head for ``classes``; see the module doc for the rules."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    name, task = str(spec.model), str(spec.task)
    allow_random = not spec.pretrained or bool(spec.overrides.get("allow_random_init", False))
    folder = local_folder(name)
    weights: Path | None = None
    note = ""
    if spec.pretrained:
        if folder is not None:
            if _has_weights(folder):
                weights, note = folder, f"using pretrained weights for {name} from {folder}."
            else:
                note = f"{folder} holds no weights file ({' or '.join(WEIGHT_FILES)})."
        else:
            path, note = find_pretrained(hub_query(name), ctx)
            weights = path.parent if path is not None else None
        if weights is None and not allow_random:
            raise TrainerError(
                f"pretrained weights for {name} cannot be had here: {note} Set pretrained=false (or "
                "overrides.allow_random_init=true) to train it from its config with random initialisation, "
                "or put the model folder in the weights folder / Hugging Face cache."
            )
    if weights is not None:
        model = _auto(task).from_pretrained(str(weights), ignore_mismatched_sizes=True, **_labels(classes))
        config = model.config
    else:
        config = _config(str(folder or name), ctx.download_timeout_s)
        for key, value in _labels(classes).items():
            setattr(config, key, value)
        for attr in ("use_pretrained_backbone",):  # a backbone download would defeat random init offline
            if hasattr(config, attr):
                setattr(config, attr, False)
        model = _auto(task).from_config(config)
        why = "pretrained=False" if not spec.pretrained else "allow_random_init=true"
        note = (note + " " if note else "") + f"training {name} from its config with random initialisation ({why})."
    source = weights or folder or name
    processor = processor_for(source, config, task, int(spec.image_size or 224))
    return Built(model, processor, weights is not None, note.strip())


def build_from_checkpoint(folder: Path, task: str, classes: list[str], image_size: int, why: str) -> Built:
    """Model + processor from a vtp ``save_pretrained`` folder: this run's own checkpoint (resume)
    or a finished run's final one (continuing it). The head must already fit ``classes``."""
    folder = Path(folder)
    try:
        model = _auto(task).from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TrainerError(f"the checkpoint folder {folder.name} could not be loaded ({e}); start a new run") from e
    have = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if have != list(classes):
        raise TrainerError(f"the checkpoint was trained on classes {have}, this dataset has {classes}: "
                           "continue it on the same dataset, or start a new run")
    processor = processor_for(folder, model.config, task, image_size)
    return Built(model, processor, False, why)
