"""Where ultralytics keeps YOLO weights, and how it fetches them (for :mod:`core.weights`)."""

from __future__ import annotations

from pathlib import Path

from core.contracts import TrainContext
from core.weights import WeightsQuery, find_pretrained


def yolo_query(model: str) -> WeightsQuery:
    """``<weights_dir>/yolo11n.pt``, then ultralytics' weights folder, then its GitHub release asset."""
    from ultralytics.utils import WEIGHTS_DIR

    from trainers.ultralytics.env import download_dir

    name = f"{model}.pt"
    # An absolute target: given a bare name, attempt_download_asset would save into the cwd.
    target = download_dir() / name

    def cached() -> Path | None:
        for path in (target, Path(WEIGHTS_DIR) / name):
            if path.is_file():
                return path
        return None

    def download() -> Path | None:
        from ultralytics.utils.downloads import attempt_download_asset

        target.parent.mkdir(parents=True, exist_ok=True)
        path = Path(attempt_download_asset(target))
        if not path.is_file():
            raise FileNotFoundError(f"no {name} among ultralytics' release assets")
        return path

    # ultralytics' release assets live on GitHub (github.com redirects to its asset host)
    return WeightsQuery(model, "ultralytics", [name, f"ultralytics/{name}"], cached, download, ("github.com:443",))


def find_yolo_weights(model: str, ctx: TrainContext) -> tuple[Path | None, str]:
    """Pretrained weights found by :func:`core.weights.find_pretrained`, checked by
    :func:`.checkpoint.check_checkpoint` before anything loads them: a file in the weights folder
    (or one left in ultralytics' folder) that holds pickled code is refused, with the reason."""
    from trainers.ultralytics.checkpoint import UnsafeCheckpoint, check_checkpoint

    path, note = find_pretrained(yolo_query(model), ctx)
    if path is not None:
        try:
            check_checkpoint(path)
        except UnsafeCheckpoint as e:
            raise UnsafeCheckpoint(f"the pretrained weights file {path} was refused: {e}") from None
    return path, note
