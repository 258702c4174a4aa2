"""Numbers with their field words: '100 에폭', 'epochs 50', '이미지 크기 640', 'batch size of 32', '640px',
'GPU 0번', '에폭 두 배로', '50 more epochs'. One left-to-right scan over every pattern, so each number
goes to the field word next to it ('batch 16 epochs 50' and '100 epochs 16 batch' both read right).
"""

from __future__ import annotations

import re

from chat import lexicon as L
from chat.numbers import NUM, to_number
from chat.result import Extraction
from chat.text import IC, blank

_P = (r"\s*(?:(?:[:=]|->|→|은|는|을|를|이|가|만|도|값|of|to|at|is|as|up\s+to|down\s+to)(?![가-힣A-Za-z])\s*)?"
      r"(?:(?:fixed|set|equal|equals|should\s+be|be|of|to|at|around|about|roughly|approximately|약|대략|한|~)"
      r"(?![가-힣A-Za-z])\s*){0,3}")
_N = r"(?<![\d.])(?P<n>" + NUM + r")(?![\d])"
_GAP_STOP = r"(?!배치|batch|크기|사이즈|size|에폭|epoch|해상도|시드|seed|워커|worker|lr|학습률)"
_GAP = r"(?:" + _GAP_STOP + r"[^\d\n])" + "{0,14}?"


def _field_patterns() -> list[tuple[str, str]]:
    """(field, regex with group n) in the order a tie at one position is settled."""
    kw_num = lambda kw: r"(?:" + kw + r")(?:\s*(?:수|횟수|값))?(?:\s+(?:up|down))?" + _P + _N  # noqa: E731
    kw_gap = lambda kw: r"(?:" + kw + r")" + _GAP + _N + r"(?=\s*(?:으로|로|까지|개|번|회))"  # noqa: E731
    kw_ko = lambda kw: r"(?:" + kw + r")(?:\s*" + _GAP_STOP + r"[가-힣]{1,4}){1,2}\s*" + _N  # noqa: E731 '시드 고정 42' 
    num_unit = lambda unit: _N + r"\s*(?:" + unit + r")"  # noqa: E731
    pats = [("patience", r"(?:early[\s_-]*stop(?:ping)?|stop\s+(?:training\s+)?early|조기\s*종료)[^\d\n]{0,30}?" + _N
                         + r"\s*(?:epochs?|에폭|에포크)"),
            ("patience", r"(?:no|without)\s+improvement\s+(?:for|in|after)\s+" + _N + r"\s*epochs?"),
            ("patience", _N + r"\s*(?:epochs?|에폭|에포크)\s*(?:without|with\s+no)\s+improvement"),
            ("patience", _N + r"\s*(?:epochs?|에폭|에포크)\s*(?:동안|간|이상)?\s*(?:개선|향상|성능\s*향상|나아지지\s*않)"),
            ("warmup_epochs", kw_num(r"warm[\s_-]*up(?:\s*epochs?)?|워밍\s*업|웜업")),
            ("close_mosaic", kw_num(r"close[\s_-]*mosaic")),
            ("device_count", r"(?P<n>\d)\s*(?:개의?\s*)?(?:gpus|gpu\s*(?:개|장)|장의?\s*gpu|개\s*gpu)"),
            ("device_count", r"(?:gpus?|지피유)\s*(?P<n>\d)\s*(?:개|장)"),
            ("device_index", r"(?:gpu|cuda|지피유)\s*(?:번호|index|id|no\.?)?\s*[:#-]?\s*(?P<n>\d(?:\s*,\s*\d)*)(?:\s*번)?"
                             r"(?!\s*(?:개|장|epochs?|에폭|\d))"),
            ("device_index", r"(?P<n>\d)\s*번\s*(?:gpu|지피유|그래픽)"),
            ("device_index", r"(?:device|디바이스|장치)\s*(?:는|은|를|을|:|=)?\s*(?P<n>\d(?:\s*,\s*\d)*)(?!\d)"),
            ("image_size", _N + r"\s*[x×*]\s*(?P<w>\d+)(?!\d)"),
            ("epochs", kw_num(L.EPOCH_WORDS)), ("batch_size", kw_num(L.BATCH_WORDS)),
            ("learning_rate", kw_num(L.LR_WORDS)), ("seed", kw_num(L.SEED_WORDS)),
            ("patience", kw_num(L.PATIENCE_WORDS)), ("workers", kw_num(L.WORKER_WORDS)),
            ("image_size", kw_num(L.IMAGE_SIZE_WORDS))]
    pats += [(f"override:{key}", kw_num(word)) for word, key in L.OVERRIDE_WORDS]
    pats += [("epochs", kw_gap(r"에폭|에포크|epochs?")), ("batch_size", kw_gap(r"배치|batch")),
             ("image_size", kw_gap(r"이미지\s*(?:크기|사이즈)|해상도|image\s*size")),
             ("epochs", kw_ko(r"에폭|에포크")), ("batch_size", kw_ko(r"배치\s*(?:사이즈|크기)?")),
             ("image_size", kw_ko(r"이미지\s*(?:크기|사이즈)|해상도")), ("seed", kw_ko(r"시드")),
             ("learning_rate", kw_ko(r"학습률|러닝\s*레이트")),
             ("epochs", num_unit(L.EPOCH_UNITS)), ("image_size", num_unit(L.IMAGE_SIZE_UNITS)),
             ("batch_size", num_unit(L.BATCH_UNITS)), ("workers", num_unit(r"workers?\b|개의?\s*워커|워커"))]
    return pats


_FIELD_PATS = _field_patterns()
_FIELD_RE = re.compile("|".join(f"(?P<a{i}>{p.replace('(?P<n>', f'(?P<n{i}>').replace('(?P<w>', f'(?P<m{i}>')})"
                                for i, (_, p) in enumerate(_FIELD_PATS)), IC)
_RELATIVE_RE = re.compile(
    r"(?P<kw>" + L.EPOCH_WORDS + "|" + L.BATCH_WORDS + "|" + L.IMAGE_SIZE_WORDS + r")\s*(?:을|를|은|는|도)?\s*"
    r"(?P<f>" + L.DOUBLE + "|" + L.HALVE + r")|(?P<f2>" + L.DOUBLE + "|" + L.HALVE + r")\s*(?:the\s+)?(?P<kw2>"
    + L.EPOCH_WORDS + "|" + L.BATCH_WORDS + "|" + L.IMAGE_SIZE_WORDS + r")", IC)
_MORE_RE = re.compile(_N + r"\s*more\s+epochs?|(?:에폭|에포크)\s*" + _N.replace("<n>", "<n2>") + r"\s*(?:번|회)?\s*더|"
                      + _N.replace("<n>", "<n3>") + r"\s*(?:에폭|에포크)\s*더", IC)


def take_numbers(work: str, ex: Extraction) -> str:
    """Read every number that has a field word next to it into ``ex``; blank what was read."""
    for m in _RELATIVE_RE.finditer(work):
        kw = (m.group("kw") or m.group("kw2") or "").lower()
        factor_word = m.group("f") or m.group("f2") or ""
        fieldname = "epochs" if re.fullmatch(L.EPOCH_WORDS, kw, IC) else "batch_size" if re.fullmatch(L.BATCH_WORDS, kw, IC) \
            else "image_size"
        ex.scale[fieldname] = 0.5 if re.fullmatch(L.HALVE, factor_word.strip(), IC) else 2.0
        work = blank(work, m.start(), m.end())
    for m in _MORE_RE.finditer(work):
        n = to_number(m.group("n") or m.group("n2") or m.group("n3"))
        if isinstance(n, int):
            ex.add["epochs"] = n
            work = blank(work, m.start(), m.end())
    for m in _FIELD_RE.finditer(work):
        i = int(m.lastgroup[1:]) if m.lastgroup and m.lastgroup.startswith("a") else _alt_index(m)
        fieldname = _FIELD_PATS[i][0]
        raw = m.group(f"n{i}")
        if fieldname in ("device_count", "device_index"):
            _store_device(ex, fieldname, raw)
        elif fieldname.startswith("override:"):
            value = to_number(raw)
            if value is not None:
                ex.overrides.setdefault(fieldname.split(":", 1)[1], value)
        elif fieldname not in ex.fields:
            value = to_number(raw)
            if fieldname == "image_size" and m.groupdict().get(f"m{i}"):
                value = max(int(value or 0), int(m.group(f"m{i}")))
            if value is None:
                continue
            if fieldname in ("warmup_epochs", "close_mosaic"):
                ex.overrides.setdefault(fieldname, value)
            else:
                ex.fields[fieldname] = value
        work = blank(work, m.start(), m.end())
    if "image_size" not in ex.fields:  # a lone 640 or 320 next to the rest of a request is an image size
        lone = [m for m in re.finditer(r"(?<![\w.:/-])(?<!\d,)(\d{3,4})(?![\w.:/%-]|,\d|\s*(?:장|개|images?|photos?|classes))", work)
                if int(m.group(1)) in IMAGE_SIZES]
        if len(lone) == 1:
            ex.fields["image_size"] = int(lone[0].group(1))
            work = blank(work, lone[0].start(), lone[0].end())
    return work


IMAGE_SIZES = frozenset({128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 608, 640, 704, 768,
                         800, 896, 960, 1024, 1280, 1536})


def _alt_index(m: re.Match[str]) -> int:
    return next(int(k[1:]) for k, v in m.groupdict().items() if v is not None and k.startswith("a"))


def _store_device(ex: Extraction, kind: str, raw: str) -> None:
    if "device" in ex.fields:
        return
    if kind == "device_count":
        count = int(raw)
        ex.fields["device"] = "cuda" if count <= 1 else ",".join(str(i) for i in range(min(count, 16)))
    else:
        ids = re.sub(r"\s", "", raw)
        ex.fields["device"] = f"cuda:{ids}" if "," not in ids else ids
