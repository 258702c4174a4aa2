"""Export of a trained torch module, and the check of an export against the module, for the plugins
without an exporter of their own (timm, Hugging Face).

Formats (:data:`FORMATS`): ONNX by ``torch.onnx`` (the TorchScript-based exporter, ``dynamo=False``:
no extra packages, and it handles these models), TorchScript by ``torch.jit.trace``, OpenVINO IR by
OpenVINO's own PyTorch converter (``openvino.convert_model`` + ``openvino.save_model``: an
``.xml``/``.bin`` pair in a folder). The batch size stays dynamic in every format.

Checks (:func:`load_runtime`, :func:`compare_classifier`): the export is loaded back in its runtime
(onnxruntime, OpenVINO's CPU plugin, ``torch.jit.load``), fed the same validation images as the
torch module, and compared: the largest absolute difference of the outputs (logits), top-1 accuracy
of both (the drop), latency per image (ms, p50 of single-image calls after one warm-up) and size.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import TrainerError

# format -> how the stored export is named after "exports/model" (a file suffix, or a folder's)
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": "_openvino_model"}
ONNX_OPSET = 17
OPENVINO_XML = "model.xml"  # the IR's graph inside an openvino export folder (weights: model.bin)


def check_format(fmt: str, formats: tuple[str, ...] | dict[str, str] = tuple(FORMATS)) -> None:
    """TrainerError unless ``fmt`` is one of ``formats`` (default :data:`FORMATS`)."""
    if fmt not in formats:
        raise TrainerError(f"format={fmt!r} is not an export format: use {', '.join(formats)}")


def plain_module(model: Any, detect: bool) -> Any:
    """``model`` wrapped in a module that takes images (N, 3, H, W) and returns plain tensors
    (tracing cannot return a ModelOutput): logits (N, classes), and for a detector also
    pred_boxes (N, queries, 4). Eval mode."""
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


def export_module(module: Any, detect: bool, fmt: str, image_size: int, out: Path, **options: Any) -> Path:
    """Write ``module`` (from :func:`plain_module`) as ``fmt`` to ``out`` (a file; for openvino a
    folder holding ``model.xml``/``model.bin``) for square ``image_size``-pixel inputs; returns ``out``.

    ``options``: none are offered for these formats yet (int8 and half are ultralytics' exporter's);
    TrainerError naming them when given, and for an unknown format."""
    import torch

    check_format(fmt)
    if unknown := sorted(k for k, v in options.items() if v and k != "data"):  # data: int8 calibration images
        raise TrainerError(f"export options {', '.join(unknown)} are not offered for {fmt} exports of this framework "
                           "(half and int8 are ultralytics' exporter's): export without them")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.randn(1, 3, image_size, image_size)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.trace(module, dummy, strict=False).save(str(out))
        return out
    if fmt == "openvino":
        import openvino as ov

        with torch.no_grad():
            converted = ov.convert_model(module, example_input=dummy, input=[(-1, 3, image_size, image_size)])
        out.mkdir(parents=True, exist_ok=True)
        ov.save_model(converted, str(out / OPENVINO_XML))
        return out
    outputs = ["logits", "pred_boxes"] if detect else ["logits"]
    torch.onnx.export(module, (dummy,), str(out), dynamo=False, opset_version=ONNX_OPSET, input_names=["images"],
                      output_names=outputs, dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
    return out


def load_runtime(path: Path, fmt: str) -> Callable[[Any], list[Any]]:
    """The export at ``path`` loaded in its runtime: a function from an image batch (numpy float32,
    N×3×H×W) to its outputs (numpy arrays, in the export's output order). TrainerError with the
    runtime's words when it does not load."""
    import numpy as np

    path = Path(path)
    try:
        if fmt == "onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return lambda x: list(session.run(None, {name: np.ascontiguousarray(x, np.float32)}))
        if fmt == "openvino":
            import openvino as ov

            compiled = ov.Core().compile_model(str(path / OPENVINO_XML if path.is_dir() else path), "CPU")
            return lambda x: [np.asarray(v) for v in compiled(np.ascontiguousarray(x, np.float32)).values()]
        if fmt == "torchscript":
            import torch

            scripted = torch.jit.load(str(path), map_location="cpu").eval()

            def run(x: Any) -> list[Any]:
                with torch.no_grad():
                    out = scripted(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
                return [o.numpy() for o in (out if isinstance(out, tuple | list) else (out,))]

            return run
    except Exception as e:  # noqa: BLE001 - the runtime's own message is the reason
        raise TrainerError(f"the {fmt} export does not load in its runtime: {type(e).__name__}: {str(e)[:300]}") from e
    raise TrainerError(f"format={fmt!r} has no runtime to check it with here")


def latency_ms(run: Callable[[Any], Any], sample: Any, repeats: int = 10) -> float:
    """Median milliseconds of ``run(sample)`` over ``repeats`` calls, after one warm-up call."""
    run(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sample)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare_classifier(module: Any, run: Callable[[Any], list[Any]], images: Any, labels: list[int]) -> dict[str, Any]:
    """Outputs of ``module`` (torch, eval) and of the export (``run``, from :func:`load_runtime`) on
    ``images`` (a torch float tensor N×3×H×W, preprocessed as for training) with their true class
    indices ``labels``: {max_abs_diff (largest |logit difference|), value (the export's top-1
    accuracy, 0-1), reference (the module's), drop (reference - metric), agreement (share of images
    with the same top-1 class), latency_ms_p50 (one image)}."""
    import numpy as np
    import torch

    with torch.no_grad():
        ref = module(images)
    ref = (ref[0] if isinstance(ref, tuple | list) else ref).float().numpy()
    got = np.concatenate([run(images[i:i + 8].numpy())[0] for i in range(0, len(images), 8)]).astype(np.float32)
    truth = np.asarray(labels)
    acc_ref = float((ref.argmax(1) == truth).mean()) if len(truth) else 0.0
    acc_got = float((got.argmax(1) == truth).mean()) if len(truth) else 0.0
    return {"max_abs_diff": float(np.abs(ref - got).max()) if got.size else 0.0,
            "value": acc_got, "reference": acc_ref, "drop": acc_ref - acc_got,
            "agreement": float((ref.argmax(1) == got.argmax(1)).mean()) if len(got) else 1.0,
            "latency_ms_p50": latency_ms(run, images[:1].numpy())}


def val_samples(root: Path, classes: list[str], limit: int = 64) -> list[tuple[Path, int]]:
    """Up to ``limit`` validation images of the ImageFolder at ``root`` with their class index in
    ``classes``, taken from the classes in turn (so a small sample still covers every class)."""
    from core.dataset_layout import find_val_dir, list_images

    val = find_val_dir(Path(root))
    if val is None:
        raise TrainerError(f"{root} has no val/ folder: an export is checked on validation images")
    per_class = [[(p, i) for p in sorted(list_images(val / c))] for i, c in enumerate(classes) if (val / c).is_dir()]
    out: list[tuple[Path, int]] = []
    while len(out) < limit and any(per_class):
        for queue in per_class:
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    if not out:
        raise TrainerError(f"{val} has no images: an export is checked on validation images")
    return out


def compare_outputs(module: Any, run: Callable[[Any], list[Any]], images: Any) -> dict[str, Any]:
    """For a model without a single-number check here (a Hugging Face detector): the largest absolute
    difference over every output of ``module`` and of the export on ``images``, and latency."""
    import numpy as np
    import torch

    with torch.no_grad():
        ref = module(images)
    ref = [r.float().numpy() for r in (ref if isinstance(ref, tuple | list) else (ref,))]
    got = run(images.numpy())
    diff = max(float(np.abs(a - b.astype(np.float32)).max()) for a, b in zip(ref, got, strict=False))
    return {"max_abs_diff": diff, "value": None, "reference": None, "drop": None,
            "latency_ms_p50": latency_ms(run, images[:1].numpy())}
