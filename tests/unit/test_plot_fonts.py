"""Hangul class names in vtp's plots and in Ultralytics' labels: drawn with an installed CJK font
(fonts-noto-cjk), offline, instead of boxes ('Glyph ... missing from font(s)')."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from core import fonts
from trainers.common import report as common_report

KOREAN = ["고양이", "강아지"]
pytestmark = pytest.mark.skipif(
    fonts.find_cjk_font() is None, reason="no CJK font installed (fonts-noto-cjk)"
)


@pytest.fixture(autouse=True)
def _restore_rc():
    with matplotlib.rc_context():
        yield


def render(text: str) -> np.ndarray:
    """``text`` drawn alone on a small figure, as a grayscale array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.5, 0.6), dpi=100)
    fig.text(0.05, 0.3, text, fontsize=20)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return np.asarray(Image.open(buf).convert("L"))


def glyph_warnings(fn, caplog) -> list[str]:
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        fn()
    found = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    return [m for m in found if "missing from font" in m]


def test_without_a_cjk_font_hangul_is_tofu(caplog):
    """The failure this module fixes: DejaVu Sans alone draws every syllable as the same box."""
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
    drawn: dict[str, np.ndarray] = {}
    assert glyph_warnings(lambda: drawn.update(go=render("고"), i=render("이")), caplog)
    assert np.array_equal(drawn["go"], drawn["i"])


def test_use_cjk_font_draws_hangul(caplog):
    family = fonts.use_cjk_font()
    assert isinstance(family, str) and family
    assert fonts.use_cjk_font() == family  # idempotent
    families = matplotlib.rcParams["font.family"]
    assert families.count(family) == 1 and families[0] == "sans-serif"  # a fallback: Latin text unchanged
    drawn: dict[str, np.ndarray] = {}
    assert (
        glyph_warnings(lambda: drawn.update(go=render("고"), i=render("이"), tofu=render("□")), caplog) == []
    )
    assert not np.array_equal(drawn["go"], drawn["i"])  # two real glyphs, not one box twice
    assert not np.array_equal(drawn["go"], drawn["tofu"])
    assert (drawn["go"] < 128).sum() > 20  # ink on the page


def test_report_plots_with_korean_class_names(tmp_path, caplog):
    out: dict[str, Path | None] = {}

    def plots():
        out["cm"] = common_report.plot_confusion(tmp_path / "confusion_matrix.png", [[3, 1], [0, 4]], KOREAN)
        img = tmp_path / "a.png"
        Image.new("RGB", (32, 32), (90, 90, 90)).save(img)
        out["grid"] = common_report.prediction_grid(
            tmp_path / "grid.png", [str(img)], ["고양이 (true 강아지)"], [[([2, 2, 20, 20], "강아지 0.91")]]
        )

    assert glyph_warnings(plots, caplog) == []
    assert out["cm"] is not None and out["cm"].is_file() and out["grid"] is not None and out["grid"].is_file()


def test_ultralytics_font_becomes_the_cjk_font(tmp_path):
    """check_font("Arial.Unicode.ttf") returns <USER_CONFIG_DIR>/Arial.Unicode.ttf when it exists;
    vtp used to copy DejaVu Sans there (no Hangul). Setting up the folder must leave a font with
    Hangul under that name, and PIL (which Ultralytics' Annotator uses) must draw it."""
    from PIL import ImageDraw, ImageFont

    from trainers.ultralytics import env

    env._install_fonts(tmp_path)  # DejaVu under both names, then the CJK font as Arial.Unicode.ttf
    target = tmp_path / "Arial.Unicode.ttf"
    assert fonts.has_glyphs(target, "고양이강아지")
    assert not fonts.has_glyphs(tmp_path / "Arial.ttf")  # the Latin one stays DejaVu

    font = ImageFont.truetype(str(target), 24)

    def pil(text: str) -> np.ndarray:
        im = Image.new("L", (60, 32), 255)
        ImageDraw.Draw(im).text((2, 2), text, font=font, fill=0)
        return np.asarray(im)

    assert not np.array_equal(pil("고"), pil("이")) and (pil("고") < 128).sum() > 20

    fonts._linked.discard(target)
    before = target.resolve()
    fonts.use_cjk_font(tmp_path)  # again: left as it is
    assert target.resolve() == before


def test_a_unicode_font_the_user_put_there_is_kept(tmp_path):
    real = fonts.find_cjk_font()
    assert real is not None
    # e.g. a real Arial Unicode the user downloaded: it has Hangul, so it stays
    (tmp_path / "Arial.Unicode.ttf").write_bytes(Path(real[1]).read_bytes())
    fonts.use_cjk_font(tmp_path)
    assert not (tmp_path / "Arial.Unicode.ttf").is_symlink()
