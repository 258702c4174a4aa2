"""Ultralytics' label caches are pickles: load only the ones this process wrote.

Ultralytics keeps the scanned labels of a split in ``labels/<split>.cache`` (``<split>.cache`` next
to a classification split) and reads it back with ``np.load(allow_pickle=True)``, *before* checking
its hash, so a ``.cache`` file planted where it looks runs code. vtp keeps them out in three layers
(docs/security.md, "Datasets"): imports drop every ``*.cache`` (:mod:`tasks.archives`), the dataset
download skips them, and trainers only see a fresh view of the dataset in the run's work folder
(:func:`tasks.dataset_formats.prepare_local`), so ultralytics writes its caches there. This module is
the last layer: ultralytics' loader is wrapped so that it opens only a cache file this process saved
(same path, inode, size and mtime); anything else counts as "no cache" and the labels are scanned again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("vtp")
_written: dict[str, tuple[int, int, int]] = {}


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def guard() -> None:
    """Wrap ``ultralytics.data.dataset``'s cache loader and saver (idempotent)."""
    from ultralytics.data import dataset

    if getattr(dataset.load_dataset_cache_file, "_vtp_guarded", False):
        return
    original_load, original_save = dataset.load_dataset_cache_file, dataset.save_dataset_cache_file

    def load_dataset_cache_file(path: Path) -> dict:
        key = os.path.realpath(path)
        seen = _written.get(key)
        if seen is None or seen != _identity(key):
            if os.path.lexists(path):
                log.info("label cache %s was not written by this run; it is not loaded (labels are scanned)", path)
            raise FileNotFoundError(f"{path}: no label cache written by this run")
        return original_load(path)

    def save_dataset_cache_file(prefix: str, path: Path, x: dict, version: str) -> Any:  # noqa: ANN401
        result = original_save(prefix, path, x, version)
        key = os.path.realpath(path)
        ident = _identity(key)
        if ident is not None:
            _written[key] = ident
        return result

    load_dataset_cache_file._vtp_guarded = True  # type: ignore[attr-defined]
    dataset.load_dataset_cache_file = load_dataset_cache_file
    dataset.save_dataset_cache_file = save_dataset_cache_file
