"""Dataset names in a request: registered names (also written 'coco 8' or 'shapes detect'), names next to a
dataset word ('X 데이터셋', 'dataset X', 'the X data'), and weaker cues ('on X', 'X로', 'X 분류', a lone
'dota8'). A name the person wrote is kept as written even when it is not registered.
"""

from __future__ import annotations

import functools
import re
from types import SimpleNamespace
from typing import Any

from chat import lexicon as L
from chat.knobs import export_formats
from chat.model_names import known_model_index, squash
from chat.negation import negation_at
from chat.result import Context, Extraction
from chat.text import HANGUL, IC, NAME, blank, is_field_key, is_override_key
from chat.unplaced import _EN_FILLER as _FILLER

_NAME = NAME

def take_registered(work: str, ex: Extraction, ctx: Context) -> str:
    if not ctx.datasets:
        return work
    for name, pattern in _registered_patterns(tuple(sorted(ctx.datasets, key=len, reverse=True))):
        m = pattern.search(work)
        if m and (neg := negation_at(work, m.start(), m.end())) is not None:  # 'coco8 말고', 'not on coco8'
            ex.negated["dataset"] = work[neg[1]:neg[2]].strip()
            work = blank(work, neg[1], neg[2])
        elif m:
            if "dataset" not in ex.fields or ex.dataset_strength not in ("uri", "strong"):
                ex.fields["dataset"], ex.dataset_strength = name + _selector(m), "registered"
            work = blank(work, m.start(), m.end())
    return work


def lookup(ctx: Context, dataset: str | None) -> tuple[Any, dict[str, str] | None]:
    """The registered record ``dataset`` names (``pets``, ``pets@v1``, ``pets@3f2a9c``) with, for a pinned
    name, that version's fields (its classes); and why not, when the name is registered but the version
    is not: ``{"dataset", "selector", "versions"}`` for replies' ``unknown_version``. (None, None) for an
    unregistered name or a URI."""
    if not dataset or "://" in dataset:
        return None, None
    name, _, selector = dataset.partition("@")
    record = ctx.datasets.get(name)
    versions = [v for v in getattr(record, "versions", None) or [] if isinstance(v, dict)]
    if record is None or not selector or not versions:
        return record, None  # a record without versions (registered before versions) pins nothing
    from tasks.dataset_store import matching_versions

    found = matching_versions(name, versions, selector) or []
    if len(found) != 1:
        listed = ", ".join(f"v{v.get('version')}" for v in versions)
        return record, {"dataset": name, "selector": selector, "versions": listed}
    return SimpleNamespace(**{**vars(record), **found[0]}) if hasattr(record, "__dict__") else record, None


def _selector(m: re.Match[str]) -> str:
    """The version a registered name is pinned to ('pets@v1', 'pets@3f2a9c', 'pets 데이터셋 v2',
    'pets version 2', 'pets 버전 2'), as '@v1' / '@3f2a9c'; '' for the latest."""
    if m.group("hash"):
        return "@" + m.group("hash").lower()
    version = m.group("ver") or m.group("ver2")
    return f"@v{int(version)}" if version else ""


@functools.lru_cache(maxsize=8)
def _registered_patterns(names: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for name in names:
        parts = re.findall(r"[A-Za-z]+|\d+|[^A-Za-z\d_.-]+", name)
        body = r"[\s_.-]?".join(re.escape(part) for part in parts)
        pin = (r"(?:@(?:v(?P<ver>\d{1,6})|(?P<hash>[0-9a-f]{4,64}))(?![A-Za-z0-9_-])|"
               r"(?:\s*(?:dataset|data\s*set|데이터\s*셋|데이터)(?:의)?)?\s*(?:version\s*|버전\s*|\bv)(?P<ver2>\d{1,6})(?![\d.]))?")
        out.append((name, re.compile(r"(?<![A-Za-z0-9_./-])" + body + r"(?![A-Za-z0-9_-])" + pin, IC)))
    return out


_STRONG_DATASET = [
    re.compile(r"(?:dataset|data\s*set)s?\s*(?:called|named|is|=|:|-|은|는|을|를|이|가|으로는|로는|로|으로)?\s*[\"'`“]?(?P<d>" + _NAME + ")", IC),
    re.compile(r"(?:the|my|our|a)?\s*[\"'`“]?(?P<d>" + _NAME + r")[\"'`”]?(?:\s*(?:" + L.DATASET_KO_ONLY + r")|\s+(?:dataset|data\s*set|data)\b)", IC),
    re.compile(r"(?:데이터\s*셋|데이터셋|데이터|데이타)\s*(?:은|는|을|를|이|가|:|=|으로는)?\s*[\"'`“]?(?P<d>" + _NAME + r")", IC),
    re.compile(r"[\"'`“]?(?P<d>" + _NAME + r")[\"'`”]?\s*(?:이라는|라는|이란|란|이라고\s*하는|라고\s*하는)\s*(?:" + L.DATASET_KO_ONLY + ")", IC),
    re.compile(r"(?:the|my|our)\s+[\"'`“]?(?P<d>" + _NAME + r")[\"'`”]?\s+(?:" + L.DATASET_EN + r")\b", IC),
    re.compile(r"(?<![A-Za-z])[\"'`“](?P<d>" + _NAME + r")[\"'`”]\s*(?:" + L.DATASET_EN + r")\b", IC),
]
_WEAK_DATASET = [
    re.compile(r"\b(?:on|from)\s+(?:the\s+|my\s+|our\s+)?[\"'`“]?(?P<d>" + _NAME + r")[\"'`”]?"
               r"(?=\s*(?:$|[,.!?;)]|\bfor\b|\bwith\b|\busing\b|\band\b|\bat\b|\bin\b|\bby\b|\bto\b|\bplease\b|\d))", IC),
    re.compile(r"\b(?:on|from|using|with|in)\s+(?:the\s+|my\s+|our\s+)?(?P<d>[A-Za-z][A-Za-z0-9]*[-_.0-9][A-Za-z0-9._-]*)", IC),
    re.compile(r"(?<![A-Za-z0-9_.-])(?P<d>" + _NAME + r")\s*(?:으로|로|에서|을|를|에\s*대해|가지고|갖고)", IC),
    re.compile(r"(?<![A-Za-z0-9_.-])(?P<d>" + _NAME + r")\s*(?:이미지|사진|영상)?\s*(?:분류|탐지|검출|분할|세그|포즈|자세|감지)", IC),
    re.compile(r"\b(?:classify|detect|segment|train\s+on|fine-?tune\s+on)\s+(?P<d>[A-Za-z][A-Za-z0-9]*[-_0-9][A-Za-z0-9._-]*)", IC),
]


_LEFTOVER_RE = re.compile(r"(?<![A-Za-z0-9_.:/-])" + _NAME + r"(?![A-Za-z0-9_:/-])")
_NOT_NAME_RE = re.compile(r"\d+(?:[a-z]{1,3}|x\d+)?|v\d+(?:\.\d+)*|[a-z]{1,3}\d{1,2}|x\d|\d+(?:,\d+)*|"
                          r"(?:fp|bf|int|float)\d+|[a-z]+\d*-[a-z]{1,3}|cuda:?\d*|gpu-?\d*|top-?\d", IC)


def _dataset_candidate(value: str) -> bool:
    low = value.lower().rstrip(".")
    if low in export_formats() or squash(low) in known_model_index():
        return False
    if low in L.NOT_DATASETS or len(low) < 2 or re.fullmatch(r"[\d.]+|v\d+|\d+(?:px|k|x\d+)?|[a-z]", low):
        return False
    if low in L.OPTIMIZERS or low in L.SIZE_WORDS or re.fullmatch(r"(?:" + L.EPOCH_WORDS + "|" + L.BATCH_WORDS + r")", low, IC):
        return False
    if any(re.fullmatch(p, low, IC) for _, p in L.TASK_WORDS) or is_field_key(low) or is_override_key(low):
        return False
    return re.fullmatch(_NAME, low) is not None


def take_phrases(work: str, ex: Extraction, ctx: Context) -> str:
    if "dataset" in ex.fields and ex.dataset_strength in ("uri", "strong", "registered"):
        return work
    for strength, patterns in (("strong", _STRONG_DATASET), ("weak", _WEAK_DATASET)):
        best = None
        for pattern in patterns:
            for m in pattern.finditer(work):
                name = m.group("d").rstrip(".")
                if _dataset_candidate(name) and (best is None or m.start("d") < best[0]):
                    best = (m.start("d"), m.start("d") + len(name), name)
                    break
        if best is not None:
            set_dataset(ex, best[2], strength)
            return blank(work, best[0], best[1])
    words = [m for m in _LEFTOVER_RE.finditer(work) if _dataset_candidate(m.group(0).rstrip("."))]
    if "dataset" in ctx.awaiting and len(words) == 1 and len(HANGUL.sub(" ", work).split()) <= 3:
        pass  # the previous turn asked which dataset: a bare name answers it
    elif ex.lang == "ko" and (ex.model is not None or re.search("|".join(p for _, p in L.TASK_WORDS), work, IC)) and \
            len(bare := [m for m in words if m.group(0).lower() not in _FILLER]) == 1:
        # one Latin name left in a Korean request beside a model or task ('yolo11s로 forklifts 50번'): the
        # dataset, weakly. In English a bare word is ordinary vocabulary ('detect cars'), never taken.
        words = bare
    else:  # a name-like leftover ('dota8', 'my-cracks') in a request that names no dataset otherwise
        words = [m for m in words if re.search(r"[\d_-]", m.group(0)) and not _NOT_NAME_RE.fullmatch(m.group(0))]
    if words:
        name = words[0].group(0).rstrip(".")
        set_dataset(ex, name, "weak")
        work = blank(work, words[0].start(), words[0].start() + len(name))
    return work



def set_dataset(ex: Extraction, value: str, strength: str) -> None:
    if "dataset" not in ex.fields:
        ex.fields["dataset"] = value
        ex.dataset_strength = strength
