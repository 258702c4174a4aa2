"""``devices`` (issue 18 item 5): parsing, the spec's checks, ultralytics' DDP argument plumbing,
and the relay that follows ultralytics' DDP workers through the files they write.

Ultralytics DDP needs CUDA GPUs (NCCL) and is not run here; what vtp adds around it is: the
device string it passes, and :class:`trainers.ultralytics.ddp.Relay`, run below against files
written the way ultralytics writes them (results.csv rows, then weights/last.pt)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.contracts import Callbacks
from core.devices import parse_devices
from core.spec import parse_spec
from trainers.ultralytics.hooks import RunState


@pytest.mark.parametrize(("text", "kind", "count", "gpus", "canonical"), [
    ("cpu:2", "cpu", 2, (), "cpu:2"),
    (" CPU:4 ", "cpu", 4, (), "cpu:4"),
    ("0,1", "cuda", 2, (0, 1), "0,1"),
    ("cuda:0,1,3", "cuda", 3, (0, 1, 3), "0,1,3"),
    ("0, 2", "cuda", 2, (0, 2), "0,2"),
    ("1", "cuda", 1, (1,), "1"),
])
def test_parse_devices(text, kind, count, gpus, canonical):
    d = parse_devices(text)
    assert (d.kind, d.count, d.gpus, str(d)) == (kind, count, gpus, canonical)


@pytest.mark.parametrize(("text", "says"), [
    ("cpu:0", "cpu:1 to cpu:64"), ("cpu:65", "cpu:1 to cpu:64"), ("0,0", "names a GPU twice"),
    ("gpu2", "'0,1' (these GPUs) or 'cpu:2'"), ("cpu", "'0,1' (these GPUs) or 'cpu:2'"), ("", "not a set of devices"),
    ("0;1", "not a set of devices"), ("-1", "not a set of devices"),
])
def test_parse_devices_refuses_with_the_forms(text, says):
    with pytest.raises(ValueError, match="devices=") as e:
        parse_devices(text)
    assert says in str(e.value)


def test_describe_says_it_for_people():
    assert parse_devices("cpu:2").describe() == "2 CPU processes"
    assert parse_devices("0,1,2").describe() == "GPUs 0, 1 and 2"
    assert parse_devices("3").describe() == "GPU 3"


def _spec(**kw):
    return parse_spec({"model": "resnet18", "dataset": "d", **kw})


def test_spec_devices_count_and_device():
    s = _spec(devices="cpu:2")
    assert (s.devices, s.device, s.device_count) == ("cpu:2", "cpu", 2)
    assert _spec().device_count == 1 and _spec().devices is None
    g = _spec(devices="cuda:0,1", batch_size=32)
    assert (g.devices, g.device, g.device_count) == ("0,1", "cuda", 2)


def test_spec_moves_a_gpu_list_given_as_device_to_devices():
    """The chat says "2 GPUs" as device=0,1 (chat/fields.py); that is two processes now, not GPU 0 with a note."""
    s = _spec(device="0,1")
    assert (s.device, s.devices, s.device_count) == ("cuda", "0,1", 2)
    assert _spec(device="0,1", devices="0,1").devices == "0,1"


def test_spec_one_device_is_the_single_process_run():
    assert (_spec(devices="cpu:1").device, _spec(devices="cpu:1").devices) == ("cpu", None)
    assert (_spec(devices="2").device, _spec(devices="2").devices) == ("cuda:2", None)


@pytest.mark.parametrize(("kw", "says"), [
    ({"devices": "cpu:3"}, "batch_size=16 does not split evenly over 3 devices (3 CPU processes): use a multiple of 3, e.g. 15"),
    ({"devices": "cpu:2", "batch_size": 1}, "e.g. 2"),
    ({"devices": "cpu:2", "device": "cuda"}, "device='cuda' and devices='cpu:2' disagree"),
    ({"devices": "0,1", "device": "cpu"}, "device='cpu' and devices='0,1' disagree"),
    ({"devices": "0,1", "device": "2"}, "disagree"),
    ({"devices": "0,1", "device": "0,2"}, "name different GPUs"),
    ({"model": "yolo11n", "devices": "cpu:2"},
     "ultralytics trains in several processes only on CUDA devices, not on 2 CPU processes"),
])
def test_spec_refuses_what_cannot_run(kw, says):
    with pytest.raises(ValueError) as e:
        parse_spec({"model": "resnet18", "dataset": "d", **kw})
    assert says in str(e.value)


def test_capabilities_say_where_each_framework_trains_in_several_processes():
    from core.frameworks import capabilities

    assert capabilities("timm").multi_device == ("cpu", "cuda")
    assert capabilities("huggingface").multi_device == ("cpu", "cuda")
    assert capabilities("ultralytics").multi_device == ("cuda",)


def test_ultralytics_gets_the_gpu_list_and_says_it_runs_its_own_ddp(tmp_path):
    """The argument plumbing: devices=0,1 reaches YOLO.train as device='0,1' (ultralytics' DDP form),
    and the run's note says how vtp follows it."""
    from core.contracts import DatasetInfo, TrainContext
    from trainers.ultralytics import build_args, ddp

    spec = parse_spec({"model": "yolo11n", "dataset": "d", "devices": "0,1", "batch_size": 16})
    ctx = TrainContext(workdir=tmp_path, dataset=DatasetInfo(root=tmp_path, format="yolo", task="detect", classes=["a"]))
    args, _ = build_args(spec, ctx, "data.yaml", str(parse_devices(spec.devices)))
    assert args["device"] == "0,1" and args["batch"] == 16  # ultralytics splits batch over the GPUs itself
    assert "GPUs 0 and 1 with its own DDP processes" in ddp.ddp_note(parse_devices(spec.devices))


def test_ultralytics_on_gpus_that_are_not_here_is_refused_before_training(tmp_path):
    from core.contracts import DatasetInfo, TrainContext
    from core.errors import TrainerError
    from trainers.ultralytics import train

    root = tmp_path / "ds"
    (root / "images" / "train").mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames: [a]\n")
    spec = parse_spec({"model": "yolo11n", "dataset": "d", "devices": "0,1", "pretrained": False})
    ctx = TrainContext(workdir=tmp_path / "w", dataset=DatasetInfo(root=root, format="yolo", task="detect", classes=["a"],
                                                                  data_yaml=root / "data.yaml"))
    with pytest.raises(TrainerError, match="asks for CUDA GPUs but none is visible here"):
        train(spec, ctx)


HEADER = "                  epoch,             time,   train/box_loss,  metrics/mAP50(B), metrics/mAP50-95(B),   lr/pg0\n"


def _row(epoch: int, mapv: float) -> str:
    return f"{epoch:>23},{epoch * 1.5:>17},{1.0 / epoch:>17},{mapv:>18},{mapv / 2:>20},{0.01:>9}\n"


class Seen:
    def __init__(self, stop_after: int | None = None) -> None:
        self.callbacks = Callbacks(heartbeat_every_s=0)
        self.epochs: list[tuple[int, dict]] = []
        self.checkpoints: list[int] = []
        self.beats = 0
        self.callbacks.add("on_epoch_end", lambda epoch, epochs, metrics: self.epochs.append((epoch, metrics)))
        self.callbacks.add("on_checkpoint", lambda epoch, epochs, path: self.checkpoints.append(epoch))
        self.callbacks.add("on_heartbeat", self._beat)
        self.callbacks.add_stop_check(lambda: stop_after is not None and len(self.checkpoints) >= stop_after)

    def _beat(self) -> None:
        self.beats += 1


def test_relay_reports_each_epoch_row_and_its_checkpoint_in_order(tmp_path):
    from trainers.ultralytics.ddp import Relay

    (tmp_path / "weights").mkdir()
    seen, state = Seen(), RunState()
    with Relay(tmp_path, 3, seen.callbacks, state, every_s=0.05) as relay:
        results = tmp_path / "results.csv"
        for epoch, m in ((1, 0.2), (2, 0.6), (3, 0.4)):
            with results.open("a") as f:
                if epoch == 1:
                    f.write(HEADER)
                f.write(_row(epoch, m)[:20])  # half a row: not reported until it is whole
                f.flush()
                time.sleep(0.15)
                f.write(_row(epoch, m)[20:])
            time.sleep(0.15)
            (tmp_path / "weights" / "last.pt").write_bytes(b"x" * epoch)
            time.sleep(0.2)
    assert [e for e, _ in seen.epochs] == [1, 2, 3]
    assert seen.epochs[1][1] == {"train/box_loss": 0.5, "metrics/mAP50(B)": 0.6, "metrics/mAP50-95(B)": 0.3,
                                 "lr/pg0": 0.01}
    assert seen.checkpoints == [1, 2, 3] and seen.beats > 0
    assert state.epochs_completed == 3 and not state.stopped_early
    assert relay.best("metrics/mAP50-95(B)")["metrics/mAP50(B)"] == 0.6  # epoch 2's, as best.pt


def test_relay_stop_waits_for_the_epochs_checkpoint_then_ends_the_ddp_workers(tmp_path):
    """A stop ends the workers (processes started by torch.distributed.run) only once the epoch's
    last.pt is written: never a half-written checkpoint."""
    from trainers.ultralytics.ddp import DDP_LAUNCHER, Relay

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", DDP_LAUNCHER])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / "weights").mkdir()
        seen, state = Seen(stop_after=1), RunState()
        with Relay(tmp_path, 5, seen.callbacks, state, every_s=0.05) as relay:
            (tmp_path / "results.csv").write_text(HEADER + _row(1, 0.3))
            time.sleep(0.4)
            assert worker.poll() is None, "no stop before the epoch's checkpoint is written"
            (tmp_path / "weights" / "last.pt").write_bytes(b"x")
            worker.wait(10)
        assert relay.stop_requested and state.stopped_early and seen.checkpoints == [1]
        assert other.poll() is None, "only ultralytics' DDP workers are ended"
    finally:
        for p in (worker, other):
            p.kill()
            p.wait()
