"""Real-world dataset exports (tests/cases/, the issue's generators): each imports with the right
classes and counts through `vtp datasets add` and trains one epoch, or is refused with a message that
says what to do. Also: versions (a re-import of changed data is v2; a run pinned to v1 trains on v1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import vtp
from tests.integration.test_flow import run_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CASES = Path(__file__).resolve().parents[1] / "cases"


def make_case(case: str, out: Path, *extra: str) -> Path:
    done = subprocess.run([sys.executable, str(CASES / case / "make.py"), str(out), *extra],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def add(name: str, folder: Path) -> tuple[str, dict]:
    """`vtp datasets add NAME FOLDER` (its printed report) and `vtp datasets show NAME --json`."""
    out = vtp("datasets", "add", name, str(folder))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    shown = vtp("datasets", "show", name, "--json")
    assert shown.returncode == 0, shown.stderr
    return out.stdout, json.loads(shown.stdout)


def val_instances(record: dict) -> int:
    return sum(record["report"]["stats"]["splits"]["val"]["instances"].values())


# case folder, what make.py writes (relative to OUT), model, classes, train images, val images, val instances
TRAINED = [
    ("02-roboflow-coco-supercategory", "fish", "yolo11n", ["fish", "stain"], 8, 4, 8),
    ("03-coco2017-official-layout", "coco", "yolo11n", ["person", "bicycle", "car"], 8, 4, 12),
    ("08-korean-names", "반려동물", "yolo11n", ["고양이", "강아지"], 8, 4, 8),
    ("09-data-yaml-cp949", "cp949", "yolo11n", ["불량", "정상"], 6, 3, 3),
    ("12-pascal-voc", "voc", "yolo11n", ["cat", "dog"], 8, 4, 8),
    ("13-cvat-yolo11-darknet", "cvat", "yolo11n", ["car", "truck"], 8, 4, 4),
    ("15-txt-image-lists", "lists", "yolo11n", ["apple", "pear"], 8, 4, 4),
    ("18-imagefolder-16bit-png", "thermal", "resnet18", ["cool", "hot"], 16, 8, None),
]
WRITES_TOP = {"08-korean-names", "09-data-yaml-cp949"}  # make.py OUT writes several datasets under OUT


@pytest.mark.parametrize(("case", "folder", "model", "classes", "n_train", "n_val", "n_val_instances"), TRAINED,
                         ids=[c[0] for c in TRAINED])
def test_case_imports_right_and_trains(stack_env, tmp_path, case, folder, model, classes, n_train, n_val,
                                       n_val_instances):
    out = tmp_path / "case"
    root = make_case(case, out) / folder if case in WRITES_TOP else make_case(case, out / folder)
    name = f"case{case[:2]}"
    printed, record = add(name, root)
    assert record["classes"] == classes, printed
    assert record["counts"]["train"] == n_train and record["counts"]["val"] == n_val, printed
    if n_val_instances is not None:
        assert val_instances(record) == n_val_instances, printed
    assert record["version"] == 1 and record["report"]["stats"]["splits"]["train"]["unreadable"] == 0

    state = run_flow({"model": model, "dataset": name, "epochs": 1, "image_size": 64, "batch_size": 4,
                      "workers": 0}, stack_env["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    report = summary["dataset_report"]
    assert report["classes"] == classes and report["counts"]["train"] == n_train
    assert summary["dataset"]["ref"] == f"{name}@v1" and summary["epochs_completed"] == 1


def test_hf_detr_sees_polygon_rows_as_their_boxes(stack_env, tmp_path):
    root = make_case("06-polygon-labels-hf-detr", tmp_path / "poly", str(tmp_path / "tiny-detr"))
    printed, record = add("case06", root)
    assert record["classes"] == ["leaf", "spot"] and record["counts"] == {"train": 8, "val": 4}
    assert val_instances(record) == 8, printed
    state = run_flow({"model": str(tmp_path / "tiny-detr"), "dataset": "case06", "epochs": 1, "image_size": 64,
                      "batch_size": 4, "workers": 0, "pretrained": False}, stack_env["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    assert state.result()["dataset_report"]["counts"] == {"train": 8, "val": 4}


def test_capital_images_folder_is_refused_with_what_to_do(stack_env, tmp_path):
    root = make_case("17-capital-Images-folder", tmp_path / "od")
    out = vtp("datasets", "add", "case17", str(root))
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text
    assert "rename Images/ to images/ (lower-case)" in text and "labels/train/ holds 10 label files" in text
    assert "same names (stems)" in text and "capital" in text
    assert "case17" not in vtp("datasets", "list").stdout


def test_versions_reimport_and_a_run_pinned_to_v1(stack_env, tmp_path):
    from tasks.samples import make_sample

    root = make_sample("shapes-classify", tmp_path / "ver", n_train=6, n_val=3, image_size=48)
    _, first = add("ver", root)
    again, same = add("ver", root)  # same content: the same version, nothing stored
    assert same["version"] == 1 and len(same["versions"]) == 1 and "same content as v1: nothing new" in again
    extra = sorted((root / "train").rglob("*.jpg"))[0]
    (extra.parent / f"copy-{extra.name}").write_bytes(extra.read_bytes())
    printed, second = add("ver", root)
    assert second["version"] == 2 and [v["version"] for v in second["versions"]] == [1, 2]
    assert second["hash"] != first["hash"] and "new version v2" in printed
    assert second["counts"]["train"] == 7 and first["counts"]["train"] == 6
    # v1's files are untouched, and a run pinned to it trains on them
    state = run_flow({"model": "resnet18", "dataset": "ver@v1", "epochs": 1, "image_size": 48, "batch_size": 4,
                      "workers": 0, "pretrained": False}, stack_env["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["dataset"]["version"] == 1 and summary["dataset"]["hash"] == first["hash"]
    assert summary["dataset_report"]["counts"]["train"] == 6
    by_hash = vtp("datasets", "show", f"ver@{first['hash'][:6]}", "--json")
    assert json.loads(by_hash.stdout)["version"] == 1
    missing = vtp("datasets", "show", "ver@v9")
    assert missing.returncode == 1 and "v1 (" in missing.stderr and "v2 (" in missing.stderr
