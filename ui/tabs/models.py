"""Models: trained checkpoints with their metrics; predictions drawn on a dropped-in image; exports
checked against PyTorch; the model registry (promote the picked run, move aliases)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from core.escape import md_text
from ui import cards
from ui.client import ApiError
from ui.context import Ctx, error_text
from ui.i18n import t
from ui.tabs.chat import run_summary


def choices(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for r in runs:
        if r["state"] != "completed" or not r.get("checkpoint_uri"):
            continue
        spec, final = r.get("spec") or {}, r.get("final_metrics") or {}
        name = cards.main_metric(final)
        metric = (f" · {cards.metric_name(name)} {final[name]:.3f}" if name and isinstance(final.get(name), int | float)
                  else "")
        # the readable name (<model>-<dataset>-<n>) beside the short id; model and dataset when it has none
        what = r.get("name") or f"{spec.get('model')} · {spec.get('dataset')}"
        out.append((f"{what} · {cards.short_id(r['id'])}{metric}", r["id"]))
    return out


def predictions_text(result: dict[str, Any], lang: str = "en") -> str:
    """Markdown for a prediction: a heading that says what the numbers are, then a ranked list of
    classes (classify: softmax probability 0–1) or up to 20 objects (confidence 0–1, box in pixels)."""
    preds = result.get("predictions") or []
    if result.get("task") == "classify":
        ranked = "\n".join(f"{i + 1}. **{p['class']}** {p['confidence']:.3f}" for i, p in enumerate(preds))
        return f"{t('preds_classify', lang)}\n\n{ranked}" if ranked else "—"
    lines = [f"- **{p['class']}** {p['confidence']:.3f} · {[round(v) for v in p.get('box', [])]}" for p in preds[:20]]
    return t("preds_detect", lang, n=len(preds)) + "\n\n" + "\n".join(lines)


EXPORT_FORMATS = ["onnx", "torchscript", "openvino", "ncnn"]


def exports_table(report: dict[str, Any], lang: str = "en") -> str:
    """The run's export table (GET /api/runs/{id}/exports) as Markdown: one row per export, what
    each number is in the header; a failed format says why in the last column."""
    rows = report.get("rows") or []
    if not rows:
        return t("exports_none", lang)

    def num(v: Any, f: str) -> str:
        return "—" if v is None else format(v, f)

    notes = any(r.get("error") for r in rows)  # a last column only when a row has something to say
    head = t("exports_head", lang) + (f" {t('exports_note', lang)} |" if notes else "")
    lines = [f"**{t('exports_title', lang)}**", "", head, "|" + "---|" * (9 if notes else 8)]
    for r in rows:
        name = r["format"] + (f" ({', '.join(r['options'])})" if r.get("options") else "")
        metric = cards.metric_label(r["metric"], lang) if r.get("metric") else "—"
        line = (f"| {name} | {num(r.get('size_mb'), '.1f')} | {num(r.get('latency_ms_p50'), '.1f')} | {metric} | "
                f"{num(r.get('value'), '.3f')} | {num(r.get('reference'), '.3f')} | {num(r.get('drop'), '+.3f')} | "
                f"{num(r.get('max_abs_diff'), '.0e')} |")
        lines.append(line + (f" {md_text(r.get('error') or '')[:160]} |" if notes else ""))
    if report.get("machine"):
        lines += ["", t("exports_machine", lang, machine=report["machine"])]
    return "\n".join(lines)


def registry_table(models: list[dict[str, Any]], lang: str = "en") -> str:
    """The registry (GET /api/models/{name} for each model) as Markdown: one row per version, newest
    first, with its aliases, the run it came from, what it ships, and its main metric named."""
    if not models:
        return t("registry_none", lang)
    lines = [f"**{t('registry_title', lang)}**", "", t("registry_head", lang), "|" + "---|" * 8]
    for model in models:
        for v in model.get("versions") or []:
            record = v.get("record") or {}
            main = record.get("main_metric") or {}
            metric = (f"{cards.metric_label(main['name'], lang)} {main['value']:.3f}"
                      if isinstance(main.get("value"), int | float) else "—")
            run = (record.get("run") or {}).get("name") or (v.get("run_id") or "")[:8]
            export = record.get("export")
            ships = f"{v['format']} ({export['path']})" if export else "pytorch"
            dataset = (record.get("dataset") or {}).get("ref") or (record.get("spec") or {}).get("dataset") or "—"
            lines.append(f"| {md_text(model['name'])} | v{v['version']} | {md_text(', '.join(v.get('aliases') or [])) or '—'} | "
                         f"{md_text(run)} | {md_text(ships)} | {metric} | {md_text(str(dataset))} | {v['created'][:16]} |")
    return "\n".join([*lines, "", t("registry_note", lang)])


def build(ctx: Ctx) -> None:
    L = ctx.labels
    with gr.Row():
        with gr.Column(scale=1):
            pick = L(gr.Dropdown(choices=[], elem_id="model-pick"), "models")
            listed = gr.Markdown(elem_id="model-list")  # what there is, without opening the dropdown
            info = gr.Markdown(elem_id="model-info")
            ckpt = L(gr.File(elem_id="model-ckpt", interactive=False, file_count="multiple"), "download")
            image = L(gr.File(elem_id="model-image", file_count="single"), "image")
            preview = gr.Image(elem_id="model-preview", interactive=False, type="filepath", height=200,
                               show_label=False)
            conf = L(gr.Slider(0.0, 1.0, value=0.25, step=0.05, elem_id="model-conf"), "conf")
            predict = L(gr.Button(variant="primary", elem_id="model-predict"), "predict", "value")
            formats = L(gr.CheckboxGroup(choices=EXPORT_FORMATS, value=["onnx"], elem_id="model-export-formats"),
                        "export_formats")
            export = L(gr.Button(elem_id="model-export"), "export_run", "value")
            reg_name = L(gr.Textbox(elem_id="reg-name", max_lines=1), "reg_name")
            reg_alias = L(gr.Textbox(elem_id="reg-alias", max_lines=1), "reg_alias")
            reg_export = L(gr.Dropdown(choices=[], elem_id="reg-export"), "reg_export")
            promote = L(gr.Button(elem_id="reg-promote"), "promote", "value")
        with gr.Column(scale=2):
            message = gr.Markdown(elem_id="model-message")
            drawn = L(gr.Image(elem_id="model-drawn", interactive=False, type="pil"), "prediction")
            preds = gr.Markdown(elem_id="model-preds")
            exports = gr.Markdown(elem_id="model-exports")
            registry = gr.Markdown(elem_id="model-registry")
            with gr.Row():
                move_model = L(gr.Textbox(elem_id="reg-move-model", max_lines=1), "reg_model")
                move_alias = L(gr.Textbox(elem_id="reg-move-alias", max_lines=1), "reg_alias_one")
                move_version = L(gr.Textbox(elem_id="reg-move-version", max_lines=1), "reg_version")
                move = L(gr.Button(elem_id="reg-move"), "set_alias", "value")

    def load(lang: str):
        try:
            found = choices(ctx.api.runs(limit=200))
        except ApiError as e:
            return gr.update(), error_text(e, lang)
        if not found:
            return gr.update(choices=[]), t("no_runs", lang)
        head = f"**{len(found)}** " + ("개의 학습된 모델 (위에서 고르세요):" if lang == "ko" else
                                      "trained model(s) — pick one above:")
        rows = [f"- {md_text(label)}" for label, _ in found[:10]]
        more = [f"- … {len(found) - 10}" + (" 개 더" if lang == "ko" else " more")] if len(found) > 10 else []
        return gr.update(choices=found), "\n".join([head, *rows, *more])

    def show_exports(run_id: str | None, lang: str) -> str:
        if not run_id:
            return ""
        try:
            return exports_table(ctx.api.exports(run_id), lang)
        except ApiError as e:
            return error_text(e, lang)

    def do_export(run_id: str | None, chosen: list[str], lang: str):
        """Each format chosen, exported and checked by the API in turn (a format that fails is a row
        saying why); the table afterwards."""
        if not run_id:
            return t("need_model", lang), ""
        if not chosen:
            return t("need_formats", lang), show_exports(run_id, lang)
        problems = []
        for fmt in chosen:
            try:
                ctx.api.export(run_id, fmt)
            except ApiError as e:
                problems.append(f"{fmt}: {error_text(e, lang)}")
        said = "\n".join(problems) if problems else t("exporting", lang, n=len(chosen))
        return said, show_exports(run_id, lang)

    def show_registry(lang: str) -> str:
        try:
            return registry_table(ctx.api.registry(), lang)
        except ApiError as e:
            return error_text(e, lang)

    def ship_choices(run_id: str | None, lang: str):
        """What a promotion can ship: the checkpoint alone, or with one of the run's checked exports."""
        pytorch = (t("reg_pytorch", lang), "")
        if not run_id:
            return gr.update(choices=[pytorch], value="")
        try:
            rows = ctx.api.exports(run_id).get("rows") or []
        except ApiError:
            rows = []
        made = [(f"{r['format']} · {r['path']}", r["path"]) for r in rows if r.get("size_mb") is not None]
        return gr.update(choices=[pytorch, *made], value="")

    def do_promote(run_id: str | None, name: str, aliases: str, ship: str | None, lang: str):
        if not run_id:
            return t("need_model", lang), show_registry(lang)
        wanted = [a.strip() for a in (aliases or "").split(",") if a.strip()]
        try:
            v = ctx.api.promote(run_id, (name or "").strip() or None, wanted, ship or None)
        except ApiError as e:
            return error_text(e, lang), show_registry(lang)
        shown = [a for a in v["aliases"] if a != "latest"]
        said = t("promoted", lang, name=md_text(v["name"]), version=v["version"],
                 aliases=f" ({md_text(', '.join(shown))})" if shown else "")
        said += "".join(f"\n\n⚠ {md_text(w)}" for w in v.get("warnings") or [])
        return said, show_registry(lang)

    def do_move(name: str, alias: str, version: str, lang: str):
        if not (name or "").strip() or not (alias or "").strip() or not (version or "").strip():
            return t("need_alias", lang), show_registry(lang)
        try:
            v = ctx.api.set_alias(name.strip(), alias.strip(), version.strip())
        except ApiError as e:
            return error_text(e, lang), show_registry(lang)
        return t("alias_set", lang, name=md_text(v["name"]), alias=md_text(alias.strip().lower()),
                 version=v["version"]), show_registry(lang)

    def show(run_id: str | None, lang: str):
        if not run_id:
            return "", None
        try:
            run = ctx.api.run(run_id)
        except ApiError as e:
            return error_text(e, lang), None
        summary = run_summary(ctx, run["id"]) if run.get("final_metrics") else None
        metrics, hidden = cards.shown_metrics(run.get("final_metrics") or {}, (summary or {}).get("num_classes"))
        rows = [f"| {cards.metric_label(k, lang)} | {cards.fmt(v)} |" for k, v in sorted(metrics.items())][:14]
        head = "| 지표 | 값 |" if lang == "ko" else "| Metric | Value |"
        title = f"**{md_text(run['name'])}** · " if run.get("name") else ""
        text = "\n".join([f"{title}`{run['id']}` · {run['spec'].get('task')}", "", head, "|---|---|", *rows])
        said = cards.scratch_notes(run, summary or {}, metrics, lang)  # why the numbers may read 0
        if said:
            text += "\n\n" + "\n".join(f"- {line}" for line in said)
        if hidden:
            text += "\n\n" + cards.hidden_top5_note(summary["num_classes"], lang)
        try:
            files = checkpoint_files(run)
        except ApiError as e:  # the metrics are still worth showing
            return text + "\n\n" + error_text(e, lang), None
        return text, files

    def checkpoint_files(run: dict):
        """The run's published checkpoint as downloaded files: one file (``best.pt``), or every file
        of a checkpoint folder (a Hugging Face ``save_pretrained`` folder: config and weights)."""
        uri = run.get("checkpoint_uri") or ""
        marker = f"/runs/{run['id']}/"
        rel = uri.split(marker, 1)[1] if marker in uri else "checkpoints/best.pt"
        listed = [f["path"] for f in ctx.api.artifacts(run["id"])]
        if rel in listed:
            return str(ctx.run_file(run["id"], rel))
        inside = [p for p in listed if p.startswith(rel.rstrip("/") + "/")]
        if not inside:
            raise ApiError(404, f"the run's checkpoint {rel} is not among its files")
        return [str(ctx.run_file(run["id"], p)) for p in inside]

    def show_image(file: str | None):
        """The uploaded image itself, so the person sees what they are predicting on (None if not an image)."""
        if not file:
            return None
        try:
            with Image.open(file) as im:
                im.verify()
        except Exception:  # noqa: BLE001 - anything PIL cannot read is simply not previewed
            return None
        return file

    def do_predict(run_id: str | None, file: str | None, threshold: float, lang: str):
        if not run_id:
            return t("need_model", lang), None, ""
        if not file:
            return t("need_image", lang), None, ""
        try:
            result = ctx.api.predict(run_id, Path(file), conf=float(threshold))
        except ApiError as e:
            return error_text(e, lang), None, ""
        img = Image.open(io.BytesIO(base64.b64decode(result["png_base64"])))
        return "", img, predictions_text(result, lang)

    pick.focus(load, ctx.lang, [pick, listed])
    pick.change(show, [pick, ctx.lang], [info, ckpt])
    pick.change(show_exports, [pick, ctx.lang], exports)
    export.click(do_export, [pick, formats, ctx.lang], [message, exports]).then(
        ship_choices, [pick, ctx.lang], reg_export)
    pick.change(ship_choices, [pick, ctx.lang], reg_export)
    promote.click(do_promote, [pick, reg_name, reg_alias, reg_export, ctx.lang], [message, registry])
    move.click(do_move, [move_model, move_alias, move_version, ctx.lang], [message, registry])
    predict.click(do_predict, [pick, image, conf, ctx.lang], [message, drawn, preds])
    image.change(show_image, image, preview, show_progress="hidden")
    ctx.on_load.append((load, [ctx.lang], [pick, listed]))
    ctx.on_load.append((show_registry, [ctx.lang], registry))
    ctx.on_lang.append((show_registry, [ctx.lang], registry))
