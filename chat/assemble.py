"""Extraction + conversation -> ParseResult: decide the intent, apply an edit to the previous spec,
infer task/framework/model through TrainSpec itself, and say what is missing, assumed or wrong.

Both the offline parser and the LLM path end here, so they answer alike.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from chat import replies
from chat.dataset_names import lookup
from chat.model_names import YOLO_FAMILIES, ModelMention
from chat.result import SPEC_ORDER, Context, Extraction, ParseResult
from core import frameworks as registry
from core.spec import TrainSpec, explain

PLACEHOLDER_DATASET = "vtp-placeholder"
DEFERRED = "\0"  # a note to be written once the final model is known
SIZES = "nsmlx"
_TASK_MISSING = "task is missing and no model was given"


def decide_intent(ex: Extraction, prev: dict[str, Any] | None) -> str:
    says = ex.says_something()
    if ex.intent == "compare":
        return "compare"
    if ex.intent in ("export", "promote") and set(ex.fields) <= {"export"} and ex.model is None and not ex.overrides:
        return ex.intent  # of a finished run; the API asks for the formats when none is named
    if ex.intent == "cancel" and not says:
        return "cancel"
    if ex.intent == "confirm" and not says:
        return "confirm"
    if ex.intent == "resume":
        return "resume"
    if ex.intent == "retry" and not says:
        return "retry"
    if prev is None:
        return "new"
    if not says:  # a question or small talk mid-conversation: keep the pending spec (and its question)
        return "edit"
    if ex.intent in ("new", "edit") and ex.source == "llm":
        return ex.intent
    if ex.new_marker:
        return "new"
    if ex.edit_marker or ex.intent == "retry":
        return "edit"
    dataset = ex.fields.get("dataset")
    if dataset and dataset != prev.get("dataset") and (ex.model is not None or "task" in ex.fields):
        return "new"
    return "edit"


def assemble(ex: Extraction, ctx: Context) -> ParseResult:
    lang = ex.lang
    notes = [replies.say(lang, key, **args) for key, args in ex.notes]
    notes.extend(_provenance(ex, lang))
    if ex.clipped:
        notes.append(replies.say(lang, "clipped", n=2000))
    prev = dict(ctx.previous) if ctx.previous else None
    intent = decide_intent(ex, prev)
    result = ParseResult(intent=intent, language=lang, source=ex.source, start=ex.start,  # type: ignore[arg-type]
                         unplaced=list(ex.unplaced))

    if intent == "compare":
        # the API compares the runs (api.compare); the pending spec stays as it was
        result.spec, result.runs = (_ordered(prev) if prev else None), list(ex.runs)
        if ex.says_something():
            notes.append(replies.say(lang, "compare_new_models"))
        result.notes = notes
        result.reply = "\n".join(notes)
        return result
    if intent == "export":
        # the API exports the run (the conversation's last finished one, or the one named) and checks each
        # export (tasks.export); the pending spec stays as it was
        result.spec, result.runs = (_ordered(prev) if prev else None), list(ex.runs)
        result.formats = list(ex.fields.get("export") or [])
        result.notes = notes
        result.reply = "\n".join(notes)
        return result
    if intent == "promote":
        # the API promotes the run (the conversation's last finished one, or the one named) to the registry
        # (api.registry); the pending spec stays as it was
        promotion = ex.promotion
        result.spec, result.runs = (_ordered(prev) if prev else None), list(ex.runs)
        result.formats = list(ex.fields.get("export") or [])
        result.registry_name = promotion.name if promotion else None
        result.aliases = list(promotion.aliases) if promotion else []
        result.best = bool(promotion and promotion.best)
        notes.extend(replies.say(lang, "stage_word", word=w, alias=a) for w, a in (promotion.translated if promotion else []))
        result.notes = notes
        result.reply = "\n".join(notes)
        return result
    if ex.intent == "promote" and ex.promotion is not None and ex.promotion.aliases:
        notes.append(replies.say(lang, "promote_after_training", aliases=", ".join(ex.promotion.aliases)))
    if intent in ("confirm", "cancel", "retry") or (intent == "resume" and not ex.says_something()):
        if prev is None:
            result.spec = None
            if intent != "cancel":
                action = replies.ACTION.get(intent, replies.ACTION["confirm"])[lang]
                result.question = replies.say(lang, "ask_nothing_to_repeat", action=action) if intent != "confirm" \
                    else replies.say(lang, "ask_what")
            result.notes = notes
            result.reply = _reply(result, lang, prev)
            return result
        spec = prev
    elif intent in ("edit", "resume") and prev is not None:
        spec = _apply_edit(prev, ex, notes, lang, result)
    else:
        spec = _stated(ex, notes, lang, prev=None)

    if intent != "cancel":
        spec = _complete(spec, ex, ctx, notes, lang, result, fresh=intent == "new")
    result.spec = _ordered(spec) if spec else None
    notes = [replies.say(lang, n[1:], model=(result.spec or {}).get("model")) if n.startswith(DEFERRED) else n
             for n in notes]
    if intent in ("edit", "resume") and prev is not None and result.spec is not None:
        result.changes = [k for k in SPEC_ORDER if result.spec.get(k) != prev.get(k) and k != "framework"]
    result.notes = notes
    if intent != "cancel":
        _check(result, ctx, lang)
        if ex.ambiguous_model is not None and ex.model is None:
            written, options = ex.ambiguous_model
            ask = replies.say(lang, "model_ambiguous", written=written, options=", ".join(options))
            result.missing.append("model")
            result.ready = False
            result.question = " ".join(q for q in (ask, result.question) if q)
    result.reply = _reply(result, lang, prev)
    return result


def _provenance(ex: Extraction, lang: str) -> list[str]:
    """Where a negated or corrected value came from, and the words nothing placed."""
    out = []
    for key, words in ex.negated.items():
        if key == "model":
            out.append(replies.say(lang, "negated_model", words=words))
            continue
        value = ex.fields.get(key, ex.overrides.get(key))
        if isinstance(value, bool):
            value = ("on" if value else "off") if lang != "ko" else ("켬" if value else "끔")
        elif isinstance(value, list) or value is None:
            value = ", ".join(value or []) or "-"
        out.append(replies.say(lang, "negated", field=key, value=value, words=words))
    for key, (old, new) in ex.corrected.items():
        out.append(replies.say(lang, "corrected", field=key, old=old, new=new))
    if ex.unplaced:
        out.append(replies.say(lang, "unplaced", words=", ".join(f"'{w}'" for w in ex.unplaced)))
    return out


def _stated(ex: Extraction, notes: list[str], lang: str, prev: dict[str, Any] | None) -> dict[str, Any]:
    """The fields this message states, with its model mention resolved (YOLO parts filled from the
    previous model or the size words)."""
    spec = dict(ex.fields)
    prev_model = (prev or {}).get("model") or ""
    prev_parts = _yolo_parts(prev_model)
    m = ex.model
    if m is not None:
        if m.family is not None:
            size = m.size or ex.size or (prev_parts[1] if prev_parts else None)
            model = m.resolved(size)
            if m.alias_note == "yolo_version" and m.family == "yolo11":
                notes.append(replies.say(lang, "yolo_version", family="YOLO11"))
            if m.size is None and ex.size is None and not prev_parts:
                notes.append(DEFERRED + "model_size_default")
            elif m.size is None and ex.size is not None:
                notes.append(DEFERRED + "model_size_word")
            spec["model"] = model
            if m.suffix:
                spec.setdefault("task", m.task_hint)
        else:
            spec["model"] = m.name or m.text
            if m.alias_note == "alias":
                notes.append(replies.say(lang, "alias", written=m.text, model=spec["model"]))
            if m.framework == "huggingface":
                spec["framework"] = "huggingface"
            if m.task_hint and m.framework != "timm":  # timm names imply classify through TrainSpec itself
                spec.setdefault("task", m.task_hint)
    elif ex.size is not None and not prev_parts and spec.get("framework") in (None, "ultralytics"):
        spec["model"] = f"yolo11{ex.size}"
        notes.append(DEFERRED + "model_size_word")
    elif (ex.size is not None or ex.size_step) and prev_parts:
        family, size, suffix = prev_parts
        new_size = ex.size or SIZES[max(0, min(4, SIZES.index(size) + ex.size_step))]
        if new_size != size:
            spec["model"] = f"{family}{new_size}{suffix}"
    if ex.overrides:
        spec["overrides"] = dict(ex.overrides)
    return spec


def _apply_edit(prev: dict[str, Any], ex: Extraction, notes: list[str], lang: str, result: ParseResult) -> dict[str, Any]:
    stated = _stated(ex, notes, lang, prev)
    spec = dict(prev)
    if "model" in stated and stated["model"] != prev.get("model"):
        if "framework" not in ex.fields:
            spec.pop("framework", None)
        if "task" not in stated and not _keeps_task(stated["model"], prev.get("task")):
            spec.pop("task", None)  # the new model brings its own task
    if "task" in stated and "model" not in stated and stated["task"] != prev.get("task"):
        model = prev.get("model") or ""
        parts = _yolo_parts(model)
        if parts:
            spec["model"] = parts[0] + parts[1]
        elif model:
            fw = registry.capabilities(prev["framework"]) if prev.get("framework") in registry.frameworks() else None
            if fw is None or stated["task"] not in fw.tasks:
                spec.pop("model", None)
                spec.pop("framework", None)
                notes.append(replies.say(lang, "model_dropped", model=model, task=stated["task"]))
    for key, value in stated.items():
        if key == "overrides":
            spec["overrides"] = {**(prev.get("overrides") or {}), **value}
        else:
            spec[key] = value
    for key, factor in ex.scale.items():
        base = spec.get(key) or _default_of(key, spec)
        spec[key] = max(1, int(round(base * factor)))
    for key, n in ex.add.items():  # continuing a run ("이어서 50 에폭 더") trains n more from its checkpoint
        spec[key] = n if result.intent == "resume" else int(spec.get(key) or _default_of(key, spec)) + n
    return spec


def _keeps_task(model: str, task: str | None) -> bool:
    """Whether a new model can take over the previous task (yolov8 after a classify run: yolov8n-cls)."""
    from core.spec import framework_of

    parts = _yolo_parts(model)
    if parts and parts[2]:
        return False
    fw = framework_of(model)
    return bool(task and fw in registry.frameworks() and task in registry.capabilities(fw).tasks)


def _default_of(key: str, spec: dict[str, Any]) -> int:
    if key == "image_size":
        fw = spec.get("framework")
        return registry.capabilities(fw).image_size.default if fw in registry.frameworks() else 640
    return int(TrainSpec.model_fields[key].default)


def _yolo_parts(model: str) -> tuple[str, str, str] | None:
    m = re.fullmatch(r"(yolo11|yolov8|yolo26)([nsmlx])(-(?:seg|cls|pose|obb))?", model or "")
    return (m.group(1), m.group(2), m.group(3) or "") if m else None


def _complete(spec: dict[str, Any], ex: Extraction, ctx: Context, notes: list[str], lang: str,
              result: ParseResult, fresh: bool) -> dict[str, Any]:
    """Infer task/framework/model the way TrainSpec does; record what is missing or refused."""
    dataset = spec.get("dataset")
    if dataset and "://" not in dataset:  # 'COCO8' is the registered 'coco8' (and 'COCO8@v1' its version)
        base, at, selector = dataset.partition("@")
        if base not in ctx.datasets:
            spec["dataset"] = next((name for name in ctx.datasets if name.lower() == base.lower()), base) + at + selector
    record, _ = lookup(ctx, spec.get("dataset"))
    dtask = getattr(record, "task", None)
    bare_model = not spec.get("model") or (_yolo_parts(spec["model"]) or ("", "", "-"))[2] == ""
    if dtask and not spec.get("task") and bare_model and not _not_installed(spec):
        spec["task"] = dtask
        if not spec.get("model") or dtask != "detect":  # a bare YOLO name already means detect
            notes.append(replies.say(lang, "task_from_dataset", dataset=spec["dataset"], task=dtask))
    elif dtask and spec.get("task") and spec["task"] != dtask:
        notes.append(replies.say(lang, "task_dataset_mismatch", dataset=spec["dataset"], dtask=dtask, task=spec["task"]))
    if not spec:
        return spec
    if _not_installed(spec):
        model = spec.get("model") or "?"
        notes.append(replies.say(lang, "huggingface_later", model=model))
        result.errors.append(replies.say("en", "huggingface_later", model=model))
        if not spec.get("task"):
            result.missing.append("task")
        return spec
    _map_overrides(spec, notes, lang)
    had_model = bool(spec.get("model"))
    data = {**spec, "dataset": spec.get("dataset") or PLACEHOLDER_DATASET}
    try:
        ts = TrainSpec.model_validate(data)
    except ValidationError as e:
        for line in explain(e).splitlines():
            if _TASK_MISSING in line:
                result.missing.append("task")
            else:
                result.errors.append(line)
        return spec
    spec["task"], spec["framework"], spec["model"] = ts.task, ts.framework, ts.model
    if not had_model:
        notes.append(replies.say(lang, "model_default", model=ts.model, task=ts.task))
    if fresh and "epochs" not in spec and spec.get("dataset"):
        notes.append(replies.say(lang, "epochs_default", epochs=TrainSpec.model_fields["epochs"].default))
    return spec


def _map_overrides(spec: dict[str, Any], notes: list[str], lang: str) -> None:
    """Generic override names and values -> the framework's own ('dropout' -> timm 'drop_rate')."""
    overrides = spec.get("overrides")
    if not overrides:
        return
    fw = spec.get("framework")
    if fw is None and spec.get("model"):
        from core.spec import framework_of

        fw = framework_of(spec["model"])
    if fw is None and spec.get("task"):  # the framework TrainSpec itself picks for the task
        try:
            fw = TrainSpec.model_validate({"task": spec["task"], "dataset": PLACEHOLDER_DATASET}).framework
        except ValidationError:
            fw = None
    if fw not in registry.frameworks():
        return
    caps = registry.capabilities(fw)
    mapped: dict[str, Any] = {}
    for key, value in overrides.items():
        own = caps.generic_overrides.get(key, key)
        kind = caps.overrides.get(own)
        if kind is None and caps.overrides:  # an option this framework does not have: said, not sent
            notes.append(replies.say(lang, "option_ignored", framework=fw, option=key))
            continue
        if kind == "bool" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = bool(value)
        elif kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif own == "optimizer" and isinstance(value, str):
            value = caps.optimizer_names.get(value.lower(), value if caps.optimizer_names else value.lower())
        mapped[own] = value
    if mapped:
        spec["overrides"] = mapped
    else:
        spec.pop("overrides", None)


def _check(result: ParseResult, ctx: Context, lang: str) -> None:
    spec = result.spec
    if spec is None:  # nothing understood: ask for both, listing what exists
        result.missing = ["dataset", "task"]
        result.question = _question(result, ctx, lang, None)
        return
    if not spec.get("dataset") and "dataset" not in result.missing:
        result.missing.insert(0, "dataset")
    unknown = None
    dataset = spec.get("dataset")
    found, version_problem = lookup(ctx, dataset)
    if dataset and "://" not in dataset and ctx.registry_error is None and found is None:
        unknown = dataset
        result.notes.append(replies.say(lang, "unknown_dataset", dataset=dataset))
        result.errors.append(replies.say("en", "unknown_dataset", dataset=dataset))
    elif version_problem:
        result.notes.append(replies.say(lang, "unknown_version", **version_problem))
        result.errors.append(replies.say("en", "unknown_version", **version_problem))
    if ctx.registry_error:
        result.notes.append(replies.say(lang, "registry_unreadable", error=ctx.registry_error))
    if spec.get("dataset") and not _not_installed(spec):
        try:
            TrainSpec.model_validate(spec)
            result.valid = True
        except ValidationError as e:
            result.errors.extend(line for line in explain(e).splitlines() if line not in result.errors)
    result.ready = result.valid and not result.missing and not result.errors
    result.question = _question(result, ctx, lang, unknown)


def _not_installed(spec: dict) -> bool:
    """A framework the person named that has no trainer plugin here (asked about, never submitted)."""
    from core.frameworks import frameworks

    return bool(spec.get("framework")) and spec["framework"] not in frameworks()


def _question(result: ParseResult, ctx: Context, lang: str, unknown: str | None) -> str | None:
    spec = result.spec or {}
    names = _dataset_list(ctx)
    parts = []
    if _not_installed(spec):
        alt = "vit_base_patch16_224" if spec.get("task") in (None, "classify") else \
            {"detect": "yolo11n", "segment": "yolo11n-seg"}.get(spec.get("task") or "", "yolo11n")
        parts.append(replies.say(lang, "ask_huggingface", model=spec.get("model"), alternative=alt))
    elif result.errors and unknown is None:
        parts.append(replies.say(lang, "ask_fix", error=result.errors[0].rstrip(".") + "."))
    elif result.errors and len(result.errors) > 1:
        other = [e for e in result.errors if "is not registered" not in e]
        if other:
            parts.append(replies.say(lang, "ask_fix", error=other[0].rstrip(".") + "."))
    if unknown is not None:
        parts.append(replies.say(lang, "ask_unknown_dataset", dataset=unknown, datasets=names) if names
                     else replies.say(lang, "ask_unknown_dataset_none", dataset=unknown))
    if "dataset" in result.missing:
        parts.append(replies.say(lang, "ask_dataset", datasets=names) if names else replies.say(lang, "ask_dataset_none"))
    if "task" in result.missing:
        parts.append(replies.say(lang, "ask_task"))
    return " ".join(parts) or None


def _dataset_list(ctx: Context, limit: int = 20) -> str:
    items = []
    for name in sorted(ctx.datasets)[:limit]:
        task = getattr(ctx.datasets[name], "task", None)
        items.append(f"{name} ({task})" if task else name)
    more = len(ctx.datasets) - limit
    return ", ".join(items) + (f", … (+{more})" if more > 0 else "")


def _reply(result: ParseResult, lang: str, prev: dict[str, Any] | None) -> str:
    spec = result.spec or {}
    lines = []
    if result.intent == "cancel":
        lines.append(replies.say(lang, "cancelled"))
    elif result.ready and result.intent != "confirm":  # a confirmation's reply is the run started (api.chat_service)
        text = replies.summary(lang, spec)
        key = {"retry": "retrying", "resume": "resuming"}.get(result.intent)
        lines.append(replies.say(lang, key or "ask_confirm", summary=text))
    for change in result.changes:
        old = (prev or {}).get(change)
        lines.append(replies.say(lang, "changed", field=change, old="-" if old is None else old,
                                 new="-" if spec.get(change) is None else spec.get(change)))
    lines.extend(result.notes)
    if result.question:
        lines.append(result.question)
    return "\n".join(lines)


def _ordered(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: spec[k] for k in SPEC_ORDER if k in spec and spec[k] is not None}
    out.update({k: v for k, v in spec.items() if k not in out and v is not None})
    return out


__all__ = ["ModelMention", "YOLO_FAMILIES", "assemble", "decide_intent"]
