"""Numbers as people write them: digits, '1e-3', '1k', Korean (백, 오십, 이백오십, 스무, 열) and English
(fifty, a hundred, twenty-five) number words.

Number words are rewritten as digits only where a unit or a field word stands next to them, because
Korean numeral syllables are also ordinary syllables (이 is a particle, 사 starts 사진) and 'one' is
not always a number ('the large one').
"""

from __future__ import annotations

import math
import re

SINO_DIGITS = {"일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "륙": 6, "칠": 7, "팔": 8, "구": 9}
SINO_UNITS = {"십": 10, "백": 100, "천": 1000}
NATIVE_TENS = {"열": 10, "스물": 20, "스무": 20, "서른": 30, "마흔": 40, "쉰": 50, "예순": 60, "일흔": 70,
               "여든": 80, "아흔": 90}
NATIVE_ONES = {"하나": 1, "둘": 2, "두": 2, "셋": 3, "세": 3, "넷": 4, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7,
               "여덟": 8, "아홉": 9}
EN_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
           "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
           "ninety": 90}

# A number as digits: 50, 1,000, 0.001, .01, 1e-3, 3e-4, 1k.
NUM = r"(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)(?:\s?[kK](?![A-Za-z]))?"

# Words next to which a number word is a number (units after it, field words before it).
_UNIT_AFTER = (r"(?:에폭|에포크|이포크|epochs?|ep\b|번(?!째)|회(?!차|전)|바퀴|장|픽셀|px|pixels?|rounds?|times|passes|"
               r"images?|workers?|개|배치|batch|시간|분(?!류|할|석|야|포|량)|퍼센트|프로|%)")
_FIELD_WORDS = (r"(?:에폭|에포크|epochs?|배치|batch(?:\s?size)?|bs|크기|사이즈|size|해상도|resolution|시드|seed|"
                r"workers?|워커|patience|인내|imgsz|누적|accumulat\w*|비율|ratio)(?:\s?(?:수|횟수))?")
_NATIVE_RE = re.compile(
    r"(?<![가-힣])((?:열|스물|스무|서른|마흔|쉰|예순|일흔|여든|아흔)?\s?(?:하나|둘|두|셋|세|넷|네|다섯|여섯|일곱|여덟|아홉)?)"
    r"(?=\s?(?:번(?!째)|바퀴|에폭|에포크|회(?!차|전)))"
)
_EN_WORD = "|".join([*EN_ONES, *EN_TENS, "hundred", "thousand", "and"])
_EN_RE = re.compile(
    r"\b((?:(?:" + "|".join([*EN_ONES, *EN_TENS]) + r"|a)(?:[\s-]+(?:" + _EN_WORD + r"))*))\b", re.IGNORECASE | re.ASCII
)


def sino_to_int(text: str) -> int | None:
    """'이백오십' -> 250, '백' -> 100, '십이' -> 12, '만' -> 10000; None when it is not a numeral."""
    if not text or any(c not in SINO_DIGITS and c not in SINO_UNITS and c != "만" for c in text):
        return None
    total, section, digit = 0, 0, None
    for c in text:
        if c in SINO_DIGITS:
            if digit is not None:
                return None  # two digits in a row ('이삼') is not a numeral
            digit = SINO_DIGITS[c]
        elif c in SINO_UNITS:
            section += (digit if digit is not None else 1) * SINO_UNITS[c]
            digit = None
        else:  # 만
            total += (section + (digit or 0) or 1) * 10000
            section, digit = 0, None
    return total + section + (digit or 0)


def native_to_int(text: str) -> int | None:
    """'스무' -> 20, '열다섯' -> 15, '다섯' -> 5."""
    text = text.replace(" ", "")
    value = 0
    for word, n in NATIVE_TENS.items():
        if text.startswith(word):
            value, text = n, text[len(word):]
            break
    if text:
        if text not in NATIVE_ONES:
            return None
        value += NATIVE_ONES[text]
    return value or None


def english_to_int(text: str) -> int | None:
    """'a hundred' -> 100, 'two hundred and fifty' -> 250, 'twenty-five' -> 25."""
    words = [w for w in re.split(r"[\s-]+", text.lower()) if w and w != "and"]
    if not words:
        return None
    total, current, seen = 0, 0, False
    for w in words:
        if w == "a":
            current = current or 1
        elif w in EN_ONES:
            current += EN_ONES[w]
            seen = True
        elif w in EN_TENS:
            current += EN_TENS[w]
            seen = True
        elif w == "hundred":
            current = (current or 1) * 100
            seen = True
        elif w == "thousand":
            total += (current or 1) * 1000
            current, seen = 0, True
        else:
            return None
    return total + current if seen else None


def to_number(raw: str) -> int | float | None:
    """'1,000' -> 1000, '1k' -> 1000, '1e-3' -> 0.001, '16' -> 16."""
    s = raw.strip().replace(",", "").replace(" ", "")
    mult = 1
    if s[-1:] in ("k", "K"):
        s, mult = s[:-1], 1000
    try:
        value = float(s) * mult
    except ValueError:
        return None
    if not math.isfinite(value) or abs(value) > 1e12:
        return None
    if value.is_integer() and "e" not in s.lower() and "." not in s:
        return int(value)
    return int(value) if mult != 1 and value.is_integer() else value


def words_to_digits(text: str) -> str:
    """Rewrite number words that stand next to a unit or a field word as digits."""
    if re.search(r"[가-힣]", text):
        text = _KO_RUN_RE.sub(_korean_run, text)
        text = _NATIVE_RE.sub(lambda m: _native(m.group(1)), text)
        text = _NATIVE_AFTER_FIELD_RE.sub(lambda m: m.group(1) + _as_str(native_to_int(m.group(2)), m.group(2)), text)
    if re.search(r"[a-zA-Z]", text):
        text = _EN_RE.sub(_english, text)
    return text


# A Korean numeral run: Sino-Korean syllables and digit groups with their units ('이백', '1천', '2백오십',
# '1만 2천'). It starts where no Hangul precedes it, so a particle glued to a word ('에폭이') is never read
# as the numeral 이 (2).
_KO_RUN_RE = re.compile(r"(?<![가-힣\d.])((?:\d+\s?[십백천만]\s?(?=\d)|\d+\s?[십백천만]|[일이삼사오육륙칠팔구십백천만])+|\d+(?=\s?[십백천만]))")
_FIELD_END = re.compile(_FIELD_WORDS + r"\s*(?:[:=]|는|은|를|을|이|가|만|도|값|of|to|at|is|as)?\s*$",
                        re.IGNORECASE)
_NATIVE_AFTER_FIELD_RE = re.compile(
    r"((?:에폭|에포크|epochs?|배치|batch)\s*(?:은|는|을|를|만|도|:|=)?\s*)"
    r"((?:열|스물|스무|서른|마흔|쉰|예순|일흔|여든|아흔)(?:하나|둘|셋|넷|다섯|여섯|일곱|여덟|아홉)?)(?=(?:으로|로)?(?:요|까지|정도|쯤)?(?![가-힣]))")


def korean_number(raw: str) -> int | None:
    """A Korean numeral with digit groups: '이백' -> 200, '1천' -> 1000, '2백오십' -> 250, '1만 2천' -> 12000;
    None when ``raw`` is not one ('이삼', '만만')."""
    tokens = re.findall(r"\d+|[일이삼사오육륙칠팔구]|[십백천]|만", raw.replace(" ", ""))
    if not tokens or "".join(tokens) != raw.replace(" ", ""):
        return None
    total, section, digit = 0, 0, None
    last_unit = 10**9
    for t in tokens:
        if t.isdigit() or t in SINO_DIGITS:
            if digit is not None:
                return None
            digit = int(t) if t.isdigit() else SINO_DIGITS[t]
        elif t in SINO_UNITS:
            unit = SINO_UNITS[t]
            if unit >= last_unit:
                return None  # '백백', '십백' are not numerals
            section += (digit if digit is not None else 1) * unit
            digit, last_unit = None, unit
        else:  # 만
            if total:
                return None
            total = (section + (digit or 0) or 1) * 10000
            section, digit, last_unit = 0, None, 10**9
    return total + section + (digit or 0)


def _korean_run(m: re.Match[str]) -> str:
    """One numeral run -> digits when a field word stands before it or a unit after it; else unchanged.
    A run glued to a following word is that word ('사진', '구분'); a lone digit syllable (이, 사, 오) counts
    only before a unit or at the end of a field phrase ('배치는 팔'): it is more often a word than a number."""
    raw, text = m.group(1), m.string
    after = text[m.end():]
    field_before = _FIELD_END.search(text[max(0, m.start() - 40):m.start()]) is not None
    unit_after = re.match(r"\s*" + _UNIT_AFTER + r"|(?:으로|로)(?![가-힣])", after) is not None
    if raw.isdigit():  # '32' before 만 ('배치 32만 바꿔' is 'only 32'): handled by the digit rules
        return raw
    if raw.endswith("만") and not unit_after and re.match(r"\s|$", after) and (re.search(r"\d", raw) or len(raw) == 1):
        return raw  # '50만' / '만' before a space is the particle 'only'
    if not re.match(r"\s*" + _UNIT_AFTER + r"|(?:으로|로|에|에다|이고|이랑|랑|하고|과|와|이나|은|는|도)?(?:요|까지|정도|쯤|이요)?(?![가-힣])",
                    after):
        return raw  # glued to a following word: '사진', '이거', '오늘', '구분'
    if len(raw) == 1 and raw in SINO_DIGITS and re.match(r"[가-힣]", after) and not re.match(r"에폭|에포크", after):
        return raw  # one digit syllable glued to a unit-like syllable is a word: 구분, 사장, 이번, 사회
    if len(raw) == 1 and raw in SINO_DIGITS and not unit_after and not (field_before and re.match(r"\s*(?:$|[,.!?;])", after)):
        return raw  # a lone 이/사/오 is a word, unless it ends a field phrase ('배치는 팔')
    if not (field_before or unit_after):
        return raw
    value = korean_number(raw)
    return str(value) if value is not None else raw


def _as_str(value: int | None, original: str) -> str:
    return str(value) if value is not None else original


def _native(raw: str) -> str:
    stripped = raw.strip()
    if not stripped or stripped in ("한", "하나"):  # '한 번' is 'once / give it a go', not one epoch
        return raw
    value = native_to_int(stripped)
    return str(value) if value is not None else raw


def _english(m: re.Match[str]) -> str:
    raw = m.group(1)
    tail = ""
    trailing_and = re.search(r"[\s-]+and$", raw, re.IGNORECASE)
    if trailing_and:
        raw, tail = raw[: trailing_and.start()], trailing_and.group(0)
    if raw.lower().strip() in ("a", "one"):
        return raw + tail
    value = english_to_int(raw)
    return (str(value) if value is not None else raw) + tail
