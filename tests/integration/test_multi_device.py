"""Training in several processes on this CPU machine (``devices=cpu:2``, gloo): the same callbacks,
checkpoint and result contract as one process, a stop that reaches every rank, a failing or killed
rank that ends the run with a message (and no rank left behind), and the pool's slots counted per
device. Through the deployment too. (GPUs, ``devices=0,1``, run the same code with NCCL; ultralytics'
own DDP is GPU-only: tests/unit/test_devices.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest
import yaml

from core.errors import TrainerError
from tests.integration.conftest import vtp
from tests.integration.test_trainers import SIZE, Recorder, _assert_epochs, _context, _spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def ranks_alive() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "trainers.common.distributed" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture
def classify_data(tmp_path_factory):
    from tasks.samples import make_sample

    return make_sample("shapes-classify", tmp_path_factory.mktemp("mp") / "d", n_train=8, n_val=4, image_size=SIZE)


def _assert_two_process_run(rec: Recorder, spec, result, framework: str, load_predictor, data: Path,
                            run: Path) -> None:
    """What a 2-process classification run of 2 epochs in ``run`` reports, as one process would, and a
    checkpoint that predicts; no rank left."""
    _assert_epochs(rec, spec, framework)
    assert any("trained with DDP in 2 processes (2 CPU processes, gloo)" in n for n in result.notes), result.notes
    assert any("training in 2 processes (2 CPU processes, gloo); batch_size 4 is 2 images per process" in m
               for m in rec.logs), rec.logs
    assert result.epochs_completed == 2 and set(result.metrics) == {"val/loss", "metrics/accuracy_top1",
                                                                     "metrics/accuracy_top5"}
    assert len((run / "results.csv").read_text().splitlines()) == 3  # one writer: a header and two rows
    # the whole val split (4 images) is measured: accuracy is a multiple of 1/4, not of 1/2 (one shard)
    assert all((e["metrics"]["metrics/accuracy_top1"] * 4) % 1 == 0 for e in rec.callbacks.epochs)
    top = load_predictor(result.best_checkpoint)([next((data / "val").rglob("*.jpg"))], top_k=3)
    assert {p["class"] for p in top[0]["predictions"]} == {"circle", "square", "triangle"}
    assert any(p.endswith("confusion_matrix.png") for p in map(str, result.artifacts)), result.artifacts
    assert not ranks_alive()


def test_timm_two_processes_same_contract_as_one(classify_data, tmp_path):
    from trainers.timm import load_predictor, train

    rec = Recorder()
    spec = _spec("resnet18", epochs=2, devices="cpu:2", batch_size=4)
    result = train(spec, _context(classify_data, "classify", tmp_path, rec))
    run = tmp_path / "run" / "train"
    assert result.best_checkpoint == run / "weights" / "best.pt" and result.last_checkpoint.is_file()
    assert yaml.safe_load((run / "args.yaml").read_text())["device"] == "cpu:2"
    _assert_two_process_run(rec, spec, result, "timm", load_predictor, classify_data, run)


def test_timm_two_processes_stop_on_request(classify_data, tmp_path):
    from trainers.timm import train

    rec = Recorder()
    rec.callbacks.add_stop_check(lambda: len(rec.callbacks.epochs) >= 1)
    spec = _spec("resnet18", epochs=6, devices="cpu:2", batch_size=4)
    result = train(spec, _context(classify_data, "classify", tmp_path, rec))
    assert result.stopped_early and result.epochs_completed <= 2, result
    assert any(n.startswith("stopped on request after epoch") for n in result.notes), result.notes
    assert not ranks_alive()


def test_huggingface_two_processes_same_contract_as_one(classify_data, tmp_path):
    """transformers' Trainer in 2 processes: every epoch's metrics through the callbacks, one writer of
    the run's files, the metrics of the whole val split, a checkpoint that predicts."""
    import json

    from tests.integration.test_huggingface_flow import tiny_model
    from trainers.huggingface import load_predictor, train

    rec = Recorder()
    spec = _spec(str(tiny_model("classify", tmp_path / "vit")), task="classify", epochs=2, devices="cpu:2",
                 batch_size=4)
    result = train(spec, _context(classify_data, "classify", tmp_path, rec))
    run = tmp_path / "run" / "train"
    weights = run / "weights"
    assert result.best_checkpoint == weights / "best" and result.last_checkpoint == weights / "last"
    for folder in ("best", "last"):
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "vtp.json"} <= {
            p.name for p in (weights / folder).iterdir()}
    assert (weights / "resume.pt").is_file()
    assert json.loads((run / "args.json").read_text())["device"] == "cpu:2"
    assert json.loads((weights / "last" / "vtp.json").read_text())["epoch"] == 2
    _assert_two_process_run(rec, spec, result, "huggingface", load_predictor, classify_data, run)


def test_huggingface_two_processes_stop_on_request(classify_data, tmp_path):
    """A stop asked for once the first epoch is reported reaches both ranks in the middle of the run:
    they stop at the same batch, the epoch is finished off (evaluated, saved) and the result says so."""
    from tests.integration.test_huggingface_flow import tiny_model
    from trainers.huggingface import train

    rec = Recorder()
    rec.callbacks.add_stop_check(lambda: len(rec.callbacks.epochs) >= 1)
    spec = _spec(str(tiny_model("classify", tmp_path / "vit")), task="classify", epochs=20, devices="cpu:2",
                 batch_size=4)
    result = train(spec, _context(classify_data, "classify", tmp_path, rec))
    assert result.stopped_early and 1 <= result.epochs_completed < 20, result
    assert any(n.startswith("stopped on request after epoch") for n in result.notes), result.notes
    assert [e["epoch"] for e in rec.callbacks.epochs] == list(range(1, result.epochs_completed + 1))
    csv = (tmp_path / "run" / "train" / "results.csv").read_text().splitlines()
    assert len(csv) == result.epochs_completed + 1
    assert result.last_checkpoint.is_dir() and result.best_checkpoint.is_dir()
    assert not ranks_alive()


def test_rank_error_comes_back_with_its_message(classify_data, tmp_path):
    from trainers.timm import train

    (classify_data / "val" / "zebra").mkdir()
    (classify_data / "val" / "zebra" / "z.jpg").write_bytes((next((classify_data / "val").rglob("*.jpg"))).read_bytes())
    rec = Recorder()
    with pytest.raises(TrainerError, match="has class folders that train/ lacks: zebra"):
        train(_spec("resnet18", devices="cpu:2", batch_size=4), _context(classify_data, "classify", tmp_path, rec))
    assert not ranks_alive()


def test_a_killed_rank_ends_the_run_with_a_message(classify_data, tmp_path):
    from trainers.timm import train

    rec = Recorder()
    killed: list[int] = []

    def kill_rank_1() -> None:
        for p in ranks_alive():
            if not killed and p.cmdline()[-1] == "1":
                p.kill()
                killed.append(p.pid)

    rec.callbacks.add("on_heartbeat", kill_rank_1)
    with pytest.raises(TrainerError, match=r"training process 1 of 2 ended \(exit code -9\) without a result"):
        train(_spec("resnet18", epochs=50, devices="cpu:2", batch_size=4), _context(classify_data, "classify", tmp_path, rec))
    assert killed and not ranks_alive()


def test_a_run_needing_more_slots_than_the_pool_has_is_refused(monkeypatch):
    import logging

    from core.contracts import Callbacks
    from core.settings import Settings
    from tasks.train_steps import pool_slot

    monkeypatch.setenv("VTP_POOL_SLOTS", "1")
    with pytest.raises(TrainerError, match=r"devices='cpu:2' needs 2 training slots but the work pool \S+ has 1"), \
            pool_slot(_spec("resnet18", devices="cpu:2", batch_size=4), Settings(), Callbacks(), logging.getLogger("t")):
        pass


def test_cli_two_process_timm_run_through_the_deployment(stack_env):
    """`vtp train devices=cpu:2`: the flow run in the timm pool's worker trains in two processes and
    reports as any run does (epochs, checkpoint, report, notes)."""
    import json

    from tasks.storage import Storage

    assert vtp("datasets", "sample", "shapes-classify").returncode == 0
    out = vtp("train", "model=resnet18", "dataset=shapes-classify", "epochs=2", "image_size=64", "batch_size=8",
              "devices=cpu:2", "workers=0", "pretrained=false")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "epoch 2/2" in out.stdout and "metrics/accuracy_top1" in out.stdout
    uri = re.search(r"checkpoint: (\S+)", out.stdout).group(1)
    run_id = uri.split("/runs/")[1].split("/")[0]
    summary = Storage().read_json("runs", run_id, "summary.json")
    assert any("DDP in 2 processes" in n for n in summary["notes"]), summary["notes"]
    assert summary["spec"]["devices"] == "cpu:2", json.dumps(summary)[:400]
    assert Path(uri.removeprefix("file://")).is_file()
