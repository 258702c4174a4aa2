"""The Datasets tab with a real export: a zip made on Korean Windows (CP949 file names, Korean class
names), its health report (table, chart, notes) in Korean, another dataset and back, and a refused
re-upload under the same name."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import shot, upload_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CASES = Path(__file__).resolve().parents[1] / "cases"


class WindowsName(zipfile.ZipInfo):
    """An entry as Windows' zip tools write it: the name in CP949, no UTF-8 flag."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own name
        return self.filename.encode("cp949"), self.flag_bits


def windows_zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.writestr(WindowsName(f"{folder.name}/{f.relative_to(folder).as_posix()}"), f.read_bytes())
    return archive


def upload(page, archive: Path, name: str) -> None:
    upload_file(page, "ds-archive", archive)
    page.locator("#ds-name textarea, #ds-name input").first.fill(name)
    page.locator("#ds-upload").click()


def test_korean_export_health_report_and_chart(page_for, api, tmp_path):
    out = tmp_path / "cases"
    subprocess.run([sys.executable, str(CASES / "08-korean-names" / "make.py"), str(out)], check=True,
                   capture_output=True, timeout=120)
    name = f"pets-{tmp_path.name[-6:]}".replace("_", "-")
    page = page_for("ko-KR")
    page.get_by_role("tab", name="데이터셋").click()
    upload(page, windows_zip(out / "반려동물", tmp_path / "pets.zip"), name)
    expect(page.locator("#ds-message")).to_contain_text("가져왔습니다", timeout=90_000)
    info = page.locator("#ds-info")
    expect(info).to_contain_text("고양이", timeout=30_000)
    expect(info).to_contain_text("강아지")
    expect(info).to_contain_text("라벨 있음")  # the health table, in Korean
    expect(info).to_contain_text("v1")
    chart = page.locator("#ds-chart")
    expect(chart.locator("canvas, svg").first).to_be_visible(timeout=30_000)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    shot(page, "20-dataset-health-ko")
    row = api.get("/api/datasets").json()["items"]
    mine = next(d for d in row if d["name"] == name)
    assert mine["classes"] == ["고양이", "강아지"] and mine["counts"] == {"train": 8, "val": 4}
    assert sum(mine["report"]["stats"]["splits"]["val"]["instances"].values()) == 8

    # another dataset, then back: the report and chart follow the pick
    other = next(d["name"] for d in api.get("/api/datasets").json()["items"] if d["name"] != name)
    pick = page.locator("#ds-pick input")
    pick.click()
    page.get_by_role("option").filter(has_text=other).first.click()
    expect(info).not_to_contain_text("고양이", timeout=30_000)
    pick.click()
    page.get_by_role("option").filter(has_text=name).first.click()
    expect(info).to_contain_text("고양이", timeout=30_000)

    # the same archive again: the same version (nothing new stored); changed content: v2
    page.locator("#ds-archive").get_by_label("지우기").first.click()  # Gradio's "Clear", in Korean
    upload(page, tmp_path / "pets.zip", name)
    # the message says the content was there already (and is new, not the first upload's "(v1)" still up)
    expect(page.locator("#ds-message")).to_contain_text("v1과(와) 같은 내용이라 새로 저장한 것이 없습니다",
                                                        timeout=60_000)
    expect(page.locator("#ds-message")).to_contain_text("(v1)", timeout=60_000)
    extra = sorted((out / "반려동물").rglob("*.jpg"))[0]
    (extra.parent / f"more-{extra.name}").write_bytes(extra.read_bytes())
    page.locator("#ds-archive").get_by_label("지우기").first.click()  # Gradio's "Clear", in Korean
    upload(page, windows_zip(out / "반려동물", tmp_path / "pets2.zip"), name)
    expect(page.locator("#ds-message")).to_contain_text("(v2 · 2개 버전)", timeout=60_000)
    expect(info).to_contain_text("v2", timeout=30_000)
    shot(page, "21-dataset-second-version")
    versions = next(d for d in api.get("/api/datasets").json()["items"] if d["name"] == name)["versions"]
    assert [v["version"] for v in versions] == [1, 2]
