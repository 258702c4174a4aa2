"""One Hugging Face training run: a plain PyTorch loop (transformers' Trainer needs ``accelerate``,
which vtp does not install, and a loop of our own gives the callbacks every batch), AdamW with a
warmed-up cosine schedule, evaluation each epoch, ``save_pretrained`` best/ and last/ folders."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.contracts import TrainContext, TrainResult
from core.dataset_layout import list_images
from core.errors import ResumeCheckpointError, TrainerError
from trainers import loader_workers
from trainers.common import (
    EpochTracker,
    accumulation_note,
    copy_folder_atomic,
    image_folder,
    options_from_overrides,
    replace_folder,
    report,
    resolve_device,
    save_torch_atomic,
    write_text_atomic,
)
from trainers.common.images import bit_depth_scale, describe_scale
from trainers.huggingface import data
from trainers.huggingface.metrics import mean_average_precision
from trainers.huggingface.model import build, build_from_checkpoint

if TYPE_CHECKING:
    from core.spec import TrainSpec

RUN_NAME = "train"


@dataclass
class Options:
    allow_random_init: bool = False
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    hflip: float = 0.5
    color_jitter: float = 0.0
    grad_clip: float = 0.1
    min_lr: float = 1e-6
    backbone_lr_scale: float = 0.1  # detection: the backbone learns slower, as in DETR
    score_threshold: float = 0.0  # detection: lowest score kept for mAP (0 keeps every query)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> Options:
        return options_from_overrides(cls, overrides, "huggingface")


class Session:
    def __init__(self, spec: TrainSpec, ctx: TrainContext) -> None:
        self.spec, self.ctx = spec, ctx
        self.opts = Options.from_overrides(dict(spec.overrides))
        self.detect = spec.task == "detect"
        self.run_dir = ctx.workdir / RUN_NAME
        self.weights_dir = self.run_dir / "weights"
        self.notes: list[str] = []
        self.loaders: list[Any] = []  # their worker processes stop in close()

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.ctx.callbacks.log(message)

    def close(self) -> None:
        """Stop the data loaders' worker processes (train() calls it however the run ends)."""
        loader_workers.shut_down(self.loaders)

    def _datasets(self, processor: Any) -> tuple[list[str], Any, Any]:
        o = self.opts
        if self.detect:
            if self.ctx.dataset.data_yaml is None:
                raise TrainerError("detection needs a YOLO-format dataset (data.yaml with images/ and labels/)")
            classes, splits = data.yolo_splits(Path(self.ctx.dataset.root), Path(self.ctx.dataset.data_yaml))
            scale = self._pixel_scale([*splits["train"], *splits["val"]])
            return (classes, data.DetectDataset(splits["train"], processor, True, o.hflip, o.color_jitter,
                                                pixel_scale=scale),
                    data.DetectDataset(splits["val"], processor, False, pixel_scale=scale))
        classes, train, val = image_folder(Path(self.ctx.dataset.root))
        scale = self._pixel_scale(p for d in (train, val) for c in classes for p in list_images(d / c))
        return (classes, data.ClassifyDataset(train, classes, processor, True, o.hflip, o.color_jitter, pixel_scale=scale),
                data.ClassifyDataset(val, classes, processor, False, pixel_scale=scale))

    def _pixel_scale(self, paths: Any) -> float | None:
        """One scale for every image of the dataset (16-bit data), said in the run's notes."""
        scale = self.pixel_scale = bit_depth_scale(paths)
        if describe_scale(scale):
            self.note(describe_scale(scale))
        return scale

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        lr = self.spec.learning_rate or (1e-4 if self.detect else 5e-4)
        backbone = [p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad]
        rest = [p for n, p in model.named_parameters() if "backbone" not in n and p.requires_grad]
        groups = [{"params": rest, "lr": lr}]
        if backbone:
            groups.append({"params": backbone, "lr": lr * (self.opts.backbone_lr_scale if self.detect else 1.0)})
        return torch.optim.AdamW(groups, lr=lr, weight_decay=self.opts.weight_decay)

    def run(self) -> TrainResult:
        spec, ctx = self.spec, self.ctx
        probe_classes = list(ctx.dataset.classes)
        if ctx.resume_from:
            try:
                built = build_from_checkpoint(Path(ctx.resume_from) / "last", str(spec.task), probe_classes,
                                              int(spec.image_size or 224),
                                              "resuming from the run's last uploaded checkpoint.")
            except TrainerError as e:
                raise ResumeCheckpointError(f"the run's resume checkpoint could not be loaded ({e})") from e
        elif ctx.init_from:
            built = build_from_checkpoint(Path(ctx.init_from), str(spec.task), probe_classes,
                                          int(spec.image_size or 224),
                                          "starting from the final weights of the run being continued.")
        else:
            built = build(spec, ctx, probe_classes)
        self.note(built.note)
        model, processor = built.model, built.processor
        classes, train_ds, val_ds = self._datasets(processor)
        if classes != probe_classes:
            raise TrainerError(f"dataset classes {classes} differ from the prepared dataset's {probe_classes}")
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise TrainerError(f"the dataset needs train and val images (found {len(train_ds)} / {len(val_ds)})")
        device, device_note = resolve_device(spec.device)
        if device_note:
            self.note(device_note)
        model.to(device)
        train_dl = data.loader(train_ds, spec.batch_size, spec.workers, True, spec.seed, self.detect)
        val_dl = data.loader(val_ds, spec.batch_size, spec.workers, False, spec.seed, self.detect)
        self.loaders += [train_dl, val_dl]
        optimizer = self._optimizer(model)
        accumulate = spec.accumulate or 1  # batches an optimizer step; the last group of an epoch may be shorter
        steps_per_epoch, accumulation = accumulation_note(accumulate, spec.batch_size, len(train_dl))
        steps = spec.epochs * steps_per_epoch
        warmup = min(self.opts.warmup_epochs, spec.epochs - 1) * steps_per_epoch
        base = [g["lr"] for g in optimizer.param_groups]

        def set_lr(step: int) -> None:
            for g, lr in zip(optimizer.param_groups, base, strict=True):
                g["lr"] = _lr(lr, step, warmup, steps, self.opts.min_lr)

        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / "args.json", json.dumps(
            {"spec": spec.model_dump(mode="json"), "options": asdict(self.opts), "classes": classes,
             "device": str(device)}, indent=2))
        ctx.callbacks.log(
            f"huggingface {spec.model}: {type(model).__name__}, {len(classes)} classes, {len(train_ds)} train / "
            f"{len(val_ds)} val images at {spec.image_size}px on {device}")
        if accumulate > 1:
            self.note(accumulation)

        epochs = EpochTracker(spec.main_metric, spec.patience, spec.epochs)
        step, stopped_early = 0, False
        last_dir, best_dir = self.weights_dir / "last", self.weights_dir / "best"
        start, best_eval = 1, None
        if ctx.resume_from:
            start, step, history, best_epoch = self._resume(optimizer, Path(ctx.resume_from))
            epochs.restore(history, best_epoch)
        for epoch in range(start, spec.epochs + 1):
            train_loss, step, stop = self.train_epoch(model, train_dl, optimizer, device, step, set_lr, accumulate)
            evaluation = self.evaluate(model, processor, val_dl, val_ds, device, classes)
            metrics = {"train/loss": train_loss, **evaluation["metrics"],
                       "lr": float(optimizer.param_groups[0]["lr"])}
            improved = epochs.record(epoch, metrics)
            self._save(model, processor, last_dir, classes, epoch, metrics)
            if improved:
                best_eval = evaluation
                copy_folder_atomic(last_dir, best_dir)
            self._save_state(optimizer, epoch, step, epochs.history, epochs.best_epoch)
            ctx.callbacks.checkpoint(epoch, spec.epochs, self.weights_dir)
            report.write_results_csv(self.run_dir / "results.csv", epochs.history)
            ctx.callbacks.epoch_end(epoch, spec.epochs, metrics)
            ctx.callbacks.heartbeat(force=True)
            if stop or ctx.callbacks.should_stop(force=True):
                stopped_early = True
                self.note(f"stopped on request after epoch {epoch} of {spec.epochs}.")
                break
            if epochs.stop_early(epoch):
                stopped_early = True
                self.note(epochs.early_stop_note(epoch))
                break
        if best_eval is None:  # resumed after the best epoch: its predictions are gone, take the best weights'
            model = build_from_checkpoint(best_dir, str(spec.task), classes, int(spec.image_size or 224), "").model
            best_eval = self.evaluate(model.to(device), processor, val_dl, val_ds, device, classes)
        artifacts = [self.run_dir / "results.csv", self.run_dir / "args.json"]
        artifacts += report.evaluation_report(self.run_dir, spec.task or "classify", classes, best_eval["report"],
                                              epochs.history)
        return TrainResult(
            metrics=epochs.best_metrics(),
            best_checkpoint=best_dir, last_checkpoint=last_dir, artifacts=[p for p in artifacts if p.is_file()],
            epochs_completed=len(epochs.history), pretrained_used=built.pretrained_used, notes=self.notes,
            stopped_early=stopped_early,
        )

    def train_epoch(self, model: Any, dl: Any, optimizer: torch.optim.Optimizer, device: torch.device, step: int,
                    set_lr: Callable[[int], None], accumulate: int = 1) -> tuple[float, int, bool]:
        """One pass over ``dl``; returns (mean train loss, optimizer steps so far, stop requested).

        ``step`` counts optimizer steps, not batches; ``set_lr(step)`` sets the learning rate of the next
        one. ``accumulate`` is the number of batches whose gradients are summed before each optimizer
        step (1, the default, steps every batch): each batch's loss is divided by the number of batches
        in its group, so a step follows the mean of its batches' gradients; the epoch's last group may be
        shorter (divided by its own size) and is stepped at the end of the epoch. A stop is polled
        between batches."""
        model.train()
        batches = len(dl)
        total, seen, stop, pending = 0.0, 0, False, False
        for i, batch in enumerate(dl):
            first = i - i % accumulate  # index of the first batch of this batch's group
            group = min(accumulate, batches - first)  # batches in the group: the epoch's last may be shorter
            set_lr(step)
            out = model(**self._inputs(batch, device))
            if i == first:
                optimizer.zero_grad(set_to_none=True)
            (out.loss / group if group > 1 else out.loss).backward()
            pending = i + 1 < first + group
            if not pending:  # the group is complete: one optimizer step for all its batches
                if self.opts.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.opts.grad_clip)
                optimizer.step()
                step += 1
            n = len(batch["pixel_values"])
            total, seen = total + out.loss.item() * n, seen + n
            self.ctx.callbacks.heartbeat()
            if self.ctx.callbacks.should_stop():
                stop = True
                break
        if stop and pending:
            # a stop in the middle of a group: its gradients are discarded, not stepped on (a step on part
            # of a group would be a smaller, differently scaled batch than every other step of the run)
            optimizer.zero_grad(set_to_none=True)
        return total / max(seen, 1), step, stop

    def _save_state(self, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                    history: list[dict[str, float]], best_epoch: int) -> None:
        """What a retried run needs besides the weights: optimizer state, step, history (weights_only-safe)."""
        state = {"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step, "history": history,
                 "best_epoch": best_epoch}
        save_torch_atomic(state, self.weights_dir / "resume.pt")

    def _resume(self, optimizer: torch.optim.Optimizer, folder: Path) -> tuple[int, int, list[dict[str, float]], int]:
        try:
            state = torch.load(folder / "resume.pt", map_location="cpu", weights_only=True)
            optimizer.load_state_dict(state["optimizer"])
        except Exception as e:  # noqa: BLE001 - any unreadable or unfitting state: the flow falls back
            raise ResumeCheckpointError(f"the run's resume state {folder.name}/resume.pt could not be loaded ({e})") from e
        for name in ("last", "best"):
            if (folder / name).is_dir():
                copy_folder_atomic(folder / name, self.weights_dir / name)
        self.note(f"resumed after epoch {state['epoch']} of {self.spec.epochs} (weights, optimizer, step and "
                  "history restored).")
        return int(state["epoch"]) + 1, int(state["step"]), [dict(h) for h in state["history"]], int(state["best_epoch"])

    def _inputs(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        pixels = batch["pixel_values"].to(device)
        if self.detect:
            return {"pixel_values": pixels, "labels": [{k: v.to(device) for k, v in t.items()} for t in batch["labels"]]}
        return {"pixel_values": pixels, "labels": batch["labels"].to(device)}

    @torch.no_grad()
    def evaluate(self, model: Any, processor: Any, dl: Any, ds: Any, device: torch.device,
                 classes: list[str]) -> dict[str, Any]:
        """Metrics of one pass over val, plus what the evaluation report needs (predictions)."""
        model.eval()
        total, seen = 0.0, 0
        y_true: list[int] = []
        y_pred: list[int] = []
        top5 = 0
        preds: list[dict[str, np.ndarray]] = []
        gts: list[dict[str, np.ndarray]] = []
        for batch in dl:
            out = model(**self._inputs(batch, device))
            n = len(batch["pixel_values"])
            total, seen = total + out.loss.item() * n, seen + n
            self.ctx.callbacks.heartbeat()
            if self.detect:
                sizes = []
                for i in batch["index"]:
                    img, boxes = ds.target(i)
                    sizes.append((img.height, img.width))
                    gts.append({"boxes": np.array([[x, y, x + w, y + h] for _, (x, y, w, h) in boxes]).reshape(-1, 4),
                                "labels": np.array([c for c, _ in boxes], int)})
                post = processor.post_process_object_detection(out, threshold=self.opts.score_threshold,
                                                               target_sizes=sizes)
                preds += [{k: r[k].cpu().numpy() for k in ("boxes", "scores", "labels")} for r in post]
            else:
                logits = out.logits.float()
                labels = batch["labels"]
                k = min(5, logits.shape[1])
                top = logits.topk(k, dim=1).indices.cpu()
                top5 += int((top == labels[:, None]).any(1).sum())
                y_true += labels.tolist()
                y_pred += top[:, 0].tolist()
        metrics = {"val/loss": total / max(seen, 1)}
        if self.detect:
            m = mean_average_precision(preds, gts, len(classes))
            metrics |= {"metrics/mAP50(B)": float(m["mAP50"]), "metrics/mAP50-95(B)": float(m["mAP50-95"])}
            rep: dict[str, Any] = {"map": m, "preds": preds, "gts": gts, "images": [str(p) for p in ds.images]}
        else:
            acc = float(np.mean(np.array(y_true) == np.array(y_pred))) if y_true else 0.0
            metrics |= {"metrics/accuracy_top1": acc, "metrics/accuracy_top5": top5 / max(len(y_true), 1)}
            rep = {"y_true": y_true, "y_pred": y_pred, "images": [str(p) for p, _ in ds.items]}
        return {"metrics": metrics, "report": rep}

    def _save(self, model: Any, processor: Any, folder: Path, classes: list[str], epoch: int,
              metrics: dict[str, float]) -> None:
        """save_pretrained into a temporary folder, then swap it in: a reader never sees half of it."""
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_text_atomic(tmp / "vtp.json", json.dumps({"task": self.spec.task, "classes": classes, "epoch": epoch,
                                                        "metrics": metrics, "spec": self.spec.model_dump(mode="json"),
                                                        "pixel_scale": getattr(self, "pixel_scale", None)}))
        replace_folder(tmp, folder)


def _lr(base: float, step: int, warmup: int, total: int, min_lr: float) -> float:
    if step < warmup:
        return base * (0.01 + 0.99 * step / max(warmup, 1))
    progress = (step - warmup) / max(total - warmup, 1)
    return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
