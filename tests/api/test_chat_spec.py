"""The spec card shows the spec a run would get (issue 14: "Pretrained —" while the run used
true): /api/chat returns ``effective_spec``, the parsed spec validated with every default filled in."""

from __future__ import annotations

import pytest

from core.spec import parse_spec


@pytest.mark.parametrize("message", ["train yolo11n on shapes-detect for 2 epochs",
                                     "shapes-detect로 YOLO11n 3에폭 학습해줘, 이미지 크기 64, 처음부터"])
def test_effective_spec_is_what_a_run_gets(client, auth, message):
    assert client.post("/api/datasets/sample", json={"name": "shapes-detect"}, headers=auth).status_code in (200, 201)
    r = client.post("/api/chat", json={"message": message}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] and body["run"] is None
    effective = body["effective_spec"]
    assert effective == parse_spec(body["spec"]).model_dump(mode="json")
    for field in ("pretrained", "image_size", "batch_size", "epochs", "model", "dataset", "task"):
        assert effective[field] is not None, field
    assert effective["pretrained"] is ("처음부터" not in message)


def test_no_effective_spec_while_something_is_missing(client, auth):
    body = client.post("/api/chat", json={"message": "YOLO11n으로 객체 탐지 모델 만들어줘"}, headers=auth).json()
    assert not body["ready"] and body["effective_spec"] is None and body["missing"] == ["dataset"]


def test_new_fields_negation_and_unplaced_words_through_the_api(client, auth):
    """Issue 17 through /api/chat: the knobs people ask for, a negation, the dataset's own class names,
    and the words nothing could place, returned as ``unplaced`` (the spec card lists them)."""
    assert client.post("/api/datasets/sample", json={"name": "shapes-detect"}, headers=auth).status_code in (200, 201)
    classes = next(d for d in client.get("/api/datasets", headers=auth).json()["items"] if d["name"] == "shapes-detect")["classes"]
    message = (f"train yolo11n on shapes-detect for 3 epochs without pretrained weights, 20% validation, accumulate 4, "
               f"only {classes[0]} and {classes[1]}, export onnx, zorblax")
    body = client.post("/api/chat", json={"message": message}, headers=auth).json()
    assert body["ready"] and body["run"] is None, body
    spec = body["effective_spec"]
    assert (spec["pretrained"], spec["val_fraction"], spec["accumulate"], spec["export"]) == (False, 0.2, 4, ["onnx"])
    assert spec["classes"] == classes[:2] and spec["epochs"] == 3
    assert body["unplaced"] == ["zorblax"] and "zorblax" in body["reply"]

    # a follow-up in Korean: all but one class, a numeral word, and the rest of the spec kept
    follow = client.post("/api/chat", json={"session_id": body["session_id"],
                                            "message": f"{classes[-1]} 빼고, 에폭 이십으로"}, headers=auth).json()
    assert follow["spec"]["epochs"] == 20 and follow["spec"]["classes"] == [c for c in classes if c != classes[-1]], follow
    assert follow["spec"]["accumulate"] == 4 and follow["unplaced"] == []
