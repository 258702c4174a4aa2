"""Negation, self-correction and on/off switches, in Korean and English.

One scope rule serves every negatable thing (booleans, models, datasets, export formats, options):
a thing is negated when a negation word stands right before it ('without X', 'no X', "don't use X",
'w/o X', 'not X', 'instead of X') or right after it, past a particle ('X 없이', 'X 말고', 'X 빼고',
'X 안 쓰고', 'X 쓰지 말고', 'X off'). :func:`negation_at` answers that for a span of the request.

:func:`take_switches` reads every mention of a boolean field or on/off option, applies the scope rule
to each, and keeps the last one (so 'scratch 말고 pretrained로' is pretrained). The words it read are
kept in ``Extraction.negated`` so the reply can show where a value came from.
"""

from __future__ import annotations

import functools
import re

from chat.result import Extraction
from chat.text import IC, blank

_PARTICLE = r"(?:은|는|을|를|이|가|도|으로|로|랑|이랑)?"
# Negation words before the thing (English), ending right where the thing starts.
NEG_BEFORE = re.compile(
    r"(?:\bwithout|\bw/o|\bw/out|\bno|\bnot|\bnon|\bnever|\bdon'?t\s+(?:use|want|need|do|apply)|\bdo\s+not\s+(?:use|want|need|do|apply)|"
    r"\bskip(?:ping)?|\bdisable|\bturn\s+off|\bswitch\s+off|\binstead\s+of|\brather\s+than|\bexcept(?:\s+for)?|\bexclud(?:e|ing)|"
    r"\bminus|\bnot\s+(?:using|with)|\bdon'?t\s+(?:start|train|begin)\s+(?:from|with)|\bdo\s+not\s+(?:start|train|begin)\s+(?:from|with))"
    r"[\s-]+(?:(?:the|any|a|an|using|use|with|from|of)\s+){0,2}$", IC)
# Negation words after the thing (Korean, and English 'X off'), starting right where the thing ends.
NEG_AFTER = re.compile(
    r"\s*" + _PARTICLE + r"\s*(?:(?:weights?|가중치|모델|model|기능|옵션)\s*" + _PARTICLE + r"\s*)?"
    r"(?P<neg>없이|없는|말고|빼고|빼서|빼|제외(?:하고|해|해서)?|대신(?:에)?|아니고|아니라|안\s*(?:쓰고|써|씀|쓸|쓴|하고|함|할|해)|"
    r"쓰지\s*(?:말고|마|않고|않|말|말아)|사용\s*(?:하지\s*(?:말고|마|않고|않)|안\s*(?:하고|함|해)|금지)|하지\s*(?:말고|않고|마)|"
    r"끄고|끄기|꺼|끈|off\b|disabled?\b|false\b|excluded\b|x(?=\s*(?:$|[,.;!?])))", IC)
# Words that take back what came before ('1000 에폭, 아니 300', 'actually make it 300', '그냥 300으로').
CORRECTION = re.compile(r"아니(?:다|야|요|고|라)?(?![가-힣])|아냐|아님|그냥|차라리|정정|\bactually\b|\brather\b|\bmake\s+it\b|"
                        r"\bchange\s+(?:it\s+|that\s+)?to\b|\binstead\b|\bno\s*,?\s*wait\b|\bsorry\b|\bi\s+mean\b|→|->|"
                        r"\bor\s+rather\b|너무\s*많|너무\s*적", IC)


def negation_at(text: str, start: int, end: int) -> tuple[str, int, int] | None:
    """The negation word of the span text[start:end], as (word, start, end) of the whole negated
    phrase; None when the span is not negated."""
    before = NEG_BEFORE.search(text[max(0, start - 40):start])
    if before is not None:
        return before.group(0).strip(), max(0, start - 40) + before.start(), end
    after = NEG_AFTER.match(text, end)
    if after is not None:
        return after.group("neg"), start, after.end()
    return None


def corrected_between(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] (between two values of one field) takes the first one back."""
    return CORRECTION.search(text[start:end]) is not None


# (pattern, target, value when mentioned plainly, value when negated). Targets: a TrainSpec field or
# 'override:<generic key>'. None = a plain mention sets nothing (only 'mosaic 0.5' with a number does).
SWITCHES: tuple[tuple[str, str, object, object], ...] = (
    (r"from\s+scratch|\bscratch\b|처음부터|스크래치|random(?:ly)?\s+init\w*|랜덤\s*초기화", "pretrained", False, True),
    (r"\bpre-?train(?:ed|ing)?(?:\s+(?:weights?|checkpoints?|model))?|사전\s*학습(?:된|한)?(?:\s*(?:가중치|모델|weights?))?|"
     r"프리\s*트레인(?:드)?(?:\s*(?:가중치|모델))?|imagenet\s+(?:weights|init\w*)|이미지넷\s*가중치", "pretrained", True, False),
    (r"\bamp\b|mixed[\s-]+precision|혼합\s*정밀도|\bfp16\b", "override:amp", True, False),
    (r"(?:\bcos(?:ine)?|코사인)[\s_-]*(?:lr\b|learning\s+rate|schedul\w*|annealing|스케줄\w*|스케쥴\w*|학습률|러닝\s*레이트)",
     "override:cos_lr", True, False),
    (r"early[\s_-]*stop(?:ping)?|조기\s*종료|얼리\s*스탑(?:핑)?", "patience", None, 0),
)
# Other words for boolean options whose key alone is not how people say them.
_SWITCH_WORDS = {"cache": r"캐시|캐싱", "deterministic": r"결정론적|재현\s*가능(?:하게|한)?", "rect": r"rect(?:angular)?\s+training|직사각형",
                 "plots": r"플롯|그래프", "single_cls": r"single[\s_-]*class|단일\s*클래스", "channels_last": r"채널\s*라스트",
                 "val": r"\bvalidation\b|검증(?!\s*(?:비율|용|셋|세트|데이터|split))", "overlap_mask": r"overlap(?:ping)?\s+masks?",
                 "allow_random_init": r"random\s+init\w*\s+allowed"}
ON_BEFORE = re.compile(r"(?:\benable|\bturn\s+on|\bswitch\s+on|\buse|\bwith)\s+$", IC)
ON_AFTER = re.compile(r"\s*" + _PARTICLE + r"\s*(?:on\b|켜고|켜서|켜|켠|true\b|사용(?:하고|해서|해)?|써서|쓰고)", IC)


@functools.cache
def _switches() -> tuple[tuple[re.Pattern[str], str, object, object], ...]:
    """SWITCHES, then every other boolean option some installed framework has (from its capabilities):
    a plain mention of one sets nothing; 'enable X' / 'X 켜고' sets it, 'no X' / 'X 없이' clears it."""
    from core import frameworks as registry

    out = [(re.compile(p, IC), target, on, off) for p, target, on, off in SWITCHES]
    named = {t.split(":", 1)[-1] for _, t, _, _ in SWITCHES}
    keys = sorted({k for caps in registry.all_capabilities() for k, kind in caps.overrides.items() if kind == "bool"} - named)
    for key in keys:
        words = r"(?<![A-Za-z0-9])" + re.escape(key).replace("_", r"[\s_-]*") + r"(?![A-Za-z0-9=])"
        if key == "val":  # 'val' alone is the validation split ('val 비율 20%'): only the longer words count
            words = _SWITCH_WORDS[key]
        elif key in _SWITCH_WORDS:
            words = _SWITCH_WORDS[key] + "|" + words  # the longer words first ('rect training' before 'rect')
        out.append((re.compile(words, IC), "override:" + key, "explicit", False))
    return tuple(out)


def take_switches(work: str, ex: Extraction) -> str:
    """Read the boolean fields and on/off options into ``ex`` (the last mention wins); blank them."""
    hits: list[tuple[int, int, str, object, bool]] = []  # (start, end, target, value, negated)
    for pattern, target, on, off in _switches():
        for m in pattern.finditer(work):
            neg = negation_at(work, m.start(), m.end())
            start, end, value = (neg[1], neg[2], off) if neg else (m.start(), m.end(), on)
            if neg is None and value == "explicit":  # an option named without 'on' / 'off' sets nothing
                on_after = ON_AFTER.match(work, m.end())
                on_before = ON_BEFORE.search(work[max(0, m.start() - 20):m.start()])
                if not (on_after or on_before):
                    continue
                start -= len(on_before.group(0)) if on_before else 0
                end, value = (on_after.end() if on_after else end), True
            if value is None or (neg is None and re.match(r"\s*[:=]?\s*\d", work[m.end():])):
                continue  # 'early stopping 10': a number, read by the number pass
            hits.append((start, end, target, value, neg is not None))
    for start, end, target, value, negated in sorted(hits):
        key = target.split(":", 1)[-1]
        if target.startswith("override:"):
            ex.overrides[key] = value
        else:
            ex.fields[target] = value
        if negated:
            ex.negated[key] = work[start:end].strip()
        else:
            ex.negated.pop(key, None)
        work = blank(work, start, end)
    return work
