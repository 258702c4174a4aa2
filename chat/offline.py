"""The offline parser: one request (Korean or English) -> an Extraction. Deterministic, no network.

It reads the request in passes, blanking out what each pass took so the next cannot take it again
(the 11 in 'yolo11n' is not an epoch count, the 'detect' in dataset 'shapes-detect' is not a task):
URIs and paths, key=value pairs, model names, dataset names, numbers with their field words, then
words (task, device, size, intent).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from chat import dataset_names
from chat import lexicon as L
from chat.fields import take_numbers
from chat.knobs import take_knobs
from chat.model_names import (
    ModelMention,
    find_aliases_and_timm,
    find_hub_ids,
    find_near_misses,
    find_yolo,
    parse_model_string,
)
from chat.negation import corrected_between, negation_at, take_switches
from chat.numbers import NUM, to_number, words_to_digits
from chat.promote import is_promotion, take_promotion
from chat.result import Context, Extraction
from chat.safety import (
    LOCAL_PATH_RE,
    URI_RE,
    clip,
    dataset_uri_problem,
    normalise_file_uri,
    safe_name,
    safe_token,
    trim_uri,
)
from chat.text import FIELD_KEYS, HANGUL, IC, blank, is_override_key
from chat.unplaced import unplaced_words

_KV_RE = re.compile(r"(?<![\w.-])(?P<k>[A-Za-z][\w.-]{0,40})[ \t]{0,2}[=:][ \t]{0,2}(?P<v>\"[^\"]*\"|'[^']*'|[^\s,;]+)")
_WIDE = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}  # full-width Latin -> ASCII (not NFKC: it
# would turn the jamo of 'ㅇㅇ' into conjoining jamo)


def language_of(text: str) -> str:
    return "ko" if HANGUL.search(text) else "en"


def extract(message: str, ctx: Context) -> Extraction:
    text, clipped = clip(message or "")
    text = text.translate(_WIDE).replace("\u200b", "")
    ex = Extraction(lang=language_of(text), clipped=clipped)
    text = _take_run_refs(text, ex)
    work = _take_uris(text, ex, ctx)
    work = _take_key_values(work, ex, ctx)
    work = dataset_names.take_registered(work, ex, ctx)
    work = _take_models(work, ex)
    work = take_switches(work, ex)
    work = words_to_digits(work)
    work = take_knobs(work, ex, *known_class_names(ex, ctx))
    work = dataset_names.take_phrases(work, ex, ctx)
    work = take_numbers(work, ex)
    work = _take_words(work, ex)
    ex.unplaced = unplaced_words(work)
    return ex


def known_class_names(ex: Extraction, ctx: Context) -> tuple[list[str], bool]:
    """The class names a class list may use, and whether they are exactly one dataset's: the named
    dataset's (this message or the conversation's), else every registered dataset's."""
    def classes_of(record: Any) -> list[str]:
        found = record.get("classes") if isinstance(record, dict) else getattr(record, "classes", None)
        return [c for c in found or [] if isinstance(c, str)]

    named = ex.fields.get("dataset") or (ctx.previous or {}).get("dataset")
    record, _ = dataset_names.lookup(ctx, named if isinstance(named, str) else None)
    if record is not None:
        return classes_of(record), True
    return [c for record in ctx.datasets.values() for c in classes_of(record)], False


def _take_run_refs(text: str, ex: Extraction) -> str:
    """In a comparison ("compare 3f2a9c1e and yolo11n-shapes-detect-2"), a promotion (its aliases and
    model name first: chat.promote) or an export request ("export 3f2a9c1e to onnx"), the runs it names: ids (8 or more hex digits) and readable run names,
    blanked so they are not read as a model or a dataset. Elsewhere nothing is taken."""
    if re.search(L.COMPARE, text, IC):
        pass
    elif is_promotion(text):  # "이 모델 production으로 올려줘": a promotion, unless it also asks for training
        ex.intent = "promote"
        ex.promotion, text = take_promotion(text)
    elif re.search(L.EXPORT_VERB, text, IC):
        ex.intent = "export"  # an export of a finished run, unless the message also asks for training (assemble)
    else:
        return text
    work = text
    for m in re.finditer(L.RUN_REF, text.lower()):
        ref = m.group(0)
        if re.search(r"\d", ref) and ref not in ex.runs:
            ex.runs.append(ref)
            work = blank(work, m.start(), m.end())
    return work


def _take_uris(text: str, ex: Extraction, ctx: Context) -> str:
    work = text
    for m in URI_RE.finditer(text):
        uri = trim_uri(m.group(0))
        problem = dataset_uri_problem(uri, ctx.storage_url)
        if problem is None:
            dataset_names.set_dataset(ex, normalise_file_uri(uri) if uri.lower().startswith("file:") else uri, "uri")
        else:
            ex.notes.append(("refused_uri_" + problem, {"uri": uri[:120]}))
        work = blank(work, m.start(), m.end())
    for m in LOCAL_PATH_RE.finditer(work):
        if len(m.group(0)) > 2 and re.search(r"[A-Za-z]", m.group(0)):
            ex.notes.append(("refused_local_path", {"path": m.group(0)[:120]}))
            work = blank(work, m.start(), m.end())
    return work


def _take_key_values(work: str, ex: Extraction, ctx: Context) -> str:
    for m in list(_KV_RE.finditer(work)):
        key, raw = m.group("k").lower().replace("-", "_"), m.group("v").strip("\"'").rstrip(".,;:!?)]}")
        if key.startswith(("http", "s3", "file")):
            continue
        if key.startswith("overrides."):
            target = "override:" + key.split(".", 1)[1]
        elif key in FIELD_KEYS:
            target = FIELD_KEYS[key]
        elif re.fullmatch(r"[a-z][a-z0-9_]{1,40}", key) and is_override_key(key):
            target = "override:" + key
        else:
            continue
        end = m.end()
        if target == "devices":  # a GPU list goes on past the comma: devices=0,1
            whole = re.match(r"(?:cuda:)?\d{1,3}(?:[ \t]*,[ \t]*\d{1,3})*(?!\w)", work[m.start("v"):])
            if whole:
                raw, end = re.sub(r"\s", "", whole.group(0)), m.start("v") + whole.end()
            if re.fullmatch(r"(?:cuda:)?\d{1,3}(?:,\d{1,3})*|cpu:\d{1,3}", raw, IC):
                ex.fields["devices"] = raw.lower()
            else:  # the spec's own message says which forms there are
                ex.fields["devices"] = raw[:40] if safe_token(raw, 40) else "?"
            work = blank(work, m.start(), end)
            continue
        value = _scalar(raw)
        if not _store_field(ex, target, value, raw, ctx):
            continue
        work = blank(work, m.start(), end)
    return work




def _scalar(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        value = yaml.safe_load(raw) if re.fullmatch(r"[-+]?[\d.eE+-]+", raw) else None
    except yaml.YAMLError:
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    number = to_number(raw) if re.fullmatch(NUM, raw) else None
    return number if number is not None else raw


def _store_field(ex: Extraction, target: str, value: Any, raw: str, ctx: Context) -> bool:
    if target.startswith("override:"):
        if isinstance(value, str) and not safe_token(value, 40):
            ex.notes.append(("refused_value", {"key": target.split(":", 1)[1], "value": raw[:60]}))
            return True
        ex.overrides[target.split(":", 1)[1]] = value
        return True
    if target == "dataset":
        problem = dataset_uri_problem(raw, ctx.storage_url) if "://" in raw else (None if safe_name(raw) else "name")
        if problem:
            ex.notes.append(("refused_uri_" + problem if "://" in raw else "refused_dataset_name", {"uri": raw[:120]}))
        else:
            ex.fields["dataset"], ex.dataset_strength = raw, "strong"
        return True
    if target == "model":
        if not safe_token(raw, 120):
            ex.notes.append(("refused_value", {"key": "model", "value": raw[:60]}))
        else:
            ex.model = parse_model_string(raw)
        return True
    if target in ("task", "framework", "device"):
        if isinstance(value, (str, int)) and safe_token(str(value), 40):
            words = L.TASK_WORDS if target == "task" else L.framework_words() if target == "framework" else ()
            ex.fields[target] = next((name for name, p in words if re.search(p, str(value), IC)), str(value).lower())
        return True
    if target == "pretrained":
        ex.fields["pretrained"] = value if isinstance(value, bool) else str(value).lower() not in ("0", "none")
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ex.fields[target] = value
        return True
    return False


def _take_models(work: str, ex: Extraction) -> str:
    """Every model mention, in order of appearance. A negated one ('yolo11n 말고', 'not resnet50',
    'instead of vit') is never chosen; a later one replaces the chosen one only when a correction word
    stands between them ('yolo11n, 아니 yolo11s', 'resnet18 ... actually make it resnet50')."""
    mentions: list[tuple[int, int, ModelMention]] = []
    for finder in (find_hub_ids, find_yolo, find_aliases_and_timm, find_near_misses):
        for start, end, mention in finder(work):
            mentions.append((start, end, mention))
            work = blank(work, start, end)
    chosen_end = None
    for start, end, mention in sorted(mentions, key=lambda t: t[0]):
        if mention.alias_note == "ambiguous":  # asked about, never replaced by a default
            ex.ambiguous_model = (mention.text, mention.candidates)
            continue
        neg = negation_at(work, start, end)
        if neg is not None:
            ex.negated["model"] = f"{mention.text} {neg[0]}" if neg[2] > end else f"{neg[0]} {mention.text}"
            work = blank(work, neg[1], neg[2])
            continue
        if ex.model is None:
            ex.model, chosen_end = mention, end
        elif corrected_between(work, chosen_end or 0, start) and mention.resolved() != ex.model.resolved():
            ex.corrected["model"] = (ex.model.resolved(), mention.resolved())
            ex.model, chosen_end = mention, end
    return work


def _take_words(work: str, ex: Extraction) -> str:
    """Task, framework, device, size, intent and option words; returns ``work`` with every word the
    lexicon knows blanked, so what is left is what no pass could place."""
    low = re.sub(L.TASK_FALSE_FRIENDS, " ", work, flags=IC)
    if "task" not in ex.fields:
        for task, pattern in L.TASK_WORDS:
            if re.search(pattern, low, IC):
                ex.fields["task"] = task
                break
    if "framework" not in ex.fields:
        for framework, pattern in L.framework_words():
            if re.search(pattern, low, IC):
                ex.fields["framework"] = framework
                break
    if "device" not in ex.fields:
        if re.search(L.DEVICE_CPU, low, IC):
            ex.fields["device"] = "cpu"
        elif re.search(L.DEVICE_MPS, low, IC):
            ex.fields["device"] = "mps"
        elif re.search(L.DEVICE_GPU, low, IC) and not re.search(r"gpu\s*(?:없이|메모리|memory)", low, IC):
            ex.fields["device"] = "cuda"
    if "pretrained" not in ex.fields:
        if re.search(L.SCRATCH, low, IC):
            ex.fields["pretrained"] = False
        elif re.search(L.PRETRAINED, low, IC):
            ex.fields["pretrained"] = True
    if "patience" not in ex.fields and re.search(L.PATIENCE_OFF, low, IC):
        ex.fields["patience"] = 0
    _take_override_words(low, ex)
    _take_size_words(low, ex)
    _take_intent_words(low, ex)
    spaces = lambda m: " " * len(m.group(0))  # noqa: E731
    low = L.KNOWN_WORDS_RE.sub(spaces, low)
    for _, pattern in L.framework_words():
        low = re.sub(pattern, spaces, low, flags=IC)
    return low


def _take_override_words(low: str, ex: Extraction) -> None:
    for pattern, key in L.OVERRIDE_WORDS:
        if key in ex.overrides:
            continue
        for m in re.finditer(pattern, low, IC):
            neg = negation_at(low, m.start(), m.end())  # 'mosaic 빼고', 'turn off mixup', 'no cutmix'
            if neg is not None:
                ex.overrides[key] = 0
                ex.negated[key] = low[neg[1]:neg[2]].strip()
                break
    if "amp" not in ex.overrides and re.search(L.AMP_OFF, low, IC):
        ex.overrides["amp"] = False
    if "cos_lr" not in ex.overrides and re.search(L.COS_LR, low, IC):
        ex.overrides["cos_lr"] = True
    if "optimizer" not in ex.overrides:
        m = re.search(r"(?<![A-Za-z])(sgd|adamw|adam|nadam|radam|rmsprop|adamax)(?![A-Za-z])", low, IC) or \
            re.search(r"(?:optimizer|옵티마이저)\s*(?:은|는|을|를|=|:)?\s*(lamb|lion)\b", low, IC)
        if m:
            ex.overrides["optimizer"] = m.group(1).lower()


def _take_size_words(low: str, ex: Extraction) -> None:
    if re.search(L.SIZE_STEP_UP, low, IC) and not re.search(r"(?:더\s*큰|bigger|larger)\s*(?:데이터|dataset|image|이미지|batch|배치)", low, IC):
        ex.size_step = 1
    elif re.search(L.SIZE_STEP_DOWN, low, IC) and not re.search(r"(?:더\s*작은|smaller)\s*(?:데이터|dataset|image|이미지|batch|배치)", low, IC):
        ex.size_step = -1
    for size, pattern in L.SIZE_PHRASES:
        if ex.size_step and size in "sl":
            continue
        m = re.search(pattern, low, IC)
        if m and not re.match(r"\s*(?:데이터|dataset|data|이미지|image|batch|배치|객체|object)", low[m.end():], IC):
            ex.size = size
            break
    if ex.size is None:
        m = re.search(r"(?<![A-Za-z가-힣])(nano|xlarge|x-large|extra[\s-]large|나노|엑스라지|미디엄|미디움|스몰|라지)(?![A-Za-z])", low, IC)
        if m:
            ex.size = L.SIZE_WORDS.get(m.group(1).lower().replace("extra large", "extra-large"), "x")


def _take_intent_words(low: str, ex: Extraction) -> None:
    stripped = low.strip().strip(".!~ ")
    if re.search(L.COMPARE, low, IC):
        ex.intent = "compare"
    elif re.search(L.RESUME, low, IC):
        ex.intent = "resume"
    elif re.search(L.RETRY, low, IC):
        ex.intent = "retry"
    elif re.search(L.CANCEL, stripped, IC):
        ex.intent = "cancel"
    elif re.search(L.CONFIRM, stripped, IC):
        ex.intent = "confirm"
    ex.edit_marker = re.search(L.EDIT_MARKERS, low, IC) is not None
    ex.new_marker = re.search(L.NEW_MARKERS, low, IC) is not None
    ex.start = re.search(L.START_WORDS, low, IC) is not None or ex.intent in ("confirm", "retry", "resume")
