"""The knobs people ask for beside the usual numbers: a validation share (``val_fraction``), a time budget
(``max_time``, minutes), gradient accumulation (``accumulate``), formats to export after training
(``export``) and a subset of classes (``classes``). Each reader takes what it read out of the request
(blanked) so no later pass reads it again ('onnx로 export까지' never becomes dataset 'onnx').
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from chat.lexicon import KNOWN_WORDS_RE
from chat.negation import negation_at
from chat.result import Extraction
from chat.text import IC, blank
from chat.unplaced import is_filler

_NUM = r"(?P<n>\d+(?:\.\d+)?)"
_PCT = r"\s*(?P<pct>%|퍼센트|프로(?!젝)|percent|pct)?"
_VAL_WORD = r"(?:\bval(?:idation)?\b|\bvalid\b|검증|밸리데이션|validation)"
_VAL_RES = [
    re.compile(r"(?<![\d.])(?P<a>\d{1,2})\s*[/:]\s*(?P<b>\d{1,2})(?![\d.])(?=\s*(?:train[\s/-]*val|split|분할|비율|으로\s*나|로\s*나|스플릿|나눠))", IC),
    re.compile(r"(?:split|분할|나눠|나누|스플릿|train[\s/-]*val)\w*\s*(?:은|는|을|를|:)?\s*(?P<a>\d{1,2})\s*[/:]\s*(?P<b>\d{1,2})(?![\d.])", IC),
    re.compile(_VAL_WORD + r"(?:\s*(?:split|set|셋|데이터(?:셋)?|용|비율|ratio|fraction|share|portion|size|비중|분할|세트)){0,2}"
               r"\s*(?:[:=]|은|는|을|를|이|가|of|to|at|is|as|약|about)?\s*(?:약\s*)?" + _NUM + _PCT + r"(?!\s*(?:epochs?|에폭))", IC),
    re.compile(_NUM + _PCT + r"\s*(?:을|를|는|은|만|정도)?\s*(?:for\s+|as\s+|of\s+data\s+for\s+)?(?:the\s+)?" + _VAL_WORD, IC),
    re.compile(r"hold[\s-]*out\s*" + _NUM + _PCT, IC),
]
_DUR_PART = r"(?P<{g}n>\d+(?:\.\d+)?)\s*(?P<{g}u>시간\s*반|시간|hours?|hrs?|h(?![a-z])|분|minutes?|mins?|m(?![a-z])|초|seconds?|secs?)"
_DUR_RE = re.compile(
    r"(?<![\w.])" + _DUR_PART.format(g="a") + r"(?:\s*(?:and\s+)?" + _DUR_PART.format(g="b") + r")?(?!\w)", IC)
_DUR_WORDS = re.compile(r"(?P<w>half\s+an\s+hour|an\s+hour(?:\s+and\s+a\s+half)?|one\s+hour|한\s*시간\s*반|한\s*시간|"
                        r"두\s*시간|세\s*시간|네\s*시간|반\s*시간)", IC)
_DUR_WORD_MIN = {"halfanhour": 30, "anhour": 60, "anhourandahalf": 90, "onehour": 60, "한시간반": 90, "한시간": 60,
                 "두시간": 120, "세시간": 180, "네시간": 240, "반시간": 30}
_UNIT_MIN = {"시간": 60, "h": 60, "hour": 60, "hours": 60, "hr": 60, "hrs": 60, "분": 1, "m": 1, "min": 1, "mins": 1,
             "minute": 1, "minutes": 1, "초": 1 / 60, "sec": 1 / 60, "secs": 1 / 60, "second": 1 / 60, "seconds": 1 / 60}
_ACC_WORD = r"(?:(?:gradient|grad|그래디언트|그라디언트|기울기)[\s_-]*)?(?:accumulat\w*|accum\b|누적)"
_ACC_RES = [
    re.compile(_ACC_WORD + r"(?:\s*(?:steps?|스텝|횟수|수|batches?|over|for|across|of|gradients?|grads?))*\s*(?:[:=]|은|는|을|를|to|x)?\s*"
               r"(?P<n>\d+)(?!\s*(?:epochs?|에폭|%))(?:\s*(?:steps?|스텝|batches?|번|회))?", IC),
    re.compile(r"(?P<n>\d+)\s*(?:steps?|스텝|번|batches?|배치)?\s*(?:of\s+|의\s*)?(?:gradient\s+|그래디언트\s*)?(?:accumulat\w*|누적)", IC),
]
_EXPORT_WORD = re.compile(r"\bexport(?:ed|ing|s)?\b|내보내\w*|익스포트|\bconvert(?:ed)?\s+(?:it\s+)?to\b|변환", IC)
# Formats people name, beyond the frameworks' own list (kept so an unsupported one is said, never dropped).
_FORMAT_WORDS = {"onnx": r"onnx|오닉스", "torchscript": r"torch\s*script|토치\s*스크립트|\bts\b(?=\s*(?:로|으로|형식|포맷|format))",
                 "tflite": r"tf\s*lite", "openvino": r"open\s*vino", "coreml": r"core\s*ml", "engine": r"tensor\s*rt|\btrt\b",
                 "saved_model": r"saved[\s_]?model|\btensorflow\b", "ncnn": r"ncnn"}
_NAME = r"(?:[A-Za-z][A-Za-z0-9_-]*|[가-힣]{2,}[A-Za-z0-9가-힣_-]*)"  # a class name; one Hangul syllable is a particle
_SEP = r"(?:\s*(?:,|&|/|\band\b|\bor\b|이랑|랑|하고|과|와|및)\s*)"
_LIST = r"(?P<l>" + _NAME + r"(?:" + _SEP + _NAME + r")*)"
_CLASS_RES = [
    re.compile(_LIST + r"\s*(?:클래스|class(?:es)?|카테고리|categor(?:y|ies)|라벨|레이블|labels?|객체)\s*(?:만|only|들만)", IC),
    re.compile(r"(?<![A-Za-z0-9가-힣])" + _LIST + r"\s*만\s*(?:탐지|검출|분류|세그|분할|인식|잡|찾|감지|detect)", IC),
    re.compile(r"\b(?:only|just)\s+(?:(?:train|training|learn|use|using|detect|keep)\s+)?(?:on\s+|for\s+)?(?:the\s+)?" + _LIST
               + r"\s+class(?:es)?\b", IC),
    re.compile(r"\b(?:detect|segment|find|classify|recogni[sz]e|spot)\w*\s+only\s+(?:the\s+)?" + _LIST, IC),
    re.compile(r"\bonly\s+(?:the\s+)?(?P<l>[a-z]+s(?:" + _SEP + r"[a-z]+s)+)\b", IC),
    re.compile(r"(?:\bclasses|\bclass\s+names|클래스)\s*(?:[:=]|는|은|를|을)\s*" + _LIST, IC),
]
_NOT_CLASS = frozenset(re.split(r"\s+", """the a an and or only just on in with for of to my our train training model data dataset images image
epochs epoch batch size classes class labels category categories objects object detect segment classify 학습 모델 데이터
데이터셋 이미지 사진 탐지 검출 분류 객체 물체 it them this that these those one two best top""".strip()))


@functools.cache
def export_formats() -> tuple[str, ...]:
    """Every format some installed framework exports to, then the other formats people name."""
    from core import frameworks as registry

    known: list[str] = []
    for caps in registry.all_capabilities():
        known.extend(f for f in caps.export if f not in known)
    return tuple(known) + tuple(f for f in _FORMAT_WORDS if f not in known)


def _format_re(fmt: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z0-9])(?:" + _FORMAT_WORDS.get(fmt, re.escape(fmt)) + r")(?![A-Za-z0-9])", IC)


def take_knobs(work: str, ex: Extraction, known_classes: Iterable[str] = (), dataset_classes: bool = False) -> str:
    """Read val_fraction, max_time, accumulate, export and classes into ``ex.fields``; blank them.
    ``known_classes``: class names the request may use; 'only circle and square' picks those classes
    when every listed word is one of them. ``dataset_classes``: they are exactly the named dataset's
    classes, so 'triangle 빼고' / 'all but triangle' means the others; without it a negated list is
    left for the reply to name (never guessed)."""
    for reader in (_take_export, _take_val_fraction, _take_max_time, _take_accumulate):
        work = reader(work, ex)
    work = _take_known_classes(work, ex, tuple(known_classes), dataset_classes)
    return _take_classes(work, ex) if "classes" not in ex.fields else work


def _take_known_classes(work: str, ex: Extraction, known: tuple[str, ...], complete: bool) -> str:
    names = sorted({n for n in known if isinstance(n, str) and len(n.strip()) >= 2}, key=len, reverse=True)
    if not names:
        return work
    one = r"(?:" + "|".join(re.escape(n) for n in names) + r")(?:e?s)?"  # 'circles' names the class circle
    listed = r"(?P<l>" + one + r"(?:" + _SEP + one + r")*)"
    edge = r"(?<![A-Za-z0-9가-힣_-])"
    patterns = (
        re.compile(r"\b(?:only|just)\s+(?:(?:train|training|learn|use|using|detect|detecting|keep|find|classify|segment)\s+)?"
                   r"(?:on\s+|for\s+)?(?:the\s+)?" + listed + r"(?![A-Za-z0-9_-])", IC),
        re.compile(edge + listed + r"\s*(?:들)?(?:만|\s+only\b)", IC),
        re.compile(edge + listed + r"(?![A-Za-z0-9_-])(?:\s*(?:클래스|class(?:es)?|카테고리|라벨|labels?))?", IC),
    )
    by_lower = {n.lower(): n for n in names}
    picks: list[tuple[int, int, list[str], str | None]] = []  # (start, end, classes, negation words)
    for number, pattern in enumerate(patterns):
        for m in pattern.finditer(work):
            if any(m.start() < e and s0 < m.end() for s0, e, _, _ in picks):
                continue  # a longer reading of the same words already took them
            found = [next((by_lower[w] for w in (p.group().lower(), p.group().lower()[:-1], p.group().lower()[:-2])
                           if w in by_lower), p.group()) for p in re.finditer(one, m.group("l"), IC)]
            found = list(dict.fromkeys(found))
            neg = negation_at(work, m.start("l"), m.end())  # 'X만 빼고' is negated too: all but X
            if neg is None and number < 2:
                picks.append((m.start(), m.end(), found, None))
            elif neg is not None and complete:
                picks.append((min(m.start(), neg[1]), max(m.end(), neg[2]), [n for n in known if n not in found],
                              work[neg[1]:neg[2]].strip()))
            elif neg is not None:  # 'all but X' with no dataset named: the reply names the words, nothing is guessed
                return work
    if not picks:
        return work
    picks.sort()
    first, last = picks[0], picks[-1]
    ex.fields["classes"] = last[2]  # the last committed choice wins ('햄스터만 빼고... 아니 햄스터만')
    if last[3]:
        ex.negated["classes"] = last[3]
    if len(picks) > 1 and first[2] != last[2]:
        ex.corrected["classes"] = (", ".join(first[2]), ", ".join(last[2]))
    for s0, e, _, _ in picks:
        work = blank(work, s0, e)
    return work


def _take_export(work: str, ex: Extraction) -> str:
    """Formats named anywhere ('onnx로 export까지', 'ONNX 말고 TorchScript') minus the negated ones; a negated
    export word ('no export', 'export 없이') means none. An export word with no format asks which."""
    chosen: list[str] = []
    refused = False
    for fmt in export_formats():
        for m in _format_re(fmt).finditer(work):
            neg = negation_at(work, m.start(), m.end())
            if neg is not None:
                ex.negated["export"], refused = work[neg[1]:neg[2]].strip(), True
                work = blank(work, neg[1], neg[2])
            else:
                if fmt not in chosen:
                    chosen.append(fmt)
                work = blank(work, m.start(), m.end())
    for m in _EXPORT_WORD.finditer(work):
        neg = negation_at(work, m.start(), m.end())
        if neg is not None:
            ex.negated["export"], refused, chosen = work[neg[1]:neg[2]].strip(), True, []
            work = blank(work, neg[1], neg[2])
        else:
            if not chosen and "export" not in ex.fields:
                ex.notes.append(("export_which", {"formats": " / ".join(export_formats()[:2])}))
            work = blank(work, m.start(), m.end())
    if chosen or refused:
        ex.fields["export"] = chosen
    return work


def _take_val_fraction(work: str, ex: Extraction) -> str:
    for pattern in _VAL_RES:
        m = pattern.search(work)
        if m is None:
            continue
        groups = m.groupdict()
        if groups.get("a") is not None:
            a, b = int(groups["a"]), int(groups["b"])
            if a + b not in (10, 100):
                continue
            value = min(a, b) / (a + b)
        else:
            n = float(m.group("n"))
            value = n / 100 if groups.get("pct") or n >= 1 else n
        ex.fields["val_fraction"] = round(value, 4)
        return blank(work, m.start(), m.end())
    return work


_DUR_BEFORE = re.compile(r"(?:최대|최장|\bat\s+most|\bwithin|\bunder|\bmax(?:imum)?|\bup\s+to|\bno\s+more\s+than|\bmore\s+than|"
                         r"\btime\s+(?:budget|limit)(?:\s+of)?|\bbudget(?:\s+of)?|\blimit(?:\s+of)?|시간\s*제한|제한\s*시간|"
                         r"시간은)\s*(?:은|는|:|=)?\s*$", IC)
_DUR_AFTER = re.compile(r"\s*(?:안에|이내(?:로|에)?|내로|내에|동안(?:만)?|까지(?:만)?|제한|\bmax\b|\blimit\b|\bbudget\b|\btops?\b)?", IC)


def _blank_duration(work: str, start: int, end: int) -> str:
    """Blank a duration with the words that make it a budget ('최대 1시간 안에', 'at most 90 minutes')."""
    before = _DUR_BEFORE.search(work[max(0, start - 30):start])
    after = _DUR_AFTER.match(work, end)
    return blank(work, start - (len(before.group(0)) if before else 0), after.end() if after else end)


def _take_max_time(work: str, ex: Extraction) -> str:
    for m in _DUR_WORDS.finditer(work):
        ex.fields["max_time"] = _DUR_WORD_MIN[re.sub(r"\s", "", m.group("w").lower())]
        return _blank_duration(work, m.start(), m.end())
    for m in _DUR_RE.finditer(work):
        if re.match(r"\s*(?:마다|씩|간격)", work[m.end():]) or re.search(r"\bevery\s*$", work[:m.start()], IC):
            continue  # '10분마다 저장', 'every 30 minutes': an interval, not a budget
        minutes = 0.0
        for g in ("a", "b"):
            if m.group(g + "n") is None:
                continue
            unit = re.sub(r"\s", "", m.group(g + "u").lower())
            half = unit.endswith("반")
            unit = unit.rstrip("반") if half else unit
            minutes += float(m.group(g + "n")) * _UNIT_MIN.get(unit, 0) + (30 if half else 0)
        if minutes <= 0:
            continue
        ex.fields["max_time"] = int(minutes) if float(minutes).is_integer() else round(minutes, 2)
        return _blank_duration(work, m.start(), m.end())
    return work


def _take_accumulate(work: str, ex: Extraction) -> str:
    for pattern in _ACC_RES:
        m = pattern.search(work)
        if m is not None:
            ex.fields["accumulate"] = int(m.group("n"))
            return blank(work, m.start(), m.end())
    return work


def _take_classes(work: str, ex: Extraction) -> str:
    for pattern in _CLASS_RES:
        for m in pattern.finditer(work):
            if negation_at(work, m.start("l"), m.end()) is not None:  # 'all but X' with X unknown: not guessed
                continue
            names = [re.sub(r"(?:이랑|랑|하고|과|와)$", "", n) for n in re.split(_SEP, m.group("l")) if n]
            kept: list[str] = []  # the list is the names next to the class word: stop at the first field word
            for name in reversed(names):
                if name.lower() in _NOT_CLASS or re.fullmatch(r"\d.*", name) or KNOWN_WORDS_RE.fullmatch(name) or \
                        (re.fullmatch(r"[가-힣]+", name) and is_filler(name)):
                    break
                kept.insert(0, name)
            if not kept:
                continue
            ex.fields["classes"] = kept
            start = m.start("l") + m.group("l").rfind(kept[0]) if len(kept) < len(names) else m.start()
            return blank(work, start, m.end())
    return work
