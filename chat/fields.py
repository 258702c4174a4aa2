"""Numbers with their field words: '100 에폭', 'epochs 50', '이미지 크기 640', 'batch size of 32', '640px',
'GPU 0번', '에폭 두 배로', '50 more epochs'. One left-to-right scan over every pattern, so each number
goes to the field word next to it ('batch 16 epochs 50' and '100 epochs 16 batch' both read right).
"""

from __future__ import annotations

import difflib
import re

from chat import lexicon as L
from chat.negation import CORRECTION
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
            ("device_index", r"(?:gpus?|cuda|지피유)\s*(?:번호|index|id|no\.?)?\s*[:#-]?\s*(?P<n>\d(?:\s*,\s*\d)*)(?:\s*번)?"
                             r"(?!\s*(?:개|장|epochs?|에폭|\d))"),
            ("device_index", r"(?P<n>\d)\s*번\s*(?:gpu|지피유|그래픽)"),
            ("cpu_processes", r"(?P<n>\d{1,2})\s*(?:개의?\s*)?cpu\s*(?:processes|process|procs|프로세스)"),
            ("cpu_processes", r"cpu\s*(?:processes|process|프로세스)\s*(?P<n>\d{1,2})\s*(?:개)?"),
            ("cpu_processes", r"(?P<n>\d{1,2})\s*(?:개의?\s*)?(?:processes|프로세스)\s*(?:on\s+(?:the\s+)?|으로\s*|로\s*)?cpu"),
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


_KEYWORDS = ("epochs", "epoch", "batch", "imgsz", "seed", "workers", "patience", "resolution", "warmup")
_NEAR_NUMBER_WORD = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z]{4,})(?![A-Za-z0-9_-])(?=\s*[:=]?\s*\d)|(?<=\d)(\s*)([A-Za-z]{4,})(?![A-Za-z0-9_-])", IC)


def _fix_keyword_typos(work: str, ex: Extraction) -> str:
    """A misspelt field word next to a number ('epcohs 40', '16 bacth') is read as the closest field word,
    with a note; a word close to none stays as written (and is listed as not understood)."""
    def fix(m: re.Match[str]) -> str:
        word = m.group(1) or m.group(3)
        low = word.lower()
        if low in _KEYWORDS or re.fullmatch(L.EPOCH_WORDS + "|" + L.BATCH_WORDS, low, IC):
            return m.group(0)
        close = difflib.get_close_matches(low, _KEYWORDS, n=1, cutoff=0.8)
        if not close:
            return m.group(0)
        ex.notes.append(("alias", {"written": word, "model": close[0]}))
        return close[0] if m.group(1) else m.group(2) + close[0]

    return _NEAR_NUMBER_WORD.sub(fix, work)


def take_numbers(work: str, ex: Extraction) -> str:
    """Read every number that has a field word next to it into ``ex``; blank what was read."""
    work = _fix_keyword_typos(work, ex)
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
    text = work  # as written, for the clauses the values stand in
    reads: list[tuple[int, int, str, int | float]] = []  # (start, end, field, value) of each plain field value
    for m in _FIELD_RE.finditer(work):
        i = int(m.lastgroup[1:]) if m.lastgroup and m.lastgroup.startswith("a") else _alt_index(m)
        fieldname = _FIELD_PATS[i][0]
        raw = m.group(f"n{i}")
        if fieldname in ("device_count", "device_index", "cpu_processes"):
            _store_device(ex, fieldname, raw)
        elif fieldname.startswith("override:"):
            value = to_number(raw)
            if value is not None:
                ex.overrides.setdefault(fieldname.split(":", 1)[1], value)
        elif fieldname not in ex.fields or any(r[2] == fieldname for r in reads):
            value = to_number(raw)
            if fieldname == "image_size" and m.groupdict().get(f"m{i}"):
                value = max(int(value or 0), int(m.group(f"m{i}")))
            if value is None:
                continue
            if fieldname in ("warmup_epochs", "close_mosaic"):
                ex.overrides.setdefault(fieldname, value)
            else:
                reads.append((m.start(), m.end(), fieldname, value))
        work = blank(work, m.start(), m.end())
    work = _take_bare_corrections(work, reads)
    _settle(text, ex, reads)
    if "image_size" not in ex.fields:  # a lone 640 or 320 next to the rest of a request is an image size
        lone = [m for m in re.finditer(r"(?<![\w.:/-])(?<!\d,)(\d{3,4})(?![\w.:/%-]|,\d|\s*(?:장|개|images?|photos?|classes))", work)
                if int(m.group(1)) in IMAGE_SIZES]
        if len(lone) == 1:
            ex.fields["image_size"] = int(lone[0].group(1))
            work = blank(work, lone[0].start(), lone[0].end())
    return work


_BARE_CORRECTION_RE = re.compile(r"(?:" + CORRECTION.pattern + r")\s*[,.]?\s*(?:make\s+it\s+|to\s+)?" + _N
                                 + r"\s*(?=으로|로|요|$|[,.!?;]|\s+(?![A-Za-z가-힣]))", IC)


def _take_bare_corrections(work: str, reads: list[tuple[int, int, str, int | float]]) -> str:
    """A bare number after a correction word ('100 에폭, 아니 200으로', '640으로 하다가 그냥 320으로',
    'batch 16, actually 32') is another value of the field read last before it."""
    for m in _BARE_CORRECTION_RE.finditer(work):
        before = [r[2] for r in reads if r[1] <= m.start()]
        value = to_number(m.group("n"))
        if before and value is not None:
            reads.append((m.start("n"), m.end("n"), before[-1], value))
            work = blank(work, m.start(), m.end())
    return work


# Words that put a value in doubt ('1k 에폭은 너무 많나?', 'is 64 too big?'): a doubted value is never committed.
HEDGE = re.compile(r"너무\s*(?:많|적|크|작|길|짧|오래|커)|많나|적나|많을까|적을까|큰가|작은가|과한가|길려나|오래\s*걸리|"
                   r"\btoo\s+(?:many|much|few|long|big|small|large|high|low)\b|\boverkill\b|\bis\s+that\s+(?:ok|enough|too)", IC)
# Where a clause ends: punctuation, a correction word, or a turn ('…는데', 'but').
_CLAUSE_END = re.compile(r"[.?!;,\n]|" + CORRECTION.pattern + r"|(?:는데|은데|인데|지만)(?![가-힣])|\bbut\b", IC)


def _clauses(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for m in _CLAUSE_END.finditer(text):
        bounds.append((start, m.end()))
        start = m.end()
    return [*bounds, (start, len(text))]


def _settle(text: str, ex: Extraction, reads: list[tuple[int, int, str, int | float]]) -> None:
    """Per field, the last value not in doubt wins; a value in doubt (a hedge in its clause, or a question
    followed by one) is not committed. A field whose only values are in doubt is left out, and asked about."""
    clauses = _clauses(text)
    hedged = [bool(HEDGE.search(text[a:b])) for a, b in clauses]

    def in_doubt(pos: int) -> bool:
        k = next(i for i, (a, b) in enumerate(clauses) if a <= pos < b or b == len(text))
        asked = text[clauses[k][0]:clauses[k][1]].rstrip().endswith("?")
        return hedged[k] or (asked and k + 1 < len(clauses) and hedged[k + 1])

    for fieldname in dict.fromkeys(r[2] for r in reads):
        said = sorted((r for r in reads if r[2] == fieldname), key=lambda r: r[0])
        kept = [r for r in said if not in_doubt(r[0])]
        if not kept:
            ex.notes.append(("hedged", {"field": fieldname, "value": said[-1][3]}))
            continue
        ex.fields[fieldname] = kept[-1][3]
        if said[0][3] != kept[-1][3]:
            ex.corrected[fieldname] = (said[0][3], kept[-1][3])


IMAGE_SIZES = frozenset({128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 608, 640, 704, 768,
                         800, 896, 960, 1024, 1280, 1536})


def _alt_index(m: re.Match[str]) -> int:
    return next(int(k[1:]) for k, v in m.groupdict().items() if v is not None and k.startswith("a"))


def _store_device(ex: Extraction, kind: str, raw: str) -> None:
    """"2 GPUs" / "gpu 0,1" -> devices (one process per GPU); "gpu 1" -> device; "2 CPU processes" -> devices=cpu:2."""
    if "device" in ex.fields or "devices" in ex.fields:
        return
    if kind == "cpu_processes":
        count = int(raw)
        ex.fields["devices" if count > 1 else "device"] = f"cpu:{count}" if count > 1 else "cpu"
    elif kind == "device_count":
        count = int(raw)
        if count <= 1:
            ex.fields["device"] = "cuda"
        else:
            ex.fields["devices"] = ",".join(str(i) for i in range(min(count, 16)))
    else:
        ids = re.sub(r"\s", "", raw)
        if "," in ids:
            ex.fields["devices"] = ids
        else:
            ex.fields["device"] = f"cuda:{ids}"
