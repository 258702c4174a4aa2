"""Archives made on Windows (file names in the system code page, no UTF-8 flag), macOS (__MACOSX/,
._* AppleDouble files, .DS_Store) and Linux extract with the names the person sees."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from tasks.archives import MACOS_REASON, extract, name_encoding


class WindowsName(zipfile.ZipInfo):
    """A zip entry as Windows' own zip tools write it: the name in CP949, without the UTF-8 flag."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own name
        return self.filename.encode("cp949"), self.flag_bits


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()


NAMES = ["동물/train/고양이/a.jpg", "동물/train/강아지/b.jpg", "동물/val/고양이/c.jpg", "동물/val/강아지/d.jpg"]


def test_windows_cp949_names_extract_as_korean(tmp_path):
    archive = tmp_path / "win.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in NAMES:
            zf.writestr(WindowsName(n), jpeg())
    with zipfile.ZipFile(archive) as zf:  # what Python alone makes of them: mojibake
        assert not any(i.filename.startswith("동물") for i in zf.infolist())
    assert name_encoding(archive) == "cp949"
    root = extract(archive, tmp_path / "x")
    assert root.name == "동물"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == sorted(n[3:] for n in NAMES)


@pytest.mark.parametrize("flagged", [True, False], ids=["utf8-flag", "utf8-no-flag"])
def test_utf8_names_with_or_without_the_flag(tmp_path, flagged):
    class NoFlag(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):  # noqa: N802
            return self.filename.encode("utf-8"), self.flag_bits

    archive = tmp_path / "u.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in NAMES:
            zf.writestr(zipfile.ZipInfo(n) if flagged else NoFlag(n), jpeg())
    assert name_encoding(archive) == (None if flagged else "utf-8")
    root = extract(archive, tmp_path / "x")
    assert (root / "train" / "고양이" / "a.jpg").is_file()


def test_macos_metadata_is_dropped_and_listed(tmp_path):
    archive = tmp_path / "mac.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in NAMES:
            zf.writestr(n, jpeg())
            zf.writestr(f"__MACOSX/{n.rsplit('/', 1)[0]}/._{n.rsplit('/', 1)[1]}", b"\x00\x05\x16\x07meta")
        zf.writestr("동물/.DS_Store", b"\x00\x00\x00\x01Bud1")
        zf.writestr("동물/train/._a.jpg", b"\x00\x05\x16\x07")
    dropped: list[tuple[str, str]] = []
    root = extract(archive, tmp_path / "x", dropped=dropped)
    assert root.name == "동물" and not (tmp_path / "x" / "__MACOSX").exists()
    assert len(dropped) == 6 and {why for _, why in dropped} == {MACOS_REASON}
    assert not list(root.rglob("._*")) and not list(root.rglob(".DS_Store"))
