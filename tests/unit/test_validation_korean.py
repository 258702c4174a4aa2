"""Dataset findings in both languages (issue 14: on the Korean page the validation report and
upload refusals stayed English). Each finding carries its Korean text beside the English one; the
web app shows it on the Korean page, with the file it names."""

from __future__ import annotations

import re
import shutil

import pytest

from tasks.samples import make_sample
from tasks.validation import validate
from ui.client import ApiError
from ui.context import error_text

HANGUL = re.compile(r"[가-힣]")


def _broken_detect(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "det", n_train=6, n_val=3)
    (root / "images/train/train_0002.jpg").write_bytes(b"not a jpeg" * 20)  # unreadable
    img = root / "images/train/train_0001.jpg"
    img.write_bytes(img.read_bytes()[:-200])  # truncated
    lbl = root / "labels/val/val_0001.txt"
    lbl.write_text(lbl.read_text() + "7 0.5 0.5 0.1 0.1\n0 0.5 abc 0.1 0.1\n0 0.5 0.5 0.1\n1 1.5 0.5 0.1 0.1\n")
    (root / "labels/train/train_0003.txt").unlink()  # background
    (root / "labels/train/ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # orphan
    return root


def _broken_classify(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3)
    shutil.rmtree(root / "val" / "circle")  # a class with no val images
    (root / "val" / "hexagon").mkdir()
    shutil.copy(next((root / "val" / "square").iterdir()), root / "val" / "hexagon" / "x.jpg")  # unknown to train
    (root / "train" / "stray.jpg").write_bytes(next((root / "train" / "square").iterdir()).read_bytes())
    (root / "train" / "empty").mkdir()
    return root


@pytest.mark.parametrize(("make", "task"), [(_broken_detect, "detect"), (_broken_classify, "classify")])
def test_every_finding_has_korean_text(tmp_path, make, task):
    report = validate(make(tmp_path), task)
    assert len(report.problems) >= 4
    for p in report.problems:
        assert p.message_ko and HANGUL.search(p.message_ko), p
        assert p.message and not HANGUL.search(p.message), p  # the English one stays English
    as_dict = report.to_dict()["problems"]
    assert all("message_ko" in p for p in as_dict)


def test_format_mismatch_in_korean(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=4, n_val=2)
    (problem,) = validate(root, "detect").problems
    assert "YOLO 데이터셋" in problem.message_ko and "classify" in problem.message_ko


def test_the_korean_page_shows_the_korean_findings_with_their_files():
    e = ApiError(422, "the dataset has 1 error(s); fix the files named below", problems=[
        {"severity": "error", "file": "labels/val/a.txt:3", "message": "class id 7 is out of range",
         "message_ko": "클래스 ID 7이(가) 범위를 벗어납니다"},
        {"severity": "warning", "file": "images/train/<b>.jpg", "message": "no label file"},
    ])
    ko = error_text(e, "ko")
    assert "데이터셋에 문제가 있습니다: 오류 1건, 경고 1건" in ko
    assert "labels/val/a.txt:3" in ko and r"클래스 ID 7이\(가\) 범위를 벗어납니다" in ko  # Markdown-escaped text
    assert "no label file" in ko  # no Korean text: the English one, not nothing
    assert "<b>" not in ko  # file names are shown as text
    en = error_text(e, "en")
    assert r"the dataset has 1 error\(s\)" in en and "클래스" not in en
