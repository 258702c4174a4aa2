"""Text encodings of dataset files: decode_text, load_yaml's notes, and a CP949 data.yaml end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.dataset_layout import decode_text, load_yaml, read_data_yaml
from core.errors import DatasetError
from core.settings import Settings
from tasks.dataset_ingest import ingest
from tasks.storage import Storage
from tasks.validation import validate

CASES = Path(__file__).resolve().parents[1] / "cases"
YAML = "path: .\r\ntrain: images/train\r\nval: images/val\r\nnames:\r\n  0: 불량\r\n  1: 정상\r\n"


# ---------------------------------------------------------------------------------------- decode_text


def test_utf8_has_no_encoding():
    assert decode_text("names: [불량]".encode(), "x") == ("names: [불량]", None)
    assert decode_text(b"names: [a]", "x") == ("names: [a]", None)
    assert decode_text(b"", "x") == ("", None)


def test_utf8_bom_is_stripped_without_a_note():
    assert decode_text("names: [불량]".encode("utf-8-sig"), "x") == ("names: [불량]", None)


def test_cp949_is_recognised():
    text, encoding = decode_text(YAML.encode("cp949"), "data.yaml")
    assert text == YAML
    assert encoding == "cp949"


def test_bytes_in_no_encoding_are_refused():
    raw = bytes(range(256))  # NULs and every control byte: charset-normalizer finds no text encoding
    with pytest.raises(DatasetError) as e:
        decode_text(raw, "where/data.yaml")
    msg = str(e.value)
    assert "where/data.yaml" in msg
    assert "not UTF-8" in msg
    assert "re-save it as UTF-8" in msg


# ------------------------------------------------------------------------------------------ load_yaml


def test_load_yaml_cp949_with_note(tmp_path):
    f = tmp_path / "data.yaml"
    f.write_bytes(YAML.encode("cp949"))
    notes: list[str] = []
    data = load_yaml(f, notes)
    assert data["names"] == {0: "불량", 1: "정상"}
    assert len(notes) == 1
    assert notes[0].startswith("data.yaml: not UTF-8; read as cp949")
    assert "re-save the file as UTF-8" in notes[0]
    assert load_yaml(f) == data  # without a notes list: same content, nothing to say it to


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_load_yaml_utf8_has_no_note(tmp_path, encoding):
    f = tmp_path / "data.yaml"
    f.write_bytes(YAML.encode(encoding))
    notes: list[str] = []
    assert load_yaml(f, notes)["names"] == {0: "불량", 1: "정상"}
    assert notes == []


def test_load_yaml_refuses_undecodable_bytes(tmp_path):
    f = tmp_path / "data.yaml"
    f.write_bytes(bytes(range(256)))
    with pytest.raises(DatasetError, match="re-save it as UTF-8"):
        load_yaml(f, [])


def test_read_data_yaml_keeps_the_note(tmp_path):
    (tmp_path / "data.yaml").write_bytes(YAML.encode("cp949"))
    layout = read_data_yaml(tmp_path)
    assert layout.names == ["불량", "정상"]
    assert any("not UTF-8; read as cp949" in n for n in layout.notes)


def test_read_data_yaml_undecodable_is_a_dataset_error(tmp_path):
    (tmp_path / "data.yaml").write_bytes(bytes(range(256)))
    with pytest.raises(DatasetError, match="re-save it as UTF-8"):
        read_data_yaml(tmp_path)


# Short Korean data.yaml files as Notepad saves them ("ANSI" = CP949). charset-normalizer alone has too
# little text to go on in some of them and picks a wrong code page (Big5, UTF-16-BE): the class names
# come out as other characters, with only a warning.
SHORT = [
    pytest.param("names: [불량, 정상]", id="flow-list"),
    pytest.param('names: ["고양이", "강아지"]\n', id="quoted-list"),
    pytest.param("train: images/train\nval: images/val\nnames: [스크래치, 찍힘, 정상]\n", id="three-names"),
    pytest.param("names:\n- 불량\n", id="block-one-name"),
    pytest.param("names: {0: 사과}\n", id="mapping-one-name"),
    pytest.param('nc: 2\nnames: ["양품","불량품"]\n', id="nc-two-names"),
]


@pytest.mark.parametrize("text", SHORT)
def test_short_cp949_yaml_keeps_korean_names(text):
    decoded, encoding = decode_text(text.encode("cp949"), "data.yaml")
    assert decoded == text
    assert encoding in ("cp949", "euc_kr", "johab")


# ----------------------------------------------------------------------------------- through validate


def _case_09(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, str(CASES / "09-data-yaml-cp949" / "make.py"), str(tmp_path / "out")],
                   check=True, capture_output=True)
    return tmp_path / "out"


def test_validate_warns_about_the_encoding(tmp_path):
    base = _case_09(tmp_path)
    report = validate(base / "cp949", "detect")
    assert not report.fatal, report.summary()
    assert report.classes == ["불량", "정상"]
    warn = [p for p in report.problems if "cp949" in p.message]
    assert len(warn) == 1 and warn[0].severity == "warning" and warn[0].file == "data.yaml"
    utf8 = validate(base / "utf8bom", "detect")
    assert utf8.classes == ["불량", "정상"]
    assert not any("UTF-8" in p.message for p in utf8.problems)


def test_case_09_cp949_through_ingest(tmp_path):
    base = _case_09(tmp_path)
    storage = Storage(settings=Settings(home=tmp_path / "home"))
    rec = ingest("cp949", str(base / "cp949"), storage=storage)
    assert rec.classes == ["불량", "정상"]
    assert rec.counts == {"train": 6, "val": 3}
    assert sum(rec.report["stats"]["splits"]["val"]["instances"].values()) == 3
    warn = [p for p in rec.report["problems"] if "not UTF-8" in p["message"]]
    assert len(warn) == 1
    assert warn[0]["severity"] == "warning"
    assert "cp949" in warn[0]["message"]
    assert not rec.report["fatal"]
    bom = ingest("bom", str(base / "utf8bom"), storage=storage)
    assert bom.classes == ["불량", "정상"]
    assert not any("UTF-8" in p["message"] for p in bom.report["problems"])


def test_undecodable_data_yaml_refuses_the_import(tmp_path):
    base = _case_09(tmp_path)
    (base / "cp949" / "data.yaml").write_bytes(bytes(range(256)))
    storage = Storage(settings=Settings(home=tmp_path / "home"))
    with pytest.raises(DatasetError) as e:
        ingest("bad", str(base / "cp949"), storage=storage)
    assert "re-save it as UTF-8" in str(e.value)
    assert "Traceback" not in str(e.value)


def test_cp949_obj_names_is_read_with_a_note(tmp_path):
    out = tmp_path / "cvat"
    subprocess.run([sys.executable, str(CASES / "13-cvat-yolo11-darknet" / "make.py"), str(out)],
                   check=True, capture_output=True)
    (out / "obj.names").write_bytes("자동차\r\n트럭\r\n".encode("cp949"))
    rec = ingest("cvat", str(out), storage=Storage(settings=Settings(home=tmp_path / "home")))
    assert rec.classes == ["자동차", "트럭"]
    said = rec.report["notes"] + [p["message"] for p in rec.report["problems"]]
    assert any("not UTF-8" in s and "cp949" in s for s in said), said
