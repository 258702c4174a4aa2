"""Durations people write: ``90`` (minutes), ``"90m"``, ``"1.5h"``, ``"2h30m"``, ``"45min"``, ``"3600s"``,
``"1d"``, ``"2시간 30분"``. Used by ``TrainSpec.max_time`` and ``VTP_RUN_TIMEOUT``."""

from __future__ import annotations

import math
import re

_UNIT_MIN = {"d": 1440.0, "day": 1440.0, "days": 1440.0, "일": 1440.0,
             "h": 60.0, "hr": 60.0, "hrs": 60.0, "hour": 60.0, "hours": 60.0, "시간": 60.0,
             "m": 1.0, "min": 1.0, "mins": 1.0, "minute": 1.0, "minutes": 1.0, "분": 1.0,
             "s": 1 / 60, "sec": 1 / 60, "secs": 1 / 60, "second": 1 / 60, "seconds": 1 / 60, "초": 1 / 60}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+|일|시간|분|초)", re.IGNORECASE)
MAX_MINUTES = 30 * 1440.0  # 30 days


def parse_minutes(value: object, field: str = "max_time") -> float | None:
    """A duration -> minutes (float > 0), or None for None/""/0 (no limit).

    A bare number means minutes. Raises ValueError naming ``field`` for anything else, negative
    values or more than 30 days."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field}={value!r} is not a duration: use minutes (90) or e.g. '1.5h', '2h30m', '45m'")
    if isinstance(value, (int, float)):
        minutes = float(value)
    else:
        text = str(value).strip().lower()
        if not text or text in ("0", "none", "off"):
            return None
        try:
            minutes = float(text)
        except ValueError:
            parts = _PART.findall(text)
            rest = _PART.sub("", text).replace(" ", "")
            if not parts or rest or any(unit not in _UNIT_MIN for _, unit in parts):
                raise ValueError(
                    f"{field}={value!r} is not a duration: use minutes (90) or e.g. '1.5h', '2h30m', '45m', '3600s'"
                ) from None
            minutes = sum(float(n) * _UNIT_MIN[unit] for n, unit in parts)
    if not math.isfinite(minutes) or minutes < 0:
        raise ValueError(f"{field}={value!r} is not allowed: use a positive duration, e.g. 90 (minutes) or '2h'")
    if minutes == 0:
        return None
    if minutes > MAX_MINUTES:
        raise ValueError(f"{field}={value!r} is more than 30 days: use at most {MAX_MINUTES:.0f} minutes")
    return round(minutes, 4)


def describe(minutes: float) -> str:
    """90.0 -> '1 h 30 min'; 0.5 -> '30 s'."""
    seconds = round(minutes * 60)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s else ""]
    return " ".join(p for p in parts if p) or "0 s"
