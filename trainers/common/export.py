"""Export of a trained torch module to ONNX or TorchScript, for the plugins without an exporter
of their own (timm, Hugging Face): ``torch.onnx`` with the TorchScript-based exporter
(``dynamo=False``: no extra packages, and it handles these models) or ``torch.jit.trace``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import TrainerError

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}  # format -> file suffix
ONNX_OPSET = 17


def check_format(fmt: str) -> None:
    """TrainerError unless ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise TrainerError(f"format={fmt!r} is not an export format: use {' or '.join(FORMATS)}")


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


def export_module(module: Any, detect: bool, fmt: str, image_size: int, out: Path) -> Path:
    """Write ``module`` (from :func:`plain_module`) as ``fmt`` to ``out`` for square
    ``image_size``-pixel inputs (the batch size stays dynamic); returns ``out``."""
    import torch

    check_format(fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.randn(1, 3, image_size, image_size)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.trace(module, dummy, strict=False).save(str(out))
        return out
    outputs = ["logits", "pred_boxes"] if detect else ["logits"]
    torch.onnx.export(module, (dummy,), str(out), dynamo=False, opset_version=ONNX_OPSET, input_names=["images"],
                      output_names=outputs, dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
    return out
