"""Datasets: upload an archive, register a storage URI or generate a sample; see the validation
report, class names and counts, and sample images with their labels drawn."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from core.escape import md_text
from ui.client import ApiError
from ui.context import Ctx, error_text
from ui.i18n import t

SAMPLES = ("shapes-detect", "shapes-segment", "shapes-classify", "shapes-pose", "shapes-obb")


def describe(d: dict[str, Any], lang: str) -> str:
    lines = [f"### {d['name']}", f"`{d['uri']}` · format `{d.get('format') or '—'}` · task `{d.get('task') or '—'}`",
             ""]
    classes = d.get("classes") or []
    lines.append(f"**classes ({len(classes)}):** " + ", ".join(f"`{c}`" for c in classes) + "  ")
    counts = d.get("counts") or {}
    if counts:
        lines.append("**counts:** " + ", ".join(f"{k}: {v}" for k, v in counts.items()) + "  ")
    versions = d.get("versions") or []
    if versions:
        current = next((v["version"] for v in versions if v.get("uri") == d.get("uri")), None)
        label = "버전" if lang == "ko" else "versions"
        lines.append(f"**{label}:** " + ", ".join(
            f"{'**' if v['version'] == current else ''}v{v['version']} `{v.get('hash') or '—'}`"
            f"{'**' if v['version'] == current else ''}" for v in versions))
    report = d.get("report")
    if report:
        lines += ["", health_markdown(report, lang)]
        lines += ["", f"**{t('report', lang)}**", "", report_markdown(report, lang)]
    return "\n".join(lines)


HEALTH_COLUMNS = {"en": ("split", "images", "labelled", "background", "unreadable", "duplicates", "median size (px)"),
                  "ko": ("분할", "이미지", "라벨 있음", "배경", "읽을 수 없음", "중복", "중간 크기 (px)")}


def health_markdown(report: dict[str, Any], lang: str) -> str:
    """The health report's table (one row per split), what vtp did on import, leakage and empty classes."""
    ko = lang == "ko"
    stats = report.get("stats") or {}
    splits = stats.get("splits") or {}
    lines = [f"- {md_text(str(n))}" for n in report.get("notes") or []]
    if splits:
        head = HEALTH_COLUMNS["ko" if ko else "en"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for split, st in splits.items():
            size = st.get("image_size", {}).get("median")
            lines.append(f"| {split} | {st['images']} | {st['labelled']} | {st['background']} | {st['unreadable']} | "
                         f"{st['duplicates']} | {f'{size[0]}×{size[1]}' if size else '—'} |")
    leak = (stats.get("leakage") or {}).get("count")
    if leak:
        lines.append("")
        lines.append(f"**검증/테스트 이미지 {leak}개가 학습 분할에도 있습니다** (같은 파일): 검증 지표가 실제보다 좋게 나옵니다"
                     if ko else f"**{leak} val/test image(s) are also in train** (same bytes): val metrics will overstate")
    empty = stats.get("empty_classes") or []
    if empty:
        names = ", ".join(f"`{md_text(str(c))}`" for c in empty[:20])
        lines.append("")
        lines.append(f"**학습 인스턴스가 없는 클래스:** {names}" if ko else f"**Classes with no training instance:** {names}")
    return "\n".join(lines)


def distribution(d: dict[str, Any]) -> pd.DataFrame:
    """Rows (class, split, count) of the health report's instances per class, for the bar chart."""
    splits = (((d.get("report") or {}).get("stats") or {}).get("splits")) or {}
    rows = [{"class": str(c), "split": s, "count": int(n)} for s, st in splits.items()
            for c, n in (st.get("instances") or {}).items()]
    return pd.DataFrame(rows, columns=["class", "split", "count"])


def report_markdown(report: dict[str, Any], lang: str, limit: int = 30) -> str:
    """The validation report in words: a verdict, then each problem with its file (escaped)."""
    problems = [p for p in report.get("problems") or [] if isinstance(p, dict)]
    errors = [p for p in problems if p.get("severity") == "error"]
    warnings = [p for p in problems if p.get("severity") != "error"]
    ko = lang == "ko"
    if errors:
        verdict = f"오류 {len(errors)}개, 경고 {len(warnings)}개" if ko else f"{len(errors)} error(s), {len(warnings)} warning(s)"
    elif warnings:
        verdict = (f"학습할 수 있습니다. 경고 {len(warnings)}개" if ko else
                   f"{len(warnings)} warning(s), no errors: ready to train")
    else:
        verdict = "문제없음: 학습할 수 있습니다" if ko else "No problems: ready to train"
    lines = [verdict, ""]
    for p in (errors + warnings)[:limit]:
        kind = ("오류" if ko else "error") if p.get("severity") == "error" else ("경고" if ko else "warning")
        text = (p.get("message_ko") if ko else None) or p.get("message") or ""
        lines.append(f"- **{kind}** `{str(p.get('file') or '—').replace('`', '')}`: {md_text(str(text))}")
    if len(problems) > limit:
        lines.append(f"- … {len(problems) - limit} " + ("개 더" if ko else "more"))
    return "\n".join(lines)


def decode(item: dict[str, Any]) -> tuple[Image.Image, str]:
    return Image.open(io.BytesIO(base64.b64decode(item["png_base64"]))), item.get("caption", "")


def build(ctx: Ctx) -> None:
    L = ctx.labels
    with gr.Row():
        with gr.Column(scale=1):
            L(gr.Markdown(), "upload_title", "value")
            archive = L(gr.File(file_types=[".zip", ".gz", ".tgz", ".tar"], elem_id="ds-archive"), "archive")
            up_name = L(gr.Textbox(elem_id="ds-name"), "name")
            val_share = L(gr.Slider(0.05, 0.5, value=0.2, step=0.05, elem_id="ds-val-share"), "val_share")
            upload = L(gr.Button(variant="primary", elem_id="ds-upload"), "upload", "value")
            L(gr.Markdown(), "register_title", "value")
            reg_name = L(gr.Textbox(elem_id="ds-reg-name"), "name")
            reg_uri = L(gr.Textbox(elem_id="ds-reg-uri"), "uri")
            register = L(gr.Button(elem_id="ds-register"), "register", "value")
            L(gr.Markdown(), "sample_title", "value")
            sample = L(gr.Dropdown(choices=list(SAMPLES), value=SAMPLES[0], elem_id="ds-sample"), "sample")
            generate = L(gr.Button(elem_id="ds-generate"), "generate", "value")
        with gr.Column(scale=2):
            message = gr.Markdown(elem_id="ds-message")
            pick = L(gr.Dropdown(choices=[], elem_id="ds-pick"), "datasets")
            info = gr.Markdown(elem_id="ds-info")
            chart = L(gr.BarPlot(x="class", y="count", color="split", elem_id="ds-chart", height=260,
                                 x_label_angle=-30), "class_chart")
            gallery = L(gr.Gallery(columns=4, height=360, elem_id="ds-gallery"), "gallery")

    def listing() -> list[tuple[str, int]] | None:
        try:
            return [(f"{d['name']} ({d.get('task') or '?'})", d["id"]) for d in ctx.api.datasets()]
        except ApiError:
            return None

    def names(lang: str):
        found = listing()
        return gr.update() if found is None else gr.update(choices=found)

    empty = distribution({})

    def show(dataset_id: int | None, lang: str):
        if dataset_id is None:
            return "", [], empty
        try:
            d = ctx.api.dataset(int(dataset_id))
        except ApiError as e:
            return error_text(e, lang), [], empty
        try:
            images = [decode(item) for item in ctx.api.samples(int(dataset_id))]
        except ApiError as e:
            return describe(d, lang) + "\n\n" + error_text(e, lang), [], distribution(d)
        return describe(d, lang), images, distribution(d)

    def done(created: dict[str, Any], lang: str):
        msg = t("imported", lang, name=created["name"], n=len(created.get("classes") or []))
        versions = created.get("versions") or []
        version = next((v["version"] for v in versions if v.get("uri") == created.get("uri")), None)
        if version:
            many = f" · {len(versions)}{'개 버전' if lang == 'ko' else ' versions'}" if len(versions) > 1 else ""
            msg += f" (v{version}{many})"
            if created.get("stored") is False:  # a re-upload of a version there is: say so, not just "(v1)"
                msg += " — " + t("unchanged", lang, version=version)
        found = listing() or [(created["name"], created["id"])]
        # shown here, not by the pick's change: a new version keeps the dataset's id, so the pick does not change
        return msg, gr.update(choices=found, value=created["id"]), *show(created["id"], lang)

    def failed(message: str):
        """A refusal replaces what the panel showed: no earlier dataset's report next to the error."""
        return message, gr.update(value=None), "", [], empty

    def do_upload(file: str | None, name: str, val_fraction: float, lang: str,
                  progress=gr.Progress()):  # noqa: B008 - gradio's idiom
        if not file:
            return failed(t("need_file", lang))
        name = (name or "").strip() or Path(file).name.split(".")[0]
        progress(0.2, desc=f"{Path(file).name} → API")
        try:
            created = ctx.api.upload_dataset(name, Path(file), val_fraction=val_fraction)
        except ApiError as e:
            return failed(error_text(e, lang))
        return done(created, lang)

    def do_register(name: str, uri: str, lang: str):
        if not (name or "").strip():
            return failed(t("need_name", lang))
        try:
            return done(ctx.api.register_dataset(name.strip(), (uri or "").strip()), lang)
        except ApiError as e:
            return failed(error_text(e, lang))

    def do_sample(kind: str, lang: str):
        try:
            return done(ctx.api.make_sample(kind), lang)
        except ApiError as e:
            return failed(error_text(e, lang))

    outs = [message, pick, info, gallery, chart]
    upload.click(do_upload, [archive, up_name, val_share, ctx.lang], outs)
    register.click(do_register, [reg_name, reg_uri, ctx.lang], outs)
    generate.click(do_sample, [sample, ctx.lang], outs)
    pick.change(show, [pick, ctx.lang], [info, gallery, chart])
    pick.focus(names, ctx.lang, pick)
    ctx.on_load.append((names, [ctx.lang], [pick]))
