"""POST /api/runs/{id}/predict for each framework: the route asks the run's framework plugin (from the
registry) which checkpoint it published (a file, or a Hugging Face save_pretrained folder) and how
to predict with it. Real checkpoints in real local storage; the Hugging Face one is trained here."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from api import crud
from tasks.storage import Storage, upload_folder
from tasks.train_steps import collect_outputs

CLASSES = ["circle", "square", "triangle"]


def _run_with_outputs(db, settings, spec: dict, out: Path):
    run = crud.create_run(db, spec=spec)
    crud.update_run(db, run=run, state="completed")
    (out / "summary.json").write_text(json.dumps({"spec": spec}))
    upload_folder(Storage(settings=settings), out, "runs", run.id, run_id=run.id)
    return run


def _predict(client, auth, run, image: Image.Image, **params):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    r = client.post(f"/api/runs/{run.id}/predict", files={"file": ("x.png", buf.getvalue(), "image/png")},
                    params=params, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    drawn = Image.open(io.BytesIO(base64.b64decode(body["png_base64"])))
    assert drawn.format == "PNG" and drawn.size == image.size
    return body


def _sample_image(sample: Path) -> Image.Image:
    return Image.open(next(sorted((sample / "val").rglob("*.jpg")).__iter__())).convert("RGB")


@pytest.fixture
def classify_sample(tmp_path):
    from tasks.samples import make_sample

    return make_sample("shapes-classify", tmp_path / "sample", n_train=4, n_val=2, image_size=32)


def test_a_huggingface_classifier_predicts_through_the_route(client, auth, db, settings, tmp_path, classify_sample):
    from transformers import ViTConfig

    from core.contracts import Callbacks, TrainContext
    from core.spec import parse_spec
    from tasks.dataset_formats import prepare_local
    from trainers.huggingface import predict, train

    folder = tmp_path / "vit"
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32,
              patch_size=16).save_pretrained(folder)
    spec = parse_spec({"model": str(folder), "task": "classify", "dataset": "shapes-classify", "epochs": 1,
                       "image_size": 32, "batch_size": 4, "workers": 0, "pretrained": False})
    info = prepare_local(classify_sample, "classify", tmp_path / "work")
    result = train(spec, TrainContext(tmp_path / "work", info, Callbacks()))
    out = tmp_path / "outputs"
    collect_outputs(result, out)
    assert (out / "checkpoints" / "best" / "vtp.json").is_file() and not (out / "checkpoints" / "best.pt").exists()
    run = _run_with_outputs(db, settings, spec.model_dump(mode="json"), out)

    image = _sample_image(classify_sample)
    body = _predict(client, auth, run, image)
    assert body["task"] == "classify" and [p["class"] for p in body["predictions"]][0] in CLASSES
    assert len(body["predictions"]) == 3 and sum(p["confidence"] for p in body["predictions"]) == pytest.approx(1, 1e-4)
    direct = predict(result.best_checkpoint, [image])[0]
    assert [p["class"] for p in body["predictions"]] == [c for c, _ in direct]
    assert [p["confidence"] for p in body["predictions"]] == pytest.approx([s for _, s in direct], abs=1e-6)
    again = _predict(client, auth, run, image)  # the folder is fetched once, the model kept loaded
    assert again["predictions"] == body["predictions"]


def test_a_timm_checkpoint_predicts_through_the_route(client, auth, db, settings, tmp_path, classify_sample):
    import timm

    from trainers.timm.data import data_config

    model = timm.create_model("test_resnet", pretrained=False, num_classes=len(CLASSES))
    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"model": model.state_dict(), "spec": {"model": "test_resnet"}, "classes": CLASSES,
                "data_config": data_config(model, 32).as_dict()}, out / "checkpoints" / "best.pt")
    spec = {"model": "test_resnet", "framework": "timm", "task": "classify", "dataset": "d", "image_size": 32}
    run = _run_with_outputs(db, settings, spec, out)
    body = _predict(client, auth, run, _sample_image(classify_sample))
    assert body["task"] == "classify" and {p["class"] for p in body["predictions"]} == set(CLASSES)


def test_a_yolo_checkpoint_predicts_through_the_route(client, auth, db, settings, tmp_path):
    from trainers.ultralytics.env import import_ultralytics

    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    import_ultralytics().YOLO("yolo11n.yaml").save(out / "checkpoints" / "best.pt")
    spec = {"model": "yolo11n", "framework": "ultralytics", "task": "detect", "dataset": "d", "image_size": 64}
    run = _run_with_outputs(db, settings, spec, out)
    body = _predict(client, auth, run, Image.new("RGB", (64, 64), (120, 90, 30)), conf=0.0)
    assert body["task"] == "detect"
    assert all(set(p) == {"class", "confidence", "box"} and len(p["box"]) == 4 for p in body["predictions"])


def test_a_run_of_a_framework_vtp_lacks_is_409(client, auth, db, settings, tmp_path):
    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.pt").write_bytes(b"x")
    run = _run_with_outputs(db, settings, {"model": "m", "framework": "caffe", "dataset": "d"}, out)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    r = client.post(f"/api/runs/{run.id}/predict", files={"file": ("x.png", buf.getvalue())}, headers=auth)
    assert r.status_code == 409 and "'caffe', which is not installed here" in r.json()["detail"]
