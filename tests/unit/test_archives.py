"""Archive extraction refuses anything that could write outside the dataset folder."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from core.errors import DatasetError
from tasks.archives import extract


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def test_zip_extracts_and_enters_single_top_folder(tmp_path):
    archive = _zip(tmp_path / "d.zip", [("ds/train/a/1.txt", "x"), ("ds/val/a/2.txt", "y")])
    root = extract(archive, tmp_path / "out")
    assert root == tmp_path / "out" / "ds"
    assert (root / "train/a/1.txt").read_text() == "x"


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_zip_traversal_refused_nothing_written(tmp_path, bad):
    archive = _zip(tmp_path / "d.zip", [("fine.txt", "a"), (bad, "pwned")])
    with pytest.raises(DatasetError, match="outside"):
        extract(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "x").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_tar_symlink_refused(tmp_path):
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DatasetError, match="link"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        extract(archive, tmp_path / "out")


def test_not_an_archive(tmp_path):
    bogus = tmp_path / "d.zip"
    bogus.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a readable archive"):
        extract(bogus, tmp_path / "out")


def test_tar_traversal_refused(tmp_path):
    archive = tmp_path / "d.tar"
    with tarfile.open(archive, "w") as tf:
        data = b"pwned"
        info = tarfile.TarInfo("../escape.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match="outside"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
