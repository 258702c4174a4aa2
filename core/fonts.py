"""Draw Hangul (and other CJK) class names in plots with a font installed on this machine, offline.

matplotlib's default font (DejaVu Sans) has no Hangul: Korean class names come out as boxes with
"Glyph ... missing from font(s) DejaVu Sans" warnings. :func:`use_cjk_font` appends an installed CJK
family (Noto Sans CJK from ``fonts-noto-cjk``, Nanum, Malgun Gothic, ...) to matplotlib's
``font.family``; matplotlib (>= 3.6) then takes each glyph from the first family that has it, so Latin
text keeps its usual font.

Ultralytics draws non-ASCII labels on its image mosaics with
``check_font("Arial.Unicode.ttf")``: it returns ``<USER_CONFIG_DIR>/Arial.Unicode.ttf`` when that
file exists, else looks in matplotlib's font list for a file whose path contains that name, else
downloads it (which fails offline, and PIL's default bitmap font draws no Hangul).
``use_cjk_font(ultralytics_dir)`` puts ``Arial.Unicode.ttf`` there as a link to (or copy of) the
installed CJK font, replacing a file without Hangul (vtp used to copy DejaVu Sans there). Its
matplotlib plots (confusion matrix, labels) use ``font.sans-serif`` and keep our ``font.family``
fallback.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger("vtp.fonts")

PREFERRED = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans K",
    "Source Han Sans KR",
    "NanumGothic",
    "NanumBarunGothic",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "UnDotum",
    "Baekmuk Gulim",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Noto Serif CJK KR",
)
"""Families tried in order; any other installed font with Hangul (``fc-list :lang=ko``) comes after."""

ULTRALYTICS_FONT = "Arial.Unicode.ttf"
PROBE = "가"  # a Hangul syllable: the font must have it

_lock = threading.Lock()
_found: tuple[str, Path] | None = None  # (family, file) once searched
_searched = False
_linked: set[Path] = set()


def has_glyphs(font_file: str | Path, text: str = PROBE, index: int = 0) -> bool:
    """Whether the font file (face ``index`` of a collection) has a glyph for every character of
    ``text``. False when the file cannot be read as a font."""
    try:
        from matplotlib.ft2font import FT2Font

        try:
            font = FT2Font(str(font_file), face_index=index)
        except TypeError:  # matplotlib < 3.10: first face only
            font = FT2Font(str(font_file))
        return all(font.get_char_index(ord(ch)) for ch in text)
    except Exception:  # noqa: BLE001 - an unreadable or odd font is just not a candidate
        return False


def _fc_list() -> list[Path]:
    """Font files with Hangul that fontconfig knows (none when fc-list is missing)."""
    try:
        done = subprocess.run(
            ["fc-list", ":lang=ko", "file"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    files = {line.strip().rstrip(":").strip() for line in done.stdout.splitlines() if line.strip()}
    return [Path(f) for f in sorted(files) if Path(f).is_file()]


def find_cjk_font() -> tuple[str, Path] | None:
    """(family name, font file) of an installed font that draws Hangul, preferring
    :data:`PREFERRED` families and regular weight; fonts fontconfig knows but matplotlib's cached
    font list lacks are added to matplotlib. None when there is none. No network."""
    from matplotlib import font_manager

    def candidates() -> list[tuple[str, Path, int]]:
        return [
            (f.name, Path(f.fname), 0 if f.weight in (400, "normal", "regular") else 1)
            for f in font_manager.fontManager.ttflist
        ]

    entries = candidates()
    known = {str(p) for _, p, _ in entries}
    fc_files = _fc_list()
    extra = [f for f in fc_files if str(f) not in known]
    for f in extra:
        try:
            font_manager.fontManager.addfont(str(f))
        except Exception:  # noqa: BLE001 - a font matplotlib cannot read is skipped
            continue
    if extra:
        entries = candidates()
    by_name: dict[str, list[tuple[int, Path]]] = {}
    for name, path, heavy in entries:
        by_name.setdefault(name, []).append((heavy, path))
    hangul_files = {str(f) for f in fc_files}
    names = [n for n in PREFERRED if n in by_name]
    names += sorted(
        n for n, files in by_name.items() if n not in names and any(str(p) in hangul_files for _, p in files)
    )
    for name in names:
        for _, path in sorted(by_name[name], key=lambda e: (e[0], str(e[1]))):
            if has_glyphs(path):
                return name, path
    return None


def use_cjk_font(ultralytics_dir: str | Path | None = None) -> str | None:
    """Make matplotlib (and, given its settings folder ``ultralytics_dir``, Ultralytics) draw Hangul
    with an installed CJK font; returns that font's family name, or None when none is installed
    (logged once; plots then keep their boxes, nothing fails).

    Appends the family to ``matplotlib.rcParams["font.family"]`` (a fallback after the current
    families). With ``ultralytics_dir``, makes ``<ultralytics_dir>/Arial.Unicode.ttf`` a link to
    (or copy of) the font file unless it already has Hangul. Idempotent and thread-safe; no network.
    """
    global _found, _searched
    with _lock:
        if not _searched:
            _searched = True
            try:
                _found = find_cjk_font()
            except ImportError:  # no matplotlib: nothing draws plots
                _found = None
            if _found is None:
                log.info(
                    "no installed font draws Hangul (e.g. install fonts-noto-cjk); Korean class names "
                    "in plots will show as boxes"
                )
        if _found is None:
            return None
        family, font_file = _found
        import matplotlib

        families = matplotlib.rcParams["font.family"]
        families = [families] if isinstance(families, str) else list(families)
        if family not in families:
            matplotlib.rcParams["font.family"] = [*families, family]
        if ultralytics_dir is not None:
            _link_for_ultralytics(Path(ultralytics_dir), font_file)
        return family


def _link_for_ultralytics(folder: Path, source: Path) -> None:
    target = folder / ULTRALYTICS_FONT
    if target in _linked:
        return
    try:
        if target.exists() and (target.resolve() == source.resolve() or has_glyphs(target)):
            _linked.add(target)
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{ULTRALYTICS_FONT}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            tmp.symlink_to(source)
        except OSError:  # no symlinks (Windows without the privilege): copy
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        _linked.add(target)
        log.info("ultralytics draws non-Latin labels with %s (linked as %s)", source, target)
    except OSError as e:
        log.warning(
            "could not put %s in %s (%s); ultralytics may draw Korean labels as boxes",
            ULTRALYTICS_FONT,
            folder,
            e,
        )
