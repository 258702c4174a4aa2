"""'Compare the last two' in a conversation (issue 14: multi-turn across runs — edit, re-run,
continue, compare). Runs are stored as the API stores them (finished, with metric points), linked to
the conversation the way a started run is; the comparison is read through POST /api/chat."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.models import ChatMessage, ChatSession, MetricPoint, Run, utcnow

MAP = "metrics/mAP50-95(B)"


def _run(db, *, model: str, dataset: str = "shapes-detect", final: float | None, state: str = "completed",
         epochs: int = 3, points: tuple[float, ...] = (), minutes: int = 2, **spec) -> Run:
    now = utcnow()
    run = Run(spec={"task": "detect", "framework": "ultralytics", "model": model, "dataset": dataset, "epochs": epochs,
                    "image_size": 64, **spec},
              state=state, epochs_done=epochs if state == "completed" else 1,
              final_metrics={MAP: final, "metrics/mAP50(B)": (final or 0) * 1.5} if final is not None else None,
              started=now - timedelta(minutes=minutes), finished=now if state == "completed" else None)
    db.add(run)
    db.flush()
    for epoch, value in enumerate(points, start=1):
        db.add(MetricPoint(run_id=run.id, epoch=epoch, name=MAP, value=value))
    return run


def _conversation(db, *runs: Run) -> str:
    chat = ChatSession(title="test")
    db.add(chat)
    db.flush()
    for run in runs:
        db.add(ChatMessage(session_id=chat.id, role="user", content="train it"))
        db.add(ChatMessage(session_id=chat.id, role="system", content=f"run {run.id}", spec=run.spec))
    db.commit()
    return chat.id


def _say(client, auth, session_id: str, message: str) -> dict:
    r = client.post("/api/chat", json={"session_id": session_id, "message": message}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("message", ["compare the last two runs", "which one is better?", "how do they compare?",
                                     "compare them side by side"])
def test_compare_names_the_better_run_in_english(client, auth, db, message):
    a = _run(db, model="yolo11n", final=0.41, points=(0.2, 0.45, 0.41))
    b = _run(db, model="yolo11s", final=0.55, points=(0.3, 0.5, 0.55))
    body = _say(client, auth, _conversation(db, a, b), message)
    assert body["intent"] == "compare" and body["run"] is None
    reply = body["reply"]
    assert "Comparison of 2 runs" in reply
    assert "is better on box mAP50-95: 0.5500 vs 0.4100 (+0.1400)" in reply
    assert b.id[:8] in reply.split("is better")[0]
    # the best epoch is read from the stored points, not from the final value
    assert "2 (0.4500)" in reply and "3 (0.5500)" in reply
    assert f"`{MAP}`" in reply  # the raw key beside the readable name
    assert "fractions from 0 to 1" in reply  # what the numbers mean


@pytest.mark.parametrize("message", ["마지막 두 실행 비교해줘", "어느 게 더 나아?", "두 결과 차이 보여줘", "뭐가 더 좋아?"])
def test_compare_in_korean(client, auth, db, message):
    a = _run(db, model="yolo11n", final=0.6)
    b = _run(db, model="yolo11n", final=0.5, epochs=5)
    body = _say(client, auth, _conversation(db, a, b), message)
    assert body["intent"] == "compare"
    assert "실행 2개 비교" in body["reply"]
    assert "더 좋습니다: 0.6000 대 0.5000" in body["reply"]
    assert "높을수록 좋습니다" in body["reply"]


def test_compare_keeps_the_pending_spec_and_starts_nothing(client, auth, db):
    a = _run(db, model="yolo11n", final=0.3)
    b = _run(db, model="yolo11s", final=0.3)
    session_id = _conversation(db, a, b)
    body = _say(client, auth, session_id, "compare the last two")
    assert "equal on box mAP50-95 (0.3000)" in body["reply"]
    assert body["spec"]["model"] == "yolo11s"  # the last spec of the conversation, unchanged
    assert db.query(Run).count() == 2


def test_no_winner_across_datasets_or_unfinished_runs(client, auth, db):
    a = _run(db, model="yolo11n", final=0.7, dataset="shapes-detect")
    b = _run(db, model="yolo11n", final=0.2, dataset="other-boxes")
    reply = _say(client, auth, _conversation(db, a, b), "compare")["reply"]
    assert "different datasets (other-boxes, shapes-detect)" in reply and "is better on" not in reply
    c = _run(db, model="yolo11n", final=None, state="failed")
    d = _run(db, model="yolo11s", final=0.4)
    reply = _say(client, auth, _conversation(db, c, d), "which is better?")["reply"]
    assert f"{c.id[:8]} has not completed (failed)" in reply and "is better on" not in reply


def test_different_tasks_are_not_ranked(client, auth, db):
    a = _run(db, model="yolo11n", final=0.7)
    b = Run(spec={"task": "classify", "framework": "timm", "model": "resnet18", "dataset": "shapes-classify",
                  "epochs": 2}, state="completed", epochs_done=2, final_metrics={"metrics/accuracy_top1": 0.9})
    db.add(b)
    db.flush()
    reply = _say(client, auth, _conversation(db, a, b), "compare the last two")["reply"]
    assert "different metrics" in reply and "metrics/accuracy_top1" in reply and "is better on" not in reply


def test_runs_named_by_id_prefix(client, auth, db):
    a = _run(db, model="yolo11n", final=0.1)
    b = _run(db, model="yolo11s", final=0.2)
    c = _run(db, model="yolo11m", final=0.3)
    session_id = _conversation(db, a, b, c)
    reply = _say(client, auth, session_id, f"compare {a.id[:8]} and {c.id[:8]}")["reply"]
    assert a.id[:8] in reply and c.id[:8] in reply and b.id[:8] not in reply
    assert "is better on box mAP50-95: 0.3000 vs 0.1000" in reply
    reply = _say(client, auth, session_id, "compare deadbee1 and 0badc0de")["reply"]
    assert "no run is called deadbee1" in reply


def test_fewer_than_two_runs_is_said_plainly(client, auth, db):
    chat = ChatSession(title="empty")
    db.add(chat)
    db.commit()
    reply = _say(client, auth, chat.id, "compare the last two")["reply"]
    assert "a comparison needs two runs, and no run has been started" in reply
    only = _run(db, model="yolo11n", final=0.2)
    db.commit()
    reply = _say(client, auth, chat.id, "어느 게 더 나아?")["reply"]
    assert "실행이 두 개 필요한데" in reply and only.id[:8] in reply


def test_one_run_in_the_conversation_is_compared_with_the_newest_other(client, auth, db):
    older = _run(db, model="yolo11n", final=0.2)
    db.commit()
    mine = _run(db, model="yolo11s", final=0.25)
    reply = _say(client, auth, _conversation(db, mine), "compare the last two")["reply"]
    assert "This conversation started 1 run(s)" in reply
    assert older.id[:8] in reply and mine.id[:8] in reply


def test_a_zero_score_is_explained(client, auth, db):
    a = _run(db, model="yolo11n", final=0.0, pretrained=False)
    b = _run(db, model="yolo11n", final=0.0)
    reply = _say(client, auth, _conversation(db, a, b), "compare")["reply"]
    assert "scored 0: with weights that could not be downloaded a model trains from scratch" in reply
    assert "scratch (random)" in reply and "pretrained weights" in reply


def test_asking_to_compare_new_models_says_it_is_not_available(client, auth, db):
    a = _run(db, model="yolo11n", final=0.2)
    b = _run(db, model="yolo11s", final=0.3)
    body = _say(client, auth, _conversation(db, a, b), "yolo11n vs yolo11m on shapes-detect")
    assert body["intent"] == "compare" and body["run"] is None
    assert "not available yet" in body["reply"] and "Comparison of 2 runs" in body["reply"]


def test_compare_route(client, auth, db):
    a = _run(db, model="yolo11n", final=0.2, points=(0.1, 0.2))
    b = _run(db, model="yolo11s", final=0.35)
    db.commit()
    r = client.get("/api/compare", params={"runs": [a.id[:8], b.id], "lang": "ko"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"] == [a.id, b.id] and body["winner"] == b.id and body["metric"] == MAP
    assert body["rows"][0]["values"][0].startswith(f"`{a.id[:8]}`")
    assert "더 좋습니다" in body["verdict"][0]
    assert client.get("/api/compare", params={"runs": [a.id]}, headers=auth).status_code == 422
    assert client.get("/api/compare", params={"runs": [a.id, "nope1234"]}, headers=auth).status_code == 404
    assert client.get("/api/compare", params={"runs": [a.id, a.id[:8]]}, headers=auth).status_code == 400
    assert client.get("/api/compare", params={"runs": [a.id, b.id]}).status_code == 401


def test_runs_named_by_readable_name(client, auth, db):
    from api import crud

    a = crud.create_run(db, spec={"task": "detect", "framework": "ultralytics", "model": "yolo11n",
                                  "dataset": "shapes-detect", "epochs": 3, "image_size": 64})
    b = crud.create_run(db, spec={"task": "detect", "framework": "ultralytics", "model": "yolo11s",
                                  "dataset": "shapes-detect", "epochs": 3, "image_size": 64})
    for run, value in ((a, 0.2), (b, 0.4)):
        run.state, run.final_metrics, run.epochs_done = "completed", {MAP: value}, 3
    db.commit()
    assert a.name == "yolo11n-shapes-detect-1" and b.name == "yolo11s-shapes-detect-1"
    reply = _say(client, auth, _conversation(db), f"compare {a.name} and {b.name}")["reply"]
    assert f"| | {a.name} | {b.name} |" in reply.replace("|  |", "| |")
    assert f"**{b.name}** is better on box mAP50-95: 0.4000 vs 0.2000" in reply
    ko = client.get("/api/compare", params={"runs": [a.name, b.name], "lang": "ko"}, headers=auth).json()
    assert ko["winner"] == b.id and f"**{b.name}**이(가) 더 좋습니다" in ko["verdict"][0]
