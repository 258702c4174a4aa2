"""Where timm's pretrained weights live, and how timm fetches them (for :mod:`core.weights`).

timm takes weights from the Hugging Face hub (``pretrained_cfg.hf_hub_id``) or, for older models,
a URL cached by ``torch.hub``. Locally an operator can drop ``<weights_dir>/timm/<model>.safetensors``
(or ``.pth`` / ``.bin``, or a copied hub folder ``<weights_dir>/timm/<model>/model.safetensors``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.contracts import TrainContext
from core.weights import WeightsQuery, find_pretrained, hub_host

_EXTENSIONS = (".safetensors", ".pth", ".bin")
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def pretrained_cfg(model: str) -> dict[str, Any]:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model)
    return cfg.to_dict() if cfg is not None else {}


def local_names(model: str, cfg: dict[str, Any]) -> list[str]:
    names = [model]
    tagged = f"{cfg.get('architecture')}.{cfg.get('tag')}" if cfg.get("tag") else None
    if tagged and tagged != model:
        names.append(tagged)
    out = [f"timm/{n}{ext}" for n in names for ext in _EXTENSIONS]
    out += [f"timm/{n}/{f}" for n in names for f in _HUB_FILES]
    return out


def timm_query(model: str) -> WeightsQuery:
    cfg = pretrained_cfg(model)
    hub_id: str | None = cfg.get("hf_hub_id")
    url: str | None = cfg.get("url")
    hub_files = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HUB_FILES

    def cached() -> Path | None:
        if hub_id:
            from huggingface_hub import try_to_load_from_cache

            for name in hub_files:
                hit = try_to_load_from_cache(hub_id, name)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return Path(hit)
        if url:
            import torch.hub

            path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
            if path.is_file():
                return path
        return None

    def download() -> Path | None:
        if hub_id:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

            for name in hub_files:
                try:
                    return Path(hf_hub_download(hub_id, name))
                except LocalEntryNotFoundError:
                    raise  # offline: asking for the next file name would fail the same way
                except EntryNotFoundError:
                    continue  # the repo has the other file name
            raise FileNotFoundError(f"{hub_id} on the Hugging Face hub has none of {', '.join(hub_files)}")
        if url:
            import torch.hub

            path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)  # writes a temp file, then renames
            return path
        return None

    has_source = bool(hub_id or url)
    hosts = (hub_host(),) if hub_id else (_url_host(url),) if url else ()
    return WeightsQuery(model, "timm", local_names(model, cfg), cached, download if has_source else None, hosts)


def _url_host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def find_timm_weights(model: str, ctx: TrainContext) -> tuple[Path | None, str]:
    return find_pretrained(timm_query(model), ctx)
