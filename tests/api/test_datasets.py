"""Datasets through the API: archive uploads (streamed, capped, safely extracted, validated) and
storage URIs; the storage registry and the database stay in step."""

from __future__ import annotations

import pytest

from tasks.dataset_store import list_datasets
from tasks.storage import Storage
from tests.api.fixtures import sample_folder, tar_with_symlink, tree, upload, zip_folder


@pytest.fixture
def sample(tmp_path):
    return sample_folder(tmp_path / "src")


def test_upload_zip_imports_validates_and_registers(client, auth, sample, tmp_path, settings):
    r = upload(client, auth, "shapes", zip_folder(sample, tmp_path / "shapes.zip"))
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "shapes" and ds["task"] == "classify" and ds["format"] == "imagefolder"
    assert ds["classes"] == ["circle", "square", "triangle"] and ds["counts"] == {"train": 6, "val": 3}
    assert ds["report"]["fatal"] is False and ds["report"]["validated"] is True
    version = ds["report"]["hash"]
    assert ds["uri"] == f"{settings.storage_url}/datasets/shapes/{version}"  # the version's own folder
    assert [(v["version"], v["hash"], v["uri"]) for v in ds["versions"]] == [(1, version, ds["uri"])]
    registry = list_datasets(Storage(settings=settings))
    assert registry["shapes"].uri == ds["uri"]
    stored = tree(settings.home / "storage" / "datasets" / "shapes" / version)
    assert "manifest.json" in stored and any(p.endswith(".jpg") for p in stored)
    assert client.get(f"/api/datasets/{ds['id']}", headers=auth).json() == ds
    assert not any((settings.home / "uploads").iterdir()), "the upload folder is cleaned up"


def test_upload_tar_gz_with_task_and_project(client, auth, sample, tmp_path):
    import tarfile

    project = client.post("/api/projects", json={"name": "p"}, headers=auth).json()
    archive = tmp_path / "s.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(sample, arcname="s")
    r = upload(client, auth, "s2", archive, task="classify", project_id=project["id"])
    assert r.status_code == 201, r.text
    assert r.json()["project_id"] == project["id"]
    listed = client.get(f"/api/datasets?project_id={project['id']}", headers=auth).json()
    assert [d["name"] for d in listed["items"]] == ["s2"] and listed["total"] == 1


def test_list_adopts_datasets_registered_outside_the_api(client, auth, settings):
    from tasks.dataset_ingest import ingest_sample

    ingest_sample("shapes-detect", n_train=3, n_val=2, image_size=64, storage=Storage(settings=settings))
    listed = client.get("/api/datasets", headers=auth).json()
    assert [d["name"] for d in listed["items"]] == ["shapes-detect"]
    item = listed["items"][0]
    # the health report made at import is stored beside the version, so the API shows it too
    assert item["task"] == "detect" and item["report"]["stats"]["splits"]["train"]["images"] == 3
    assert [v["version"] for v in item["versions"]] == [1]

    # a second import of changed content through the CLI's path: v2, and the API's row follows it
    ingest_sample("shapes-detect", n_train=4, n_val=2, image_size=64, storage=Storage(settings=settings))
    item = client.get("/api/datasets", headers=auth).json()["items"][0]
    assert [v["version"] for v in item["versions"]] == [1, 2] and item["counts"] == {"train": 4, "val": 2}
    assert item["uri"] == item["versions"][1]["uri"] != item["versions"][0]["uri"]


def test_register_existing_uri(client, auth, sample, settings):
    settings.data_roots = str(sample.parent)  # file:// URIs only under VTP_DATA_ROOTS (issue 13)
    r = client.post("/api/datasets", json={"name": "inplace", "uri": sample.as_uri(), "task": "classify"}, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["uri"] == sample.as_uri() and r.json()["task"] == "classify"
    assert list_datasets(Storage(settings=settings))["inplace"].uri == sample.as_uri()
    assert not (settings.home / "storage" / "datasets" / "inplace").exists(), "registered where it is, not copied"


@pytest.mark.parametrize("body,status,words", [
    ({"name": "x", "uri": "http://example.org/data"}, 422, "file:///absolute/path or s3://"),
    ({"name": "x", "uri": "relative/path"}, 422, "not a storage URI"),
    ({"name": "../x", "uri": "file:///tmp"}, 422, "not allowed"),
    ({"name": "x"}, 422, "uri: Field required"),
    ({"name": "x", "uri": "file:///tmp", "size": 3}, 422, "size"),
])
def test_register_uri_errors(client, auth, body, status, words):
    r = client.post("/api/datasets", json=body, headers=auth)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_register_empty_uri_is_refused(client, auth, tmp_path, settings):
    settings.data_roots = str(tmp_path)
    (tmp_path / "empty").mkdir()
    r = client.post("/api/datasets", json={"name": "e", "uri": (tmp_path / "empty").as_uri()}, headers=auth)
    assert r.status_code == 422 and "holds no files" in r.json()["detail"]


def test_same_name_upload_is_a_version_and_a_uri_is_409(client, auth, sample, tmp_path, settings):
    first = upload(client, auth, "dup", zip_folder(sample, tmp_path / "a.zip"))
    assert first.status_code == 201
    before = list_datasets(Storage(settings=settings))["dup"]
    again = upload(client, auth, "dup", zip_folder(sample, tmp_path / "b.zip"))  # same content: v1 again
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert [v["version"] for v in again.json()["versions"]] == [1]
    assert list_datasets(Storage(settings=settings))["dup"] == before
    settings.data_roots = str(sample.parent)
    uri = client.post("/api/datasets", json={"name": "dup", "uri": sample.as_uri()}, headers=auth)
    assert uri.status_code == 409 and "new version" in uri.json()["detail"]
    assert list_datasets(Storage(settings=settings))["dup"] == before

    extra = sorted(sample.rglob("*.jpg"))[0]
    (extra.parent / f"more-{extra.name}").write_bytes(extra.read_bytes())
    changed = upload(client, auth, "dup", zip_folder(sample, tmp_path / "c.zip"))
    assert changed.status_code == 201, changed.text
    out = changed.json()
    assert out["id"] == first.json()["id"] and [v["version"] for v in out["versions"]] == [1, 2]
    assert out["uri"] == out["versions"][1]["uri"] and out["report"]["version"] == 2
    assert (settings.home / "storage" / "datasets" / "dup" / out["versions"][0]["hash"] / "manifest.json").is_file()


def test_invalid_dataset_is_422_with_problems_and_not_registered(client, auth, tmp_path, settings):
    folder = tmp_path / "bad"
    (folder / "images" / "train").mkdir(parents=True)
    (folder / "labels" / "train").mkdir(parents=True)
    (folder / "images" / "train" / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "labels" / "train" / "a.txt").write_text("7 0.5 0.5 0.2\n")
    (folder / "data.yaml").write_text("names: [a]\ntrain: images/train\nval: images/train\n")
    r = upload(client, auth, "bad", zip_folder(folder, tmp_path / "bad.zip"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert "error" in body["detail"] and body["problems"]
    assert all({"severity", "file", "message"} <= set(p) for p in body["problems"])
    assert any("a.jpg" in p["file"] or "a.txt" in p["file"] for p in body["problems"])
    assert "bad" not in list_datasets(Storage(settings=settings))
    assert client.get("/api/datasets", headers=auth).json()["total"] == 0


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil-abs.txt", "s/../../evil.txt", "..\\evil.txt"])
def test_archive_escaping_its_folder_is_refused(client, auth, sample, tmp_path, settings, evil, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where ingest extracts
    archive = zip_folder(sample, tmp_path / "evil.zip", extra=[(evil, b"pwned")])
    r = upload(client, auth, "evil", archive)
    assert r.status_code == 422, r.text
    assert "outside" in r.json()["detail"]
    for root in (scratch, settings.home, tmp_path / "src"):
        assert not [p for p in tree(root) if "evil" in p and not p.endswith("evil.zip")], root
    assert not (tmp_path.parent / "evil.txt").exists() and not __import__("pathlib").Path("/tmp/evil-abs.txt").exists()
    assert tree(scratch) == set(), "extraction folders are removed"
    assert "evil" not in list_datasets(Storage(settings=settings))


def test_archive_with_symlink_is_refused(client, auth, sample, tmp_path, settings):
    r = upload(client, auth, "links", tar_with_symlink(sample, tmp_path / "links.tar.gz"))
    assert r.status_code == 422 and "link" in r.json()["detail"]
    assert not (settings.home / "storage" / "datasets" / "links").exists()


def test_oversize_upload_is_413_and_stops_reading(app, client, auth, sample, tmp_path, settings):
    app.state.settings = settings.model_copy(update={"max_upload_bytes": 2048})
    archive = zip_folder(sample, tmp_path / "big.zip")
    assert archive.stat().st_size > 2048
    r = upload(client, auth, "big", archive)
    assert r.status_code == 413, r.text
    assert "2048 bytes" in r.json()["detail"] and "VTP_MAX_UPLOAD_BYTES" in r.json()["detail"]
    assert not any((settings.home / "uploads").iterdir())
    assert not (settings.home / "storage" / "datasets" / "big").exists()


def test_declared_oversize_is_refused_before_reading(app, client, auth, settings):
    app.state.settings = settings.model_copy(update={"max_upload_bytes": 10})
    r = client.post("/api/datasets", content=b"x" * (200 * 1024), headers={
        **auth, "Content-Type": "multipart/form-data; boundary=abc"})
    assert r.status_code == 413


@pytest.mark.parametrize("name,filename,fields,status,words", [
    (None, "d.zip", {}, 422, "name is required"),
    ("d", None, {}, 422, "file is required"),
    ("d", "d.rar", {}, 422, "not a dataset archive"),
    ("d", "d.zip", {"task": "dance"}, 422, "task='dance'"),
    ("d", "d.zip", {"project_id": "42"}, 422, "project_id=42 does not exist"),
    ("d", "d.zip", {"project_id": "x"}, 422, "whole number"),
    ("d", "d.zip", {"val_fraction": "0.9"}, 422, "val_fraction='0.9' is not a share"),
    ("d", "d.zip", {"val_fraction": "nan"}, 422, "at most 0.5"),
    ("d", "d.zip", {"val_fraction": "fifth"}, 422, "val_fraction='fifth'"),
])
def test_upload_request_errors(client, auth, sample, tmp_path, name, filename, fields, status, words):
    archive = None
    if filename:
        archive = zip_folder(sample, tmp_path / filename)
    r = upload(client, auth, name, archive, **fields)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_not_an_archive_is_422(client, auth, tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"this is not a zip file")
    r = upload(client, auth, "fake", fake)
    assert r.status_code == 422 and "not a readable archive" in r.json()["detail"]


def test_other_content_types_are_415(client, auth):
    r = client.post("/api/datasets", content=b"name=x", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]


def test_get_unknown_dataset_is_404(client, auth):
    r = client.get("/api/datasets/999", headers=auth)
    assert r.status_code == 404 and "GET /api/datasets" in r.json()["detail"]


def test_db_row_failure_rolls_back_the_registry(client, auth, sample, tmp_path, settings, monkeypatch):
    from api import crud

    def fail(*_, **__):
        raise RuntimeError("database went away")

    monkeypatch.setattr(crud, "save_dataset", fail)
    with pytest.raises(RuntimeError):
        upload(client, auth, "half", zip_folder(sample, tmp_path / "h.zip"))
    assert "half" not in list_datasets(Storage(settings=settings))
    assert not (settings.home / "storage" / "datasets" / "half").exists()


def _leaks(text: str, settings) -> list[str]:
    """Where a message gives away the server's disk: temporary or upload folders, VTP_HOME."""
    import tempfile

    marks = ("vtp-archive-", "vtp-ingest-", "upload-", "upload.zip", tempfile.gettempdir() + "/", str(settings.home))
    return [m for m in marks if m in text]


@pytest.mark.parametrize("entries,start,words", [
    ({"notes/readme.txt": b"hello"}, "pets.zip: notes is not a dataset layout vtp reads (it holds: readme.txt)", ""),
    ({"readme.txt": b"hello", "more/x.txt": b"x"}, "pets.zip: the top folder is not a dataset layout vtp reads", ""),
    ({"d/data.yaml": b"names: [a\ntrain: ["}, "pets.zip, folder d/: the dataset has 1 error(s)",
     "error: data.yaml: d/data.yaml cannot be read as YAML"),
    ({"d/data.yaml": b"names: [a]\ntrain: images/train\nval: images/val\n"},
     "pets.zip, folder d/: the dataset has 2 error(s)", "data.yaml: train split images/train does not exist"),
])
def test_archive_problems_name_the_archive_and_the_path_inside_it(client, auth, tmp_path, settings, entries, start,
                                                                  words):
    """What the Datasets tab shows: the upload's own name and paths inside it, never a temp folder."""
    import zipfile

    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    r = upload(client, auth, "pets", archive)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(start) and words in detail, detail
    assert _leaks(r.text, settings) == [], r.text


def test_dataset_problems_in_an_archive_leak_no_server_path(client, auth, tmp_path, settings):
    folder = tmp_path / "bad"
    (folder / "images" / "train").mkdir(parents=True)
    (folder / "labels" / "train").mkdir(parents=True)
    (folder / "images" / "train" / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "labels" / "train" / "a.txt").write_text("7 0.5 0.5 0.2\n")
    (folder / "data.yaml").write_text("names: [a]\ntrain: images/train\nval: images/train\n")
    r = upload(client, auth, "bad", zip_folder(folder, tmp_path / "cats.zip"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("cats.zip, folder bad/: the dataset has") and r.json()["problems"]
    assert _leaks(r.text, settings) == [], r.text


def test_unreadable_upload_is_named_as_uploaded(client, auth, tmp_path, settings):
    fake = tmp_path / "holiday photos.zip"
    fake.write_bytes(b"this is not a zip file")
    r = upload(client, auth, "fake", fake)
    assert r.status_code == 422 and r.json()["detail"].startswith("holiday photos.zip is not a readable archive")
    assert _leaks(r.text, settings) == [], r.text


def test_upload_without_val_split_takes_val_fraction(client, auth, sample, tmp_path):
    import shutil

    shutil.rmtree(sample / "val")  # 6 train images, 2 per class: one of each class goes to val at 0.5
    r = upload(client, auth, "halves", zip_folder(sample, tmp_path / "halves.zip"), val_fraction="0.5")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["counts"] == {"train": 3, "val": 3}
    assert ds["report"]["auto_split"]["val_fraction"] == 0.5
