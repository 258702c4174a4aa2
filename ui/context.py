"""What every tab shares: the API client, the label registry, where downloads are cached."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.escape import md_text
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
    """An error as Markdown that shows its text as it is: paths like ``images/<split>/`` are not
    read as HTML tags and dropped, and the API's "- file: problem" lines stay a list."""
    raw = str(e) if isinstance(e, ApiError) else f"{type(e).__name__}: {e}"
    lines = [f"- {md_text(ln[2:])}" if ln.startswith("- ") else md_text(ln) for ln in raw.splitlines() if ln.strip()]
    return t("error", lang, msg="\n".join(lines))
