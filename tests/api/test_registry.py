"""The model registry (issue 19 item 3): promote a completed run to a named model, list, show, move
and remove aliases; versions are immutable (their files are copies under models/<name>/<id>/ with
their sha256 recorded, their rows refuse updates); the MLflow mirror when MLflow tracking is on.

The runs' outputs are real files in real local storage, laid out as a finished flow leaves them
(manifest, summary.json, checkpoints/best.pt, exports/report.json). The registry copies and records
them and never loads the weights, so the checkpoint here is arbitrary bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from api import crud
from api.models import ModelVersion
from tasks.storage import Storage, upload_folder
from tests.api.test_chat_compare import _conversation

SPEC = {"framework": "ultralytics", "task": "detect", "model": "yolo11n", "dataset": "shapes-detect@2", "epochs": 1}


def finished_run(db, settings, out: Path, *, weights: bytes = b"weights-1", exports: bool = True, state="completed"):
    run = crud.create_run(db, spec=SPEC)
    crud.update_run(db, run=run, state=state)
    storage = Storage(settings=settings)
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.pt").write_bytes(weights)
    rows = []
    if exports:
        (out / "exports" / "model_openvino_model").mkdir(parents=True)
        (out / "exports" / "model.onnx").write_bytes(b"onnx-bytes")
        (out / "exports" / "model_openvino_model" / "model.xml").write_text("<net/>")
        rows = [{"format": "onnx", "path": "exports/model.onnx", "size_mb": 0.01, "latency_ms_p50": 3.2,
                 "metric": "metrics/mAP50-95(B)", "value": 0.5, "reference": 0.5, "drop": 0.0},
                {"format": "openvino", "path": "exports/model_openvino_model", "size_mb": 0.01, "latency_ms_p50": 2.1},
                {"format": "ncnn", "path": "exports/model_ncnn_model", "size_mb": None, "error": "pnnx failed"}]
        (out / "exports" / "report.json").write_text(json.dumps({"rows": rows, "machine": "x86_64, 2 CPUs"}))
    run_uri = storage.uri("runs", run.id)
    (out / "summary.json").write_text(json.dumps({
        "spec": SPEC, "metrics": {"metrics/mAP50-95(B)": 0.5}, "run_uri": run_uri,
        "main_metric": {"name": "metrics/mAP50-95(B)", "value": 0.5},
        "dataset": {"name": "shapes-detect", "version": 2, "ref": "shapes-detect@2", "hash": "abc"},
        "checkpoint_uri": f"{run_uri}/checkpoints/best.pt"}))
    upload_folder(storage, out, "runs", run.id, run_id=run.id)
    return run


def promote(client, auth, name, **body):
    return client.post("/api/models", json={"name": name, **body}, headers=auth)


def test_promote_list_alias_move_and_immutable_versions(client, auth, db, settings, tmp_path):
    first = finished_run(db, settings, tmp_path / "a", weights=b"weights-1")
    second = finished_run(db, settings, tmp_path / "b", weights=b"weights-2")

    r = promote(client, auth, "Forklift-Detector", run=first.id, alias=["production"], export="onnx")
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert (v1["name"], v1["version"], v1["format"], v1["run_id"]) == ("forklift-detector", 1, "onnx", first.id)
    assert v1["aliases"] == ["production", "latest"] and v1["warnings"] == []
    record = v1["record"]
    assert record["dataset"]["ref"] == "shapes-detect@2" and record["metrics"] == {"metrics/mAP50-95(B)": 0.5}
    assert record["export"]["path"] == "exports/model.onnx" and len(record["exports"]) == 3
    assert set(record["files"]) == {"checkpoints/best.pt", "exports/model.onnx"}
    assert record["files"]["checkpoints/best.pt"]["sha256"] == hashlib.sha256(b"weights-1").hexdigest()

    # the files are copies: changing the run's files later does not change the version
    storage = Storage(settings=settings)
    folder = v1["uri"].removeprefix(storage.url + "/")
    storage.write_bytes(b"overwritten", "runs", first.id, "checkpoints/best.pt")
    with storage.fs.open(storage.path(folder, "checkpoints/best.pt"), "rb") as f:
        assert f.read() == b"weights-1"
    assert storage.read_json(folder, "version.json")["version"] == 1

    # a second version by run name, with a folder export named by its path; staging on it
    r = promote(client, auth, "forklift-detector", run=second.name, alias=["staging"],
                export="exports/model_openvino_model")
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["format"] == "openvino" and v2["aliases"] == ["staging", "latest"]
    assert "exports/model_openvino_model/model.xml" in v2["record"]["files"]

    listed = client.get("/api/models", headers=auth).json()["models"]
    assert [(m["name"], m["latest"], m["aliases"]) for m in listed] == [
        ("forklift-detector", 2, {"production": 1, "staging": 2})]
    shown = client.get("/api/models/forklift-detector", headers=auth).json()
    assert [v["version"] for v in shown["versions"]] == [2, 1]

    # by number, v-number, alias, latest
    for ref, number in (("1", 1), ("v2", 2), ("production", 1), ("staging", 2), ("latest", 2)):
        got = client.get(f"/api/models/forklift-detector/versions/{ref}", headers=auth)
        assert got.status_code == 200 and got.json()["version"] == number, (ref, got.text)

    # move production to v2: v1 keeps its record, production now names v2
    r = client.put("/api/models/forklift-detector/aliases/production", json={"version": "v2"}, headers=auth)
    assert r.status_code == 200 and r.json()["aliases"] == ["production", "staging", "latest"], r.text
    assert client.get("/api/models/forklift-detector/versions/production", headers=auth).json()["version"] == 2
    assert client.get("/api/models/forklift-detector/versions/1", headers=auth).json()["record"] == record
    r = client.delete("/api/models/forklift-detector/aliases/staging", headers=auth)
    assert r.status_code == 204
    assert client.get("/api/models", headers=auth).json()["models"][0]["aliases"] == {"production": 2}

    # a version row refuses to change
    row = db.get(ModelVersion, v1["id"])
    row.format = "torchscript"
    with pytest.raises(ValueError, match="immutable"):
        db.commit()
    db.rollback()
    # and no route changes one
    assert client.put("/api/models/forklift-detector/versions/1", json={}, headers=auth).status_code == 405


def test_promotion_refusals_say_what_to_do(client, auth, db, settings, tmp_path):
    done = finished_run(db, settings, tmp_path / "a")
    running = finished_run(db, settings, tmp_path / "b", state="running")
    bare = finished_run(db, settings, tmp_path / "c", exports=False)

    cases = [
        (promote(client, auth, "m", run=running.id), 409, "has not completed"),
        (promote(client, auth, "m", run="nonexistent-run-9"), 404, "nonexistent-run-9"),
        (promote(client, auth, "m", run=bare.id, export="onnx"), 409, "export it first"),
        (promote(client, auth, "m", run=done.id, export="ncnn"), 409, "no 'ncnn' export"),  # it failed
        (promote(client, auth, "bad name!", run=done.id), 400, "not usable"),
        (promote(client, auth, "m", run=done.id, alias=["latest"]), 400, "alias 'latest'"),
        (promote(client, auth, "m", run=done.id, alias=["v3"]), 400, "not a version"),
        (client.get("/api/models/nothing-here", headers=auth), 404, "promote a run"),
        (client.put("/api/models/nothing-here/aliases/production", json={"version": "1"}, headers=auth), 404,
         "no registered model"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in response.json()["detail"], response.json()
    assert client.get("/api/models", headers=auth).json() == {"models": []}  # nothing half-made

    ok = promote(client, auth, "m", run=done.id)
    assert ok.status_code == 201 and ok.json()["format"] == "pytorch"
    for ref, words in (("7", "no version 7"), ("gold", "no alias 'gold'")):
        r = client.get(f"/api/models/m/versions/{ref}", headers=auth)
        assert r.status_code == 404 and words in r.json()["detail"]


def test_a_name_is_made_from_the_run_when_none_is_given(db, settings, tmp_path):
    from api import registry

    run = finished_run(db, settings, tmp_path / "a")
    version, warnings = registry.promote(db, settings, run)
    assert version.model.name == "yolo11n-shapes-detect" and version.version == 1 and warnings == []


def test_mlflow_mirror_registers_versions_and_aliases(db, settings, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from api import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mirrored = settings.model_copy(update={"trackers": "mlflow"})
    first = finished_run(db, settings, tmp_path / "a", weights=b"w1")
    second = finished_run(db, settings, tmp_path / "b", weights=b"w2")
    v1, warnings = registry.promote(db, mirrored, first, "forklift", ["production"])
    assert warnings == []
    v2, warnings = registry.promote(db, mirrored, second, "forklift", ["staging"])
    assert warnings == []
    registry.set_alias(db, mirrored, "forklift", "production", "2")

    client = MlflowClient()
    versions = sorted(client.search_model_versions("name='forklift'"), key=lambda v: int(v.version))
    assert [(v.tags["vtp.version"], v.source) for v in versions] == [("1", v1.uri), ("2", v2.uri)]
    assert client.get_model_version_by_alias("forklift", "production").tags["vtp.version"] == "2"
    assert client.get_model_version_by_alias("forklift", "staging").tags["vtp.version"] == "2"


def test_a_failing_mlflow_mirror_is_reported_and_the_version_kept(db, settings, tmp_path, monkeypatch):
    from api import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing answers there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run = finished_run(db, settings, tmp_path / "a")
    version, warnings = registry.promote(db, settings.model_copy(update={"trackers": "mlflow"}), run, "m")
    assert version.version == 1 and len(warnings) == 1 and "MLflow model registry mirror failed" in warnings[0]
    assert registry.resolve(db, "m").id == version.id


def _say(client, auth, session_id, message):
    r = client.post("/api/chat", json={"session_id": session_id, "message": message}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_promotes_the_conversations_run(client, auth, db, settings, tmp_path):
    older = finished_run(db, settings, tmp_path / "a", weights=b"w1")
    newer = finished_run(db, settings, tmp_path / "b", weights=b"w2")
    crud.update_run(db, run=older, final_metrics={"metrics/mAP50-95(B)": 0.7})
    crud.update_run(db, run=newer, final_metrics={"metrics/mAP50-95(B)": 0.4})
    sid = _conversation(db, older, newer)

    body = _say(client, auth, sid, "이 모델 production으로 올려줘")
    assert body["intent"] == "promote" and body["run"] is None
    reply = body["reply"]
    assert f"실행 {newer.name} (`{newer.id[:8]}`)을(를) **yolo11n-shapes-detect v1**(으)로 등록했습니다 (별칭 production)" \
        in reply, reply
    assert "box mAP50-95 0.5000 (shapes-detect@2 검증 분할" in reply and "모델과 데이터셋 이름을 땄습니다" in reply
    assert client.get("/api/models/yolo11n-shapes-detect/versions/production", headers=auth).json()["run_id"] == newer.id

    # the best of the conversation's runs, under a name, with its onnx export
    body = _say(client, auth, sid, "promote the best run with its onnx export to staging as forklift-detector")
    reply = body["reply"]
    assert f"Promoted run {older.name}" in reply and "**forklift-detector v1** (aliases staging)" in reply, reply
    assert "its onnx export exports/model.onnx" in reply and "highest box mAP50-95 of this conversation's 2" in reply
    version = client.get("/api/models/forklift-detector/versions/staging", headers=auth).json()
    assert version["run_id"] == older.id and version["format"] == "onnx"

    # a run named by its name; an export the run does not have is refused in words
    body = _say(client, auth, sid, f"promote {newer.name} with its ncnn export")
    assert "Could not promote it" in body["reply"] and "no 'ncnn' export" in body["reply"], body["reply"]


def test_chat_promotion_without_a_finished_run_says_what_to_do(client, auth, db):
    sid = _conversation(db)
    body = _say(client, auth, sid, "promote it to production")
    assert body["intent"] == "promote" and "no finished run to promote" in body["reply"]
    assert client.get("/api/models", headers=auth).json() == {"models": []}
