"""GET /api/compare?details=true (issue 19 item 4): what the Compare view plots, read from the ledger
(main metric per epoch) and from each run's stored files (per_class.json, confusion matrix and PR
curve artifacts, exports/report.json). Files laid out as the flow leaves them, in real local storage."""

from __future__ import annotations

import json
from pathlib import Path

from api import crud
from api.models import MetricPoint
from tasks.storage import Storage, upload_folder

MAP = "metrics/mAP50-95(B)"
SPEC = {"framework": "ultralytics", "task": "detect", "model": "yolo11n", "dataset": "shapes-detect", "epochs": 2,
        "image_size": 64}


def stored_run(db, settings, out: Path, *, per_class: list[dict] | None, plots: tuple[str, ...] = (),
               exports: list[dict] | None = None, curve: tuple[float, ...] = (), spec: dict | None = None):
    run = crud.create_run(db, spec=spec or SPEC)
    crud.update_run(db, run=run, state="completed", final_metrics={MAP: curve[-1] if curve else 0.0})
    for epoch, value in enumerate(curve, start=1):
        db.add(MetricPoint(run_id=run.id, epoch=epoch, name=MAP, value=value))
    db.commit()
    (out / "artifacts").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    if per_class is not None:
        (out / "artifacts" / "per_class.json").write_text(json.dumps({"task": "detect", "rows": per_class}))
    for name in plots:
        (out / "artifacts" / name).write_bytes(b"\x89PNG fake")
    if exports is not None:
        (out / "exports").mkdir()
        (out / "exports" / "report.json").write_text(json.dumps({"rows": exports}))
    upload_folder(Storage(settings=settings), out, "runs", run.id, run_id=run.id)
    return run


def test_details_give_curves_per_class_plots_and_exports(client, auth, db, settings, tmp_path):
    a = stored_run(db, settings, tmp_path / "a", curve=(0.1, 0.3),
                   per_class=[{"class": "all", "mAP50-95": 0.3}, {"class": "circle", "mAP50-95": 0.4},
                              {"class": "square", "mAP50-95": 0.2}],
                   plots=("confusion_matrix_normalized.png", "confusion_matrix.png", "BoxPR_curve.png"),
                   exports=[{"format": "onnx", "path": "exports/model.onnx", "size_mb": 10.1, "latency_ms_p50": 4.2}])
    b = stored_run(db, settings, tmp_path / "b", curve=(0.2, 0.25, 0.5),
                   per_class=[{"class": "circle", "mAP50-95": 0.6}, {"class": "triangle", "mAP50-95": 0.1}],
                   plots=("PR_curve.png",))
    r = client.get("/api/compare", params={"runs": [a.id, b.id], "details": "true"}, headers=auth)
    assert r.status_code == 200, r.text
    details = r.json()["details"]
    assert details["curves"][a.id] == [{"epoch": 1, "value": 0.1}, {"epoch": 2, "value": 0.3}]
    assert [p["value"] for p in details["curves"][b.id]] == [0.2, 0.25, 0.5]
    per_class = details["per_class"]
    assert per_class["key"] == "mAP50-95" and per_class["classes"] == ["circle", "square", "triangle"]
    assert per_class["values"][a.id] == {"circle": 0.4, "square": 0.2}  # "all" is not a class
    assert per_class["values"][b.id] == {"circle": 0.6, "triangle": 0.1}
    assert details["plots"][a.id] == {"confusion_matrix": "artifacts/confusion_matrix_normalized.png",
                                      "pr_curve": "artifacts/BoxPR_curve.png"}
    assert details["plots"][b.id] == {"pr_curve": "artifacts/PR_curve.png"}
    assert details["exports"][a.id][0]["latency_ms_p50"] == 4.2 and details["exports"][b.id] == []
    # the plots are files the artifacts route serves
    got = client.get(f"/api/runs/{a.id}/artifacts/artifacts/BoxPR_curve.png", headers=auth)
    assert got.status_code == 200 and got.content == b"\x89PNG fake"
    # without details=true, no details
    assert client.get("/api/compare", params={"runs": [a.id, b.id]}, headers=auth).json()["details"] is None


def test_runs_without_a_shared_per_class_metric_have_none(client, auth, db, settings, tmp_path):
    det = stored_run(db, settings, tmp_path / "a", per_class=[{"class": "circle", "AP50-95": 0.4}])
    cls = stored_run(db, settings, tmp_path / "b", per_class=[{"class": "circle", "accuracy": 0.9}],
                     spec={**SPEC, "task": "classify", "model": "resnet18", "framework": "timm"})
    bare = stored_run(db, settings, tmp_path / "c", per_class=None)
    for runs in ([det.id, cls.id], [det.id, bare.id]):
        details = client.get("/api/compare", params={"runs": runs, "details": "true"}, headers=auth).json()["details"]
        assert details["per_class"] == {"key": None, "classes": [], "values": {}}, runs
