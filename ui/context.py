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
    if isinstance(e, ApiError) and lang == "ko" and any(p.get("message_ko") for p in e.problems):
        return t("error", lang, msg=_problems_ko(e))
    raw = str(e) if isinstance(e, ApiError) else f"{type(e).__name__}: {e}"
    lines = [f"- {md_text(ln[2:])}" if ln.startswith("- ") else md_text(ln) for ln in raw.splitlines() if ln.strip()]
    return t("error", lang, msg="\n".join(lines))


def _problems_ko(e: ApiError, limit: int = 10) -> str:
    """A dataset refusal on the Korean page: a Korean headline and each file's finding in Korean
    (the English one where the API has no Korean text)."""
    errors = sum(p.get("severity") == "error" for p in e.problems)
    lines = [f"데이터셋에 문제가 있습니다: 오류 {errors}건, 경고 {len(e.problems) - errors}건. 아래 파일을 고치거나 지운 뒤 "
             "다시 올려 주세요."]
    for p in e.problems[:limit]:
        kind = "오류" if p.get("severity") == "error" else "경고"
        where = md_text(p.get("file") or "—")
        lines.append(f"- **{kind}** {where}: {md_text(p.get('message_ko') or p.get('message') or '')}")
    if len(e.problems) > limit:
        lines.append(f"- … {len(e.problems) - limit}건 더")
    return "\n".join(lines)
