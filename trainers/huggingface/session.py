"""One Hugging Face training run on transformers' ``Trainer``: AdamW (the backbone's own learning
rate for detection) with transformers' warmed-up cosine schedule down to ``min_lr``, gradient
accumulation, max-norm clipping, bf16/fp16 mixed precision on CUDA, and DDP in several processes
(``spec.devices``, started by :mod:`trainers.common.distributed`). vtp keeps its own parts of the
run in a ``TrainerCallback`` (:class:`_Epochs`): heartbeats and stop polls every batch, and at each
epoch's end its own evaluation (accuracy, or COCO mAP by :mod:`trainers.huggingface.metrics`), the
``save_pretrained`` best/ and last/ folders, ``resume.pt``, ``results.csv``, the callbacks' epoch
and checkpoint events and early stopping. The Trainer saves, evaluates and reports nothing itself.

Several processes: each epoch's batches are shared out (``spec.batch_size`` is the whole step's
batch, ``batch_size // processes`` each), every process evaluates its share of the val split and
all of them get the merged metrics (the same decisions everywhere); rank 0 alone writes files."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from core.contracts import TrainContext, TrainResult
from core.dataset_layout import list_images
from core.errors import ResumeCheckpointError, TrainerError
from trainers import loader_workers
from trainers.common import (
    EpochTracker,
    accumulation_note,
    copy_folder_atomic,
    distributed,
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
    amp: bool = True  # CUDA only: bf16 where the GPU has it, else fp16

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> Options:
        return options_from_overrides(cls, overrides, "huggingface")


class _Arguments(TrainingArguments):
    """TrainingArguments for one device a process. Trainer's own choice in one process is ``cuda:0``
    with ``nn.DataParallel`` over every visible GPU; vtp trains on the spec's one GPU
    (``vtp_device``), and on several only as DDP, one process each."""

    vtp_device: torch.device | None = None  # not a dataclass field: set after construction

    @property
    def device(self) -> torch.device:
        device = super().device
        if self.vtp_device is not None and device.type == "cuda":
            torch.cuda.set_device(self.vtp_device)  # accelerate places the model on the current GPU
            return self.vtp_device
        return device

    @property
    def n_gpu(self) -> int:
        return min(super().n_gpu, 1)


class _Trainer(Trainer):
    """transformers' Trainer with vtp's data loader (its workers' exit hooks and shut-down, see
    :mod:`trainers.loader_workers`), a plain batch-mean loss (as the model computes it; the Trainer
    divides it by the batches of each accumulation group), the epoch's train loss kept for vtp's
    metrics, and a TrainerError for a loss that is not finite."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, session: Session, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self.model_accepts_loss_kwargs = False  # no num_items_in_batch: the model's own mean loss
        self._train_loader: Any = None
        self.loss_sum, self.loss_count = 0.0, 0

    def get_train_dataloader(self) -> Any:
        if self._train_loader is None:
            s = self.session
            loader = data.loader(self.train_dataset, self._train_batch_size, self.args.dataloader_num_workers, True,
                                 s.spec.seed, s.detect)
            self._train_loader = self.accelerator.prepare(loader)  # sharded per process with several
            s.loaders.append(self._train_loader)
        return self._train_loader

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "index"}  # detection: the dataset index of each image
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            loss = out[0] if return_outputs else out
            value = float(loss.detach().float().item())
            if not math.isfinite(value):
                raise TrainerError(
                    f"the training loss became {value} at step {self.session.step0 + self.state.global_step}: lower "
                    "learning_rate (or set overrides.grad_clip, e.g. 1.0)")
            n = len(inputs["pixel_values"])
            self.loss_sum, self.loss_count = self.loss_sum + value * n, self.loss_count + n
        return out

    def epoch_train_loss(self) -> float:
        """The epoch's mean train loss over every process's images; starts the next epoch's count."""
        total = torch.tensor([self.loss_sum, float(self.loss_count)], dtype=torch.float64, device=self.args.device)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.reduce(total, "sum")
        self.loss_sum, self.loss_count = 0.0, 0
        return float(total[0] / max(float(total[1]), 1.0))


class _Epochs(TrainerCallback):
    """vtp's side of the Trainer's loop (see the module doc). Every process runs the same calls in
    the same order: stop polls and the val merge are collectives in several processes."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.stop_requested = False

    def _batch(self, control: Any) -> None:
        cb = self.s.ctx.callbacks
        cb.heartbeat()
        if cb.should_stop():
            self.stop_requested = True
            control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._batch(control)

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._batch(control)  # a batch inside an accumulation group

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        s = self.s
        if self.stop_requested:
            # a stop in the middle of an accumulation group: its gradients are discarded, not stepped on
            model.zero_grad(set_to_none=True)
        s.epoch_done(model, state.global_step, self.stop_requested, control)


class Session:
    def __init__(self, spec: TrainSpec, ctx: TrainContext) -> None:
        self.spec, self.ctx = spec, ctx
        self.opts = Options.from_overrides(dict(spec.overrides))
        self.detect = spec.task == "detect"
        self.run_dir = ctx.workdir / RUN_NAME
        self.weights_dir = self.run_dir / "weights"
        self.notes: list[str] = []
        self.loaders: list[Any] = []  # their worker processes stop in close()
        self.rank = distributed.current()  # several processes (spec.devices): this one's place
        self.is_main = self.rank is None or self.rank.is_main
        self.world = self.rank.world if self.rank is not None else 1
        self.step0 = 0  # optimizer steps before this attempt (resumed)
        self.scratch: Path | None = None  # the Trainer's output_dir, where it writes nothing of the run's

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.ctx.callbacks.log(message)

    def close(self) -> None:
        """Stop the data loaders' worker processes (train() calls it however the run ends)."""
        loader_workers.shut_down(self.loaders)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

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

    def _lr(self) -> float:
        return self.spec.learning_rate or (1e-4 if self.detect else 5e-4)

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        lr = self._lr()
        backbone = [p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad]
        rest = [p for n, p in model.named_parameters() if "backbone" not in n and p.requires_grad]
        groups = [{"params": rest, "lr": lr}]
        if backbone:
            groups.append({"params": backbone, "lr": lr * (self.opts.backbone_lr_scale if self.detect else 1.0)})
        return torch.optim.AdamW(groups, lr=lr, weight_decay=self.opts.weight_decay)

    def _scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        """transformers' cosine schedule with warm-up down to ``min_lr`` (a share of each group's rate)
        over the whole run's optimizer steps, positioned after the ``step0`` steps of earlier attempts."""
        from torch.optim.lr_scheduler import LambdaLR
        from transformers import get_scheduler

        epochs = self.spec.epochs
        warmup = min(self.opts.warmup_epochs, epochs - 1) * steps_per_epoch
        full = get_scheduler("cosine_with_min_lr", optimizer, num_warmup_steps=warmup,
                             num_training_steps=epochs * steps_per_epoch,
                             scheduler_specific_kwargs={"min_lr_rate": min(self.opts.min_lr / self._lr(), 1.0)})
        if not self.step0:
            return full
        factor, offset = full.lr_lambdas[0], self.step0
        return LambdaLR(optimizer, lambda step: factor(step + offset))

    def _arguments(self, accumulate: int, epochs: int) -> TrainingArguments:
        """The Trainer's arguments; in several processes constructing them sets up DDP (accelerate's
        state from the environment :mod:`trainers.common.distributed` gave this process)."""
        spec, opts = self.spec, self.opts
        if self.rank is None:
            device, device_note = resolve_device(spec.device)
            if device_note:
                self.note(device_note)
            kind = device.type
        else:
            device, kind = None, self.rank.devices.kind
        amp = kind == "cuda" and opts.amp
        bf16 = amp and torch.cuda.is_bf16_supported()
        self.scratch = Path(tempfile.mkdtemp(prefix="vtp-hf-trainer-"))
        args = _Arguments(
            output_dir=str(self.scratch),  # the Trainer makes the folder; save_strategy="no" writes nothing in it
            per_device_train_batch_size=spec.batch_size // self.world,
            gradient_accumulation_steps=accumulate,
            num_train_epochs=epochs,
            learning_rate=self._lr(),
            weight_decay=opts.weight_decay,
            max_grad_norm=opts.grad_clip,
            lr_scheduler_type="cosine_with_min_lr",  # the schedule itself comes from _scheduler
            bf16=bf16, fp16=amp and not bf16,
            use_cpu=kind == "cpu",
            seed=spec.seed,
            dataloader_num_workers=spec.workers,
            remove_unused_columns=False,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[],
            disable_tqdm=True,
        )
        if device is not None and device.type == "cuda":
            args.vtp_device = device
        world = args.world_size
        if world != self.world:
            raise TrainerError(f"the Trainer set up {world} processes, not the {self.world} of "
                               f"devices={spec.devices!r} ({args.parallel_mode})")
        if self.rank is not None:
            self.note(f"trained with DDP in {world} processes ({self.rank.devices.describe()}, "
                      f"{args.distributed_state.backend}): each epoch's batches are shared out, metrics cover the "
                      "whole val split.")
        return args

    def _build(self) -> Any:
        spec, ctx = self.spec, self.ctx
        probe_classes = list(ctx.dataset.classes)
        if ctx.resume_from:
            try:
                return build_from_checkpoint(Path(ctx.resume_from) / "last", str(spec.task), probe_classes,
                                             int(spec.image_size or 224),
                                             "resuming from the run's last uploaded checkpoint.")
            except TrainerError as e:
                raise ResumeCheckpointError(f"the run's resume checkpoint could not be loaded ({e})") from e
        if ctx.init_from:
            return build_from_checkpoint(Path(ctx.init_from), str(spec.task), probe_classes,
                                         int(spec.image_size or 224),
                                         "starting from the final weights of the run being continued.")
        return build(spec, ctx, probe_classes)

    def run(self) -> TrainResult:
        from transformers import PrinterCallback

        spec, ctx = self.spec, self.ctx
        built = self._build()
        self.note(built.note)
        model, processor = built.model, built.processor
        classes, train_ds, val_ds = self._datasets(processor)
        if classes != list(ctx.dataset.classes):
            raise TrainerError(f"dataset classes {classes} differ from the prepared dataset's {list(ctx.dataset.classes)}")
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise TrainerError(f"the dataset needs train and val images (found {len(train_ds)} / {len(val_ds)})")
        self.classes, self.processor, self.val_ds = classes, processor, val_ds
        accumulate = spec.accumulate or 1  # batches an optimizer step; the last group of an epoch may be shorter
        self.epochs = EpochTracker(spec.main_metric, spec.patience, spec.epochs)
        self.last_dir, self.best_dir = self.weights_dir / "last", self.weights_dir / "best"
        self.best_eval: dict[str, Any] | None = None
        self.stopped_early = False
        start = 1
        resume_state = None
        if ctx.resume_from:
            resume_state = self._read_resume(Path(ctx.resume_from))
            start, self.step0 = int(resume_state["epoch"]) + 1, int(resume_state["step"])
            self.epochs.restore([dict(h) for h in resume_state["history"]], int(resume_state["best_epoch"]))
        self.epoch = start - 1  # the last epoch trained
        args = self._arguments(accumulate, max(spec.epochs - start + 1, 1))
        self.device = device = args.device
        model.to(device)
        self.optimizer = optimizer = self._optimizer(model)
        if resume_state is not None:
            self._resume(optimizer, resume_state, Path(ctx.resume_from))
        self.val_dl, self.val_indices = self._val_loader(sharded=True)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "args.json", json.dumps(
                {"spec": spec.model_dump(mode="json"), "options": asdict(self.opts), "classes": classes,
                 "device": str(device) if self.rank is None else spec.devices,
                 "mixed_precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "no"}, indent=2))
        where = str(device) if self.rank is None else self.rank.devices.describe()
        ctx.callbacks.log(
            f"huggingface {spec.model}: {type(model).__name__}, {len(classes)} classes, {len(train_ds)} train / "
            f"{len(val_ds)} val images at {spec.image_size}px on {where}")
        self.trainer = trainer = _Trainer(
            model=model, args=args, train_dataset=train_ds,
            data_collator=data.collate_detect if self.detect else data.collate_classify,
            optimizers=(optimizer, None), callbacks=[_Epochs(self)], session=self)
        trainer.remove_callback(PrinterCallback)  # vtp logs through its callbacks
        steps_per_epoch, accumulation = accumulation_note(accumulate, spec.batch_size,
                                                          len(trainer.get_train_dataloader()))
        trainer.lr_scheduler = self._scheduler(optimizer, steps_per_epoch)
        args.warmup_steps = min(self.opts.warmup_epochs, spec.epochs - 1) * steps_per_epoch  # as said in args
        if accumulate > 1:
            self.note(accumulation)
        if start <= spec.epochs:
            trainer.train()
        return self._result(built.pretrained_used)

    # ---------------------------------------------------------------------------- each epoch

    def epoch_done(self, model: Any, global_step: int, stop: bool, control: Any) -> None:
        """An epoch's end (:class:`_Epochs`): evaluate, record, save, report; stop when asked or early."""
        spec, ctx = self.spec, self.ctx
        self.epoch += 1
        epoch = self.epoch
        train_loss = self.trainer.epoch_train_loss()
        evaluation = self.evaluate(model, self.val_dl, self.val_indices)
        metrics = {"train/loss": train_loss, **evaluation["metrics"],
                   "lr": float(self.optimizer.param_groups[0]["lr"])}
        improved = self.epochs.record(epoch, metrics)
        if improved:
            self.best_eval = evaluation
        if self.is_main:  # one writer of the run's files
            self._save(model, self.processor, self.last_dir, self.classes, epoch, metrics)
            if improved:
                copy_folder_atomic(self.last_dir, self.best_dir)
            self._save_state(self.optimizer, epoch, self.step0 + global_step, self.epochs.history,
                             self.epochs.best_epoch)
            ctx.callbacks.checkpoint(epoch, spec.epochs, self.weights_dir)
            report.write_results_csv(self.run_dir / "results.csv", self.epochs.history)
        ctx.callbacks.epoch_end(epoch, spec.epochs, metrics)
        ctx.callbacks.heartbeat(force=True)
        if stop or ctx.callbacks.should_stop(force=True):  # every process: a collective in several
            self.stopped_early = control.should_training_stop = True
            self.note(f"stopped on request after epoch {epoch} of {spec.epochs}.")
        elif self.epochs.stop_early(epoch):
            self.stopped_early = control.should_training_stop = True
            self.note(self.epochs.early_stop_note(epoch))

    def _result(self, pretrained_used: bool) -> TrainResult:
        spec = self.spec
        if not self.is_main:  # rank 0 reports; the caller takes its result
            return TrainResult(metrics=self.epochs.best_metrics(), best_checkpoint=self.best_dir,
                               last_checkpoint=self.last_dir)
        best_eval = self.best_eval
        if best_eval is None:  # resumed after the best epoch: its predictions are gone, take the best weights'
            model = build_from_checkpoint(self.best_dir, str(spec.task), self.classes, int(spec.image_size or 224),
                                          "").model
            dl, indices = self._val_loader(sharded=False)
            best_eval = self.evaluate(model.to(self.device), dl, indices, merge=False)
        artifacts = [self.run_dir / "results.csv", self.run_dir / "args.json"]
        artifacts += report.evaluation_report(self.run_dir, spec.task or "classify", self.classes, best_eval["report"],
                                              self.epochs.history)
        return TrainResult(
            metrics=self.epochs.best_metrics(),
            best_checkpoint=self.best_dir, last_checkpoint=self.last_dir,
            artifacts=[p for p in artifacts if p.is_file()],
            epochs_completed=len(self.epochs.history), pretrained_used=pretrained_used, notes=self.notes,
            stopped_early=self.stopped_early,
        )

    # ---------------------------------------------------------------------------- resume

    def _save_state(self, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                    history: list[dict[str, float]], best_epoch: int) -> None:
        """What a retried run needs besides the weights: optimizer state, step, history (weights_only-safe)."""
        state = {"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step, "history": history,
                 "best_epoch": best_epoch}
        save_torch_atomic(state, self.weights_dir / "resume.pt")

    def _read_resume(self, folder: Path) -> dict[str, Any]:
        try:
            return torch.load(folder / "resume.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable state: the flow falls back
            raise ResumeCheckpointError(f"the run's resume state {folder.name}/resume.pt could not be loaded ({e})") from e

    def _resume(self, optimizer: torch.optim.Optimizer, state: dict[str, Any], folder: Path) -> None:
        """Restore the optimizer (the model's weights came from ``folder/last``) and this run's folders."""
        try:
            optimizer.load_state_dict(state["optimizer"])
        except Exception as e:  # noqa: BLE001 - any unfitting state: the flow falls back
            raise ResumeCheckpointError(f"the run's resume state {folder.name}/resume.pt could not be loaded ({e})") from e
        if self.is_main:
            for name in ("last", "best"):
                if (folder / name).is_dir():
                    copy_folder_atomic(folder / name, self.weights_dir / name)
        self.note(f"resumed after epoch {state['epoch']} of {self.spec.epochs} (weights, optimizer, step and "
                  "history restored).")

    # ---------------------------------------------------------------------------- evaluation

    def _val_loader(self, sharded: bool) -> tuple[Any, list[int]]:
        """(a loader over this process's share of val, the val indices it yields in order): every
        ``world``-th image from this rank's when ``sharded`` in several processes, else all of them."""
        ds = self.val_ds
        indices = list(range(len(ds)))
        batch = self.spec.batch_size
        if sharded and self.world > 1:
            indices, batch = indices[self.rank.rank::self.world], max(1, batch // self.world)
            ds = torch.utils.data.Subset(ds, indices)
        dl = data.loader(ds, batch, self.spec.workers, False, self.spec.seed, self.detect)
        self.loaders.append(dl)
        return dl, indices

    def _inputs(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        pixels = batch["pixel_values"].to(device)
        if self.detect:
            return {"pixel_values": pixels, "labels": [{k: v.to(device) for k, v in t.items()} for t in batch["labels"]]}
        return {"pixel_values": pixels, "labels": batch["labels"].to(device)}

    @torch.no_grad()
    def evaluate(self, model: Any, dl: Any, indices: list[int], merge: bool = True) -> dict[str, Any]:
        """Metrics of one pass over val, plus what the evaluation report needs (predictions).

        ``dl`` yields the val images ``indices`` in order. In several processes (``merge``) each
        evaluates its share and every one gets the records of all (merged by index, so in the
        val split's order): the same metrics in each process, those of the whole split."""
        model.eval()
        if merge and self.world > 1:
            import torch.distributed as dist

            for buffer in model.buffers():  # e.g. batch-norm statistics: rank 0's, as in the saved weights
                dist.broadcast(buffer, 0)
        ds, device, pulse = self.val_ds, self.device, self.ctx.callbacks
        loss_sum, seen = 0.0, 0
        records: list[tuple[int, Any]] = []  # (val index, classify: (label, top-1, in top-5); detect: (pred, gt))
        at = iter(indices)
        for batch in dl:
            out = model(**self._inputs(batch, device))
            n = len(batch["pixel_values"])
            loss_sum, seen = loss_sum + float(out.loss.float().item()) * n, seen + n
            pulse.heartbeat()
            index = [next(at) for _ in range(n)]
            if self.detect:
                sizes, gts = [], []
                for i in index:
                    img, boxes = ds.target(i)
                    sizes.append((img.height, img.width))
                    gts.append({"boxes": np.array([[x, y, x + w, y + h] for _, (x, y, w, h) in boxes]).reshape(-1, 4),
                                "labels": np.array([c for c, _ in boxes], int)})
                post = self.processor.post_process_object_detection(out, threshold=self.opts.score_threshold,
                                                                    target_sizes=sizes)
                preds = [{k: r[k].float().cpu().numpy() if k != "labels" else r[k].cpu().numpy()
                          for k in ("boxes", "scores", "labels")} for r in post]
                records += list(zip(index, zip(preds, gts, strict=True), strict=True))
            else:
                logits = out.logits.float()
                labels = batch["labels"]
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu()
                hits = (top == labels[:, None]).any(1)
                records += [(i, (int(y), int(p), bool(h)))
                            for i, y, p, h in zip(index, labels.tolist(), top[:, 0].tolist(), hits.tolist(), strict=True)]
        if merge and self.world > 1:
            import torch.distributed as dist

            parts: list[Any] = [None] * self.world
            dist.all_gather_object(parts, (loss_sum, seen, records))
            loss_sum, seen = sum(p[0] for p in parts), sum(p[1] for p in parts)
            records = [r for p in parts for r in p[2]]
        records.sort(key=lambda r: r[0])
        metrics = {"val/loss": loss_sum / max(seen, 1)}
        if self.detect:
            preds, gts = [p for _, (p, _) in records], [g for _, (_, g) in records]
            m = mean_average_precision(preds, gts, len(self.classes))
            metrics |= {"metrics/mAP50(B)": float(m["mAP50"]), "metrics/mAP50-95(B)": float(m["mAP50-95"])}
            rep: dict[str, Any] = {"map": m, "preds": preds, "gts": gts, "images": [str(p) for p in ds.images]}
        else:
            y_true = [y for _, (y, _, _) in records]
            y_pred = [p for _, (_, p, _) in records]
            top5 = sum(h for _, (_, _, h) in records)
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
