"""User-supplied ultralytics checkpoints load only with torch.load(weights_only=True), or are refused:
a .pt whose pickle would run code is refused with a message naming what it references, and the
code never runs (checked by a marker file it would have written). Checkpoints saved the way
ultralytics saves them load, for every task vtp trains."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from core.contracts import DatasetInfo, TrainContext
from core.errors import TrainerError
from trainers.ultralytics.checkpoint import UnsafeCheckpoint, allowed, check_checkpoint


class RunsCommand:
    """Unpickling this calls os.system (posix.system in the pickle)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecsCode(torch.nn.Module):
    """An nn.Module from outside torch and ultralytics whose unpickling runs Python code."""

    def __init__(self, marker):
        super().__init__()
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def evil_checkpoints(folder, marker):
    """name -> a .pt file that, opened with weights_only=False, writes ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    made["os.system"] = folder / "system.pt"
    torch.save({"model": RunsCommand(marker), "epoch": 3, "weights": torch.zeros(4)}, made["os.system"])
    made["exec"] = folder / "exec.pt"
    torch.save({"model": ExecsCode(marker), "date": "2025-01-01"}, made["exec"])
    made["legacy"] = folder / "legacy.pt"
    torch.save({"model": RunsCommand(marker)}, made["legacy"], _use_new_zipfile_serialization=False)
    made["plain pickle"] = folder / "plain.pt"
    made["plain pickle"].write_bytes(pickle.dumps({"model": RunsCommand(marker)}))
    return made


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "code in a checkpoint ran"


def test_pickled_code_is_refused_with_what_it_references(tmp_path, marker):
    files = evil_checkpoints(tmp_path / "evil", marker)
    with pytest.raises(UnsafeCheckpoint) as e:
        check_checkpoint(files["os.system"])
    message = str(e.value)
    assert "system.pt contains pickled code objects vtp does not load" in message
    assert "system" in message.split("(", 1)[1] and "weights_only=True" in message and ".save('clean.pt')" in message
    with pytest.raises(UnsafeCheckpoint, match=r"exec\.pt contains pickled code objects .*builtins\.exec"):
        check_checkpoint(files["exec"])
    for name in ("legacy", "plain pickle"):
        with pytest.raises(UnsafeCheckpoint, match="is not a PyTorch checkpoint vtp can read safely"):
            check_checkpoint(files[name])
    assert not marker.exists()


def test_the_allow_list_is_model_classes_and_data(tmp_path):
    assert allowed("ultralytics.nn.tasks.DetectionModel") and allowed("ultralytics.nn.modules.head.Detect")
    assert allowed("torch.nn.modules.conv.Conv2d") and allowed("numpy.core.multiarray.scalar")
    for name in ("posix.system", "os.system", "builtins.exec", "builtins.eval", "subprocess.Popen",
                 "ultralytics.nn.tasks.torch_safe_load",  # a function, not a class
                 "ultralytics.utils.downloads.safe_download", "torch.nn.modules.module.register_module_forward_hook",
                 f"{__name__}.ExecsCode", "torch.nn.modules.conv.Conv2d.__reduce_ex__"):
        assert not allowed(name), name


def test_ultralytics_own_loader_is_restricted_in_vtp(tmp_path, marker):
    """Even a load that skips check_checkpoint (YOLO(path) in a trainer or the API) runs no code."""
    from trainers.ultralytics.env import import_ultralytics

    files = evil_checkpoints(tmp_path / "evil", marker)
    YOLO = import_ultralytics().YOLO
    import ultralytics.nn.tasks as tasks

    assert tasks.SAFE_LOAD is True and os.environ["ULTRALYTICS_SAFE_LOAD"] == "1"
    for path in files.values():
        with pytest.raises(Exception):  # noqa: B017 - ultralytics' TypeError or torch's UnpicklingError
            YOLO(str(path))
    assert not marker.exists()


def _ctx(tmp_path) -> TrainContext:
    data = DatasetInfo(root=tmp_path / "data", format="yolo", task="detect", classes=["a"])
    return TrainContext(workdir=tmp_path / "work", dataset=data, weights_dir=tmp_path / "weights",
                        download_timeout_s=0.1)


def test_a_weights_folder_file_with_code_fails_the_run_before_it_loads(tmp_path, marker):
    from trainers.ultralytics.weights import find_yolo_weights

    files = evil_checkpoints(tmp_path / "evil", marker)
    ctx = _ctx(tmp_path)
    ctx.weights_dir.mkdir()
    files["os.system"].rename(ctx.weights_dir / "yolo11n.pt")
    with pytest.raises(TrainerError, match=r"yolo11n\.pt.* was refused: .*contains pickled code objects"):
        find_yolo_weights("yolo11n", ctx)


def test_the_trainer_refuses_it_too(tmp_path, marker):
    """trainers.ultralytics.train with the evil file as pretrained weights: a clear error, no code run."""
    import trainers.ultralytics as yolo_trainer
    from core.spec import parse_spec
    from tasks.dataset_formats import prepare_local
    from tasks.samples import make_sample

    root = make_sample("shapes-detect", tmp_path / "shapes", n_train=2, n_val=1, image_size=32)
    ctx = _ctx(tmp_path)
    ctx.dataset = prepare_local(root, "detect", tmp_path / "prepared")
    ctx.weights_dir.mkdir()
    evil_checkpoints(tmp_path / "evil", marker)["exec"].rename(ctx.weights_dir / "yolo11n.pt")
    spec = parse_spec({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 1, "image_size": 32, "device": "cpu"})
    with pytest.raises(TrainerError, match="contains pickled code objects"):
        yolo_trainer.train(spec, ctx)


@pytest.mark.parametrize("model", ["yolo11n", "yolo11n-seg", "yolo11n-cls", "yolo11n-pose", "yolo11n-obb", "yolo26n"])
def test_checkpoints_saved_by_ultralytics_load(tmp_path, model):
    """Built from the model's yaml and saved with ultralytics' own Model.save (the layout of its
    released weights: the whole model object in fp16, plus metadata): accepted, and it predicts."""
    import numpy as np

    from trainers.ultralytics.env import import_ultralytics
    from trainers.ultralytics.weights import find_yolo_weights

    YOLO = import_ultralytics().YOLO
    ctx = _ctx(tmp_path)
    ctx.weights_dir.mkdir()
    path = ctx.weights_dir / f"{model}.pt"
    YOLO(f"{model}.yaml").save(str(path))
    assert check_checkpoint(path) == path
    found, note = find_yolo_weights(model, ctx)
    assert found == path and "from" in note
    results = YOLO(str(path)).predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=64, device="cpu", verbose=False)
    assert len(results) == 1


def test_damaged_files_are_refused(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(UnsafeCheckpoint, match="missing or empty"):
        check_checkpoint(empty)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"weights" * 10)
    with pytest.raises(UnsafeCheckpoint, match="is not a PyTorch checkpoint vtp can read safely"):
        check_checkpoint(junk)
    tensors = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, tensors)
    with pytest.raises(UnsafeCheckpoint, match="is not an ultralytics checkpoint: it holds no model"):
        check_checkpoint(tensors)
