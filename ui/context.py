"""What every tab shares: the API client, the label registry, where downloads are cached."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ui.client import ApiClient, ApiError
from ui.i18n import Labels, t


@dataclass
class Ctx:
    api: ApiClient
    cache: Path
    prefect_ui: str
    labels: Labels = field(default_factory=Labels)
    lang: Any = None  # the gr.State holding "en" or "ko"
    on_load: list[tuple[Any, list[Any], list[Any]]] = field(default_factory=list)  # (fn, inputs, outputs)
    on_lang: list[tuple[Any, list[Any], list[Any]]] = field(default_factory=list)  # run after a language switch

    def run_file(self, run_id: str, path: str) -> Path:
        return self.api.download(run_id, path, self.cache / "runs" / run_id / path)

    def prefect_link(self, run: dict[str, Any], lang: str) -> str:
        fid = run.get("prefect_flow_run_id")
        return f"[{t('prefect_link', lang)} ↗]({self.prefect_ui}/runs/flow-run/{fid})" if fid else ""


def error_text(e: Exception, lang: str) -> str:
    return t("error", lang, msg=str(e) if isinstance(e, ApiError) else f"{type(e).__name__}: {e}")
