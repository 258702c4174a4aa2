"""spec.accumulate in the timm and Hugging Face trainers: one optimizer step per `accumulate` batches
(and one for the epoch's shorter last group), the schedule counted in optimizer steps, the gradient of
k batches of b images equal to that of one batch of k*b, a stop in the middle of a group discarding it.
Tiny models, generated images, CPU."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from core.contracts import Callbacks, DatasetInfo, TrainContext
from core.spec import parse_spec
from tests.unit.test_trainer_common import _image
from trainers.timm import checkpoint as timm_checkpoint
from trainers.timm import loop

CPU = loop.Runtime(torch.device("cpu"), None, False)


def _batches(sizes: list[int], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Loader stand-in: batches of (images 3x4x4, labels of 3 classes), the same for the same seed."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)) for n in sizes]


def _merge(batches: list[tuple[torch.Tensor, torch.Tensor]], groups: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same images as one batch per group of `groups[i]` consecutive batches."""
    out, at = [], 0
    for n in groups:
        part = batches[at:at + n]
        out.append((torch.cat([x for x, _ in part]), torch.cat([y for _, y in part])))
        at += n
    return out


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 3))  # no batch-norm: a batch's gradient is its images' mean


class _Scheduler:
    def __init__(self) -> None:
        self.updates: list[int] = []

    def step_update(self, num_updates: int) -> None:
        self.updates.append(num_updates)


class _StopAfter(Callbacks):
    """Asks to stop once `batches` batches have been trained."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self.batches, self.seen = batches, 0

    def heartbeat(self, force: bool = False) -> None:
        self.seen += 1

    def should_stop(self, force: bool = False) -> bool:
        return self.seen >= self.batches


def _count_steps(optimizer: torch.optim.Optimizer) -> list[int]:
    steps: list[int] = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    return steps


def _timm_epoch(model: nn.Module, batches, accumulate: int, *, lr: float = 0.1, grad_clip: float = 0.0,
                pulse: Callbacks | None = None, updates: int = 0):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    steps, scheduler = _count_steps(optimizer), _Scheduler()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss, num_updates, stopped = loop.train_one_epoch(
        model, batches, optimizer, scheduler, nn.CrossEntropyLoss(), scaler, CPU, pulse or Callbacks(), updates,
        grad_clip, accumulate)
    return SimpleNamespace(loss=loss, updates=num_updates, stopped=stopped, steps=len(steps),
                           scheduler=scheduler.updates, optimizer=optimizer)


# ------------------------------------------------------------------------------------------------ timm


@pytest.mark.parametrize(("accumulate", "steps"), [(1, 7), (3, 3), (7, 1), (10, 1)])
@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_timm_steps_once_per_group_and_at_the_end_of_the_epoch(accumulate, steps, grad_clip, monkeypatch):
    clips: list[int] = []
    clip = nn.utils.clip_grad_norm_
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda *a, **k: clips.append(1) or clip(*a, **k))
    run = _timm_epoch(_linear(), _batches([2] * 7), accumulate, grad_clip=grad_clip, updates=5)
    assert run.steps == steps == math.ceil(7 / accumulate)
    assert run.updates == 5 + steps  # num_updates counts optimizer steps, going on from the epochs before
    assert run.scheduler == list(range(6, 6 + steps))  # the schedule hears of every step, once
    assert len(clips) == (steps if grad_clip else 0)  # clipped once a step, on the summed gradient
    assert not run.stopped


def test_timm_accumulated_batches_give_the_gradient_of_one_big_batch():
    """7 batches of 2 with accumulate=3 == batches of 6, 6 and 2 stepping every batch: the groups average
    their batches, the shorter last group (1 batch) by its own size."""
    small = _batches([2] * 7)
    a, b = _linear(), _linear()
    start = a[1].weight.detach().clone()
    acc = _timm_epoch(a, small, 3)
    big = _timm_epoch(b, _merge(small, [3, 3, 1]), 1)
    assert acc.steps == big.steps == 3
    assert (a[1].weight - start).abs().max() > 1e-3  # the weights moved
    torch.testing.assert_close(a[1].weight, b[1].weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(a[1].bias, b[1].bias, atol=1e-5, rtol=0)
    assert acc.loss == pytest.approx(big.loss, abs=1e-6)  # the reported loss is per image either way


def test_timm_one_step_of_an_accumulated_group_equals_a_batch_k_times_larger():
    small = _batches([4] * 3, seed=1)
    a, b = _linear(), _linear()
    _timm_epoch(a, small, 3, lr=0.5)
    _timm_epoch(b, _merge(small, [3]), 1, lr=0.5)
    torch.testing.assert_close(a[1].weight, b[1].weight, atol=1e-5, rtol=0)


def test_timm_accumulate_1_and_the_default_are_the_plain_loop():
    batches = _batches([2] * 5)
    reference = _linear()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for x, y in batches:  # the loop as it was: one step a batch
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(reference(x), y).backward()
        optimizer.step()
    a, b = _linear(), _linear()
    assert _timm_epoch(a, batches, 1).steps == 5
    optimizer = torch.optim.SGD(b.parameters(), lr=0.1)
    loop.train_one_epoch(b, batches, optimizer, _Scheduler(), nn.CrossEntropyLoss(),
                         torch.amp.GradScaler("cpu", enabled=False), CPU, Callbacks(), 0, 0.0)  # no accumulate
    assert torch.equal(a[1].weight, reference[1].weight) and torch.equal(b[1].weight, reference[1].weight)


def test_timm_a_stop_inside_a_group_discards_it():
    model, reference = _linear(), _linear()
    batches = _batches([2] * 7)
    run = _timm_epoch(model, batches, 3, pulse=_StopAfter(5))  # stop after batch 5: the 2nd group is partial
    assert run.stopped and run.steps == 1 and run.updates == 1
    assert all(p.grad is None for p in model.parameters())  # the partial group's gradients are gone
    _timm_epoch(reference, batches[:3], 3)  # only the first, complete group was stepped on
    torch.testing.assert_close(model[1].weight, reference[1].weight, atol=1e-6, rtol=0)


def test_timm_a_stop_at_the_end_of_a_group_keeps_its_step():
    run = _timm_epoch(_linear(), _batches([2] * 7), 3, pulse=_StopAfter(6))
    assert run.stopped and run.steps == 2


def _imagefolder(root: Path, train: int, val: int = 2) -> Path:
    colours = {"a": (200, 10, 10), "b": (10, 10, 200)}
    for split, n in (("train", train), ("val", val)):
        for c, colour in colours.items():
            for i in range(n):
                _image(root / split / c / f"{i}.png", colour)
    return root


def _ctx(tmp_path: Path, log: list[str]) -> TrainContext:
    callbacks = Callbacks()
    callbacks.add("on_log", lambda message: log.append(message))
    dataset = DatasetInfo(_imagefolder(tmp_path / "data", train=7), "imagefolder", "classify", ["a", "b"])
    return TrainContext(tmp_path / "work", dataset, callbacks)


def test_timm_run_schedules_optimizer_steps_and_says_the_effective_batch(tmp_path):
    """14 train images in batches of 2 = 7 batches; accumulate=3: 3 steps an epoch, the cosine schedule
    (no warm-up at 1 epoch) reaches its end, min_lr, after those 3 steps, not after 7."""
    from trainers.timm import train

    log: list[str] = []
    spec = parse_spec({"framework": "timm", "task": "classify", "model": "test_resnet", "dataset": "d",
                       "epochs": 1, "batch_size": 2, "image_size": 32, "workers": 0, "pretrained": False,
                       "accumulate": 3, "overrides": {"amp": False}})
    result = train(spec, _ctx(tmp_path, log))
    line = "gradient accumulation: 3 batches of 2 = 6 images per optimizer step (3 steps an epoch of 7 batches)"
    assert line in log and line in result.notes
    ckpt = timm_checkpoint.read_checkpoint(result.last_checkpoint)
    assert ckpt["resume"]["updates"] == 3
    assert ckpt["metrics"]["lr"] == pytest.approx(1e-6)  # min_lr: the schedule ran its 3 steps


# ---------------------------------------------------------------------------------------- huggingface


class _HFLinear(nn.Module):
    """A model as the HF trainer calls it: model(pixel_values=, labels=) -> an output with the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _linear()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.cross_entropy(self.net(pixel_values), labels)}


def _hf_train(tmp_path: Path, model: nn.Module, images: int, batch_size: int, accumulate: int,
              pulse: Callbacks | None = None):
    """One epoch of the HF trainer's Trainer (its loader, loss and stop polls; vtp's epoch end left
    out) over ``images`` random images in batches of ``batch_size``, SGD at a constant rate."""
    from trainers.huggingface import data
    from trainers.huggingface.session import Session, _Epochs, _Trainer

    spec = parse_spec({"framework": "huggingface", "task": "classify", "model": str(tmp_path / "vit"),
                       "dataset": "d", "epochs": 1, "batch_size": batch_size, "accumulate": accumulate,
                       "workers": 0, "overrides": {"grad_clip": 0.0}})
    ctx = TrainContext(tmp_path / "work", DatasetInfo(tmp_path, "imagefolder", "classify", ["a", "b", "c"]),
                       pulse or Callbacks())
    session = Session(spec, ctx)
    session.epoch_done = lambda *_: None  # no evaluation or checkpoint: the loop alone
    items = [{"pixel_values": x[0], "labels": int(y[0])} for x, y in _batches([1] * images)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = _count_steps(optimizer)
    args = session._arguments(accumulate, 1)
    trainer = _Trainer(model=model, args=args, train_dataset=items,
                       data_collator=data.collate_classify, callbacks=[_Epochs(session)], session=session,
                       optimizers=(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)))
    try:
        trainer.train()
    finally:
        session.close()
    return SimpleNamespace(steps=len(steps), step=trainer.state.global_step, loss=trainer.loss_sum / max(trainer.loss_count, 1))


@pytest.mark.parametrize(("accumulate", "steps"), [(1, 7), (3, 3), (64, 1)])
def test_hf_steps_once_per_group_and_at_the_end_of_the_epoch(tmp_path, accumulate, steps):
    run = _hf_train(tmp_path, _HFLinear(), 14, 2, accumulate)  # 7 batches of 2
    assert run.steps == steps == run.step  # the Trainer's step counts optimizer steps, not batches


def test_hf_accumulated_batches_give_the_gradient_of_one_big_batch(tmp_path):
    """12 images: 6 batches of 2 with accumulate=3 == 2 batches of 6 (the same shuffled order: one seed)."""
    a, b = _HFLinear(), _HFLinear()
    start = a.net[1].weight.detach().clone()
    acc = _hf_train(tmp_path, a, 12, 2, 3)
    big = _hf_train(tmp_path, b, 12, 6, 1)
    assert acc.steps == big.steps == 2
    assert (a.net[1].weight - start).abs().max() > 1e-3  # the weights moved
    torch.testing.assert_close(a.net[1].weight, b.net[1].weight, atol=1e-5, rtol=0)
    assert acc.loss == pytest.approx(big.loss, abs=1e-5)  # the reported loss is per image either way


def test_hf_a_stop_inside_a_group_discards_it(tmp_path):
    model = _HFLinear()
    run = _hf_train(tmp_path, model, 14, 2, 3, pulse=_StopAfter(4))  # stop after batch 4: the 2nd group is partial
    assert run.steps == 1 and run.step == 1
    assert all(p.grad is None for p in model.parameters())  # the partial group's gradients are gone


def test_hf_run_schedules_optimizer_steps_and_says_the_effective_batch(tmp_path, monkeypatch):
    """A tiny ViT from its config: 7 batches of 2, accumulate=3 -> 3 steps; the cosine schedule spans 3
    steps, so after the last one the rate is min_lr (it would be 3 of 7 steps in, counting batches)."""
    from transformers import ViTConfig

    from trainers.huggingface import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32,
              patch_size=16).save_pretrained(tmp_path / "vit")
    log: list[str] = []
    spec = parse_spec({"framework": "huggingface", "task": "classify", "model": str(tmp_path / "vit"),
                       "dataset": "d", "epochs": 1, "batch_size": 2, "image_size": 32, "workers": 0,
                       "pretrained": False, "accumulate": 3, "learning_rate": 1e-3})
    result = train(spec, _ctx(tmp_path, log))
    line = "gradient accumulation: 3 batches of 2 = 6 images per optimizer step (3 steps an epoch of 7 batches)"
    assert line in log and line in result.notes
    state = torch.load(tmp_path / "work" / "train" / "weights" / "resume.pt", weights_only=True)
    assert state["step"] == 3
    assert state["history"][0]["lr"] == pytest.approx(1e-6)  # min_lr: the schedule ran its 3 steps


def test_hf_a_loss_that_is_not_finite_says_what_to_do(tmp_path):
    from core.errors import TrainerError

    class Diverged(_HFLinear):
        def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": super().forward(pixel_values, labels)["loss"] * float("nan")}

    with pytest.raises(TrainerError, match=r"the training loss became nan at step 0: lower learning_rate"):
        _hf_train(tmp_path, Diverged(), 4, 2, 1)
