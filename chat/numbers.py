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
               r"images?|workers?|개|배치|batch)")
_FIELD_BEFORE = (r"(?:에폭|에포크|epochs?|배치|batch(?:\s?size)?|bs|크기|사이즈|size|해상도|resolution|시드|seed|"
                 r"workers?|워커|patience|인내|imgsz)(?:\s?(?:수|횟수))?\s*(?:[:=]|는|은|를|을|이|가|만|of|to|at|is|as)?")

_SINO_RE = re.compile(r"(?<![가-힣])([일이삼사오육륙칠팔구십백천만]+)(?=\s*" + _UNIT_AFTER + r"|\s*(?:으로|로)(?![가-힣]))")
_SINO_AFTER_FIELD_RE = re.compile(r"(" + _FIELD_BEFORE + r")\s*(?!만(?:\s|$))([일이삼사오육륙칠팔구십백천만]+)(?=으로|로|$|[,.!?]|\s+(?![\d\s]))")
_NATIVE_RE = re.compile(
    r"(?<![가-힣])((?:열|스물|스무|서른|마흔|쉰|예순|일흔|여든|아흔)?\s?(?:하나|둘|두|셋|세|넷|네|다섯|여섯|일곱|여덟|아홉)?)"
    r"(?=\s?(?:번(?!째)|바퀴|에폭|에포크|회(?!차|전)))"
)
_DIGIT_UNIT_RE = re.compile(r"(\d+)\s?(만|천|백)(?=\s*" + _UNIT_AFTER + r"|\s*(?:으로|로)(?![가-힣]))")
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
        text = _DIGIT_UNIT_RE.sub(lambda m: str(int(m.group(1)) * {"만": 10000, "천": 1000, "백": 100}[m.group(2)]), text)
        text = _SINO_AFTER_FIELD_RE.sub(lambda m: m.group(1) + " " + _as_str(sino_to_int(m.group(2)), m.group(2)), text)
        text = _SINO_RE.sub(_sino, text)
        text = _NATIVE_RE.sub(lambda m: _native(m.group(1)), text)
    if re.search(r"[a-zA-Z]", text):
        text = _EN_RE.sub(_english, text)
    return text


def _sino(m: re.Match[str]) -> str:
    raw = m.group(1)
    if raw in ("이", "일") and m.string[m.end():m.end() + 1] in ("번", "회"):  # 이번 = this time, 일회 = once
        return raw
    return _as_str(sino_to_int(raw), raw)


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
