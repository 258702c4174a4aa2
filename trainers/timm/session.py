"""One timm training run: set-up, the epoch loop, checkpoints and the result."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from core.contracts import TrainContext, TrainResult
from core.errors import ResumeCheckpointError, TrainerError
from trainers import loader_workers
from trainers.common import (
    EpochTracker,
    accumulation_note,
    distributed,
    image_folder,
    link_atomic,
    resolve_device,
)
from trainers.timm import checkpoint, data, loop, report
from trainers.timm.weights import find_timm_weights

if TYPE_CHECKING:
    from core.spec import TrainSpec

RUN_NAME = "train"


class Session:
    def __init__(self, spec: TrainSpec, ctx: TrainContext) -> None:
        self.spec, self.ctx = spec, ctx
        self.opts = loop.Options.from_overrides(dict(spec.overrides))
        self.run_dir = ctx.workdir / RUN_NAME
        self.weights_dir = self.run_dir / "weights"
        self.notes: list[str] = []
        self.pulse = ctx.callbacks  # heartbeats and stop polls throttle themselves
        self.loaders: list[Any] = []  # their worker processes stop in close()
        # several processes (spec.devices): this one's rank, and accelerate's Accelerator (set in run())
        self.rank = distributed.current()
        self.accelerator: Any = None
        self.is_main = self.rank is None or self.rank.is_main

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.ctx.callbacks.log(message)

    def _device(self) -> torch.device:
        """The device of this process: the spec's, or with several processes accelerate's for this rank
        (an Accelerator with ``split_batches``: batch_size is the whole step's, split over the ranks)."""
        if self.rank is None:
            device, device_note = resolve_device(self.spec.device)
            if device_note:
                self.note(device_note)
            return device
        from accelerate import Accelerator

        self.accelerator = acc = Accelerator(cpu=self.rank.devices.kind == "cpu", split_batches=True)
        if acc.num_processes != self.rank.world:
            raise TrainerError(f"accelerate set up {acc.num_processes} processes, not the {self.rank.world} of "
                               f"devices={self.spec.devices!r} ({acc.distributed_type})")
        self.note(f"trained with DDP in {acc.num_processes} processes ({self.rank.devices.describe()}, "
                  f"{acc.state.backend}): each epoch's batches are shared out, metrics cover the whole val split.")
        return acc.device

    def _distribute(self, model: nn.Module, train_dl: Any, val_dl: Any) -> tuple[nn.Module, Any, Any]:
        """(the module to train, the train loader, the val loader) of this process: with several
        processes DDP around ``model`` and loaders sharded per rank; else the same three."""
        if self.accelerator is None:
            return model, train_dl, val_dl
        ddp, train_shard, val_shard = self.accelerator.prepare(model, train_dl, val_dl)
        self.loaders += [train_shard, val_shard]
        return ddp, train_shard, val_shard

    def close(self) -> None:
        """Stop the data loaders' worker processes (train() calls it however the run ends)."""
        loader_workers.shut_down(self.loaders)

    # ------------------------------------------------------------------------------------ set-up

    def _model(self, num_classes: int) -> tuple[nn.Module, bool]:
        import timm

        name = str(self.spec.model)
        path = None
        if self.ctx.resume_from or self.ctx.init_from:
            pass  # the weights come from a checkpoint of this run or of the run it extends
        elif self.spec.pretrained:
            path, message = find_timm_weights(name, self.ctx)
            self.note(message)
        else:
            self.note(f"training {name} from scratch (pretrained=False).")
        kwargs: dict[str, Any] = {"num_classes": num_classes}
        if self.opts.drop_rate is not None:
            kwargs["drop_rate"] = self.opts.drop_rate
        if self.opts.drop_path_rate is not None:
            kwargs["drop_path_rate"] = self.opts.drop_path_rate
        if path is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            model = timm.create_model(name, pretrained=path is not None, **kwargs)
        except TypeError as e:  # e.g. drop_path_rate on an architecture without it
            raise TrainerError(
                f"timm could not build {name} with {kwargs}: {e}; remove the override it names"
            ) from e
        except (RuntimeError, OSError, ValueError) as e:
            if path is None:
                raise
            raise TrainerError(
                f"the pretrained weights {path} do not fit {name} ({e}): replace the file or set pretrained=False"
            ) from e
        return model, path is not None

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        from timm.optim import create_optimizer_v2

        lr = self.spec.learning_rate or self.opts.default_lr()
        try:
            return create_optimizer_v2(
                model,
                opt=self.opts.optimizer.lower(),
                lr=lr,
                weight_decay=self.opts.resolved_weight_decay(),
                momentum=self.opts.momentum,
            )
        except (AssertionError, ValueError) as e:  # timm asserts on unknown optimizer names
            raise TrainerError(
                f"overrides.optimizer={self.opts.optimizer!r} is not a timm optimizer ({e}): use adamw, sgd, "
                "adam, lamb, rmsprop, ..."
            ) from e

    def _scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        """Warmed-up cosine schedule over ``steps_per_epoch`` optimizer steps (not batches) an epoch."""
        from timm.scheduler import CosineLRScheduler

        epochs = self.spec.epochs
        warmup = min(self.opts.resolved_warmup(epochs), epochs - 1) * steps_per_epoch
        total = epochs * steps_per_epoch
        lr = optimizer.param_groups[0]["lr"]
        return CosineLRScheduler(
            optimizer,
            t_initial=max(1, total - warmup),
            lr_min=min(self.opts.min_lr, lr),
            warmup_t=warmup,
            warmup_lr_init=lr * 0.01,
            warmup_prefix=True,
            t_in_epochs=False,
        )

    # ------------------------------------------------------------------------------------ resume

    def _resume(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                classes: list[str]) -> tuple[int, int, list[dict[str, float]], int]:
        """Restore weights, optimizer, scheduler and history from this run's last uploaded checkpoint
        (a folder with last.pt and best.pt); returns (first epoch to train, updates, history, best epoch)."""
        folder = Path(self.ctx.resume_from)
        try:
            ckpt = checkpoint.read_checkpoint(folder / "last.pt")
        except TrainerError as e:
            raise ResumeCheckpointError(f"the run's resume checkpoint could not be loaded ({e})") from e
        if list(ckpt["classes"]) != classes:
            raise TrainerError(
                f"the resume checkpoint was trained on classes {ckpt['classes']} but the dataset now has {classes}: "
                "the dataset changed under the run; start a new run"
            )
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            state = ckpt.get("resume") or {}
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise ResumeCheckpointError(f"the run's resume checkpoint does not fit this run ({e})") from e
        if self.is_main:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            link_atomic(folder / "last.pt", self.weights_dir / "last.pt")
            if (folder / "best.pt").is_file():
                link_atomic(folder / "best.pt", self.weights_dir / "best.pt")
        epoch = int(ckpt["epoch"])
        history = [dict(h) for h in state.get("history", [])]
        self.note(f"resumed after epoch {epoch} of {self.spec.epochs} from the run's last uploaded checkpoint "
                  f"(weights, optimizer, scheduler and history restored).")
        return epoch + 1, int(state.get("updates", 0)), history, int(state.get("best_epoch", epoch))

    def _init_from(self, model: nn.Module, classes: list[str]) -> None:
        """Start from a finished run's final weights (``vtp train --resume RUN``)."""
        path = Path(self.ctx.init_from)
        ckpt = checkpoint.read_checkpoint(path / "last.pt" if path.is_dir() else path)
        if list(ckpt["classes"]) != classes:
            raise TrainerError(
                f"the run being continued was trained on classes {ckpt['classes']}, this dataset has {classes}: "
                "continue it on the same dataset, or start a new run"
            )
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise TrainerError(f"the checkpoint does not fit {self.spec.model}: {e}") from e
        self.note(f"starting from the final weights of the run being continued ({ckpt['epoch']} epochs trained).")

    # ------------------------------------------------------------------------------------ the run

    def run(self) -> TrainResult:
        spec, ctx = self.spec, self.ctx
        image_size = int(spec.image_size or 224)
        classes, train_dir, val_dir = image_folder(Path(ctx.dataset.root))
        device = self._device()
        rt = loop.make_runtime(device, self.opts)
        model, pretrained_used = self._model(len(classes))
        cfg = data.data_config(model, image_size)
        train_dl, val_dl = data.loaders(
            train_dir,
            val_dir,
            classes,
            cfg,
            batch_size=spec.batch_size,
            workers=spec.workers,
            seed=spec.seed,
            pin_memory=device.type == "cuda",
            hflip=self.opts.hflip,
            color_jitter=self.opts.color_jitter,
            scale_min=self.opts.scale_min,
        )
        self.loaders += [train_dl, val_dl]
        if cfg.pixel_note():
            self.note(cfg.pixel_note())
        model.to(device)
        if rt.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = self._optimizer(model)
        accumulate = spec.accumulate or 1  # batches an optimizer step; the last group of an epoch may be shorter
        steps_per_epoch, accumulation = accumulation_note(accumulate, spec.batch_size, len(train_dl))
        scheduler = self._scheduler(optimizer, steps_per_epoch)
        scaler = torch.amp.GradScaler(device.type, enabled=rt.amp_dtype == torch.float16)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=self.opts.label_smoothing)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            report.write_args(
                self.run_dir / "args.yaml",
                spec.model_dump(),
                asdict(self.opts),
                {
                    "device": str(device) if self.rank is None else spec.devices,
                    "amp": str(rt.amp_dtype),
                    "classes": classes,
                    "data_config": cfg.as_dict(),
                },
            )
        ctx.callbacks.log(
            f"timm {spec.model}: {len(classes)} classes, {len(train_dl.dataset)} train / {len(val_dl.dataset)} val "
            f"images at {image_size}px on {device if self.rank is None else self.rank.devices.describe()} "
            f"(amp: {rt.amp_dtype or 'off'})"
        )
        if accumulate > 1:
            self.note(accumulation)

        epochs = EpochTracker(spec.main_metric, spec.patience, spec.epochs)
        updates, stopped_early = 0, False
        last_path, best_path = self.weights_dir / "last.pt", self.weights_dir / "best.pt"
        start = 1
        if ctx.resume_from:
            start, updates, history, best_epoch = self._resume(model, optimizer, scheduler, scaler, classes)
            epochs.restore(history, best_epoch)
        elif ctx.init_from:
            self._init_from(model, classes)

        def saved(ckpt: dict[str, Any], last: Path) -> None:  # in the writer thread, once last.pt is whole
            ctx.callbacks.checkpoint(int(ckpt["epoch"]), spec.epochs, last.parent)

        writer = checkpoint.CheckpointWriter(on_saved=saved)
        train_model, train_shard, val_shard = self._distribute(model, train_dl, val_dl)
        gather = self.accelerator.gather_for_metrics if self.accelerator is not None else None
        for epoch in range(start, spec.epochs + 1):
            train_loss, updates, stop = loop.train_one_epoch(
                train_model,
                train_shard,
                optimizer,
                scheduler,
                loss_fn,
                scaler,
                rt,
                self.pulse,
                updates,
                self.opts.grad_clip,
                accumulate,
            )
            if self.accelerator is not None:  # every process's mean, each over the same number of images
                train_loss = float(self.accelerator.reduce(torch.tensor(train_loss, device=device), "mean"))
            metrics = {"train/loss": train_loss,
                       **loop.evaluate(model, val_shard, rt, len(classes), self.pulse, gather)}
            metrics["lr"] = float(optimizer.param_groups[0]["lr"])
            improved = epochs.record(epoch, metrics)
            if self.is_main:  # one writer of the run's files; the other ranks build no checkpoint
                ckpt = checkpoint.build_checkpoint(
                    model,
                    optimizer,
                    scheduler,
                    epoch=epoch,
                    spec=spec.model_dump(),
                    classes=classes,
                    data_config=cfg,
                    metrics=metrics,
                    resume={"history": epochs.history, "best_epoch": epochs.best_epoch, "updates": updates,
                            "scaler": scaler.state_dict()},
                )
                writer.submit(ckpt, last_path, best_path if improved else None)
                report.write_results_csv(self.run_dir / "results.csv", epochs.history)
            ctx.callbacks.epoch_end(epoch, spec.epochs, metrics)
            ctx.callbacks.heartbeat(force=True)
            if stop or self.pulse.should_stop(force=True):
                stopped_early = True
                self.note(f"stopped on request after epoch {epoch} of {spec.epochs}.")
                break
            if epochs.stop_early(epoch):
                stopped_early = True
                self.note(epochs.early_stop_note(epoch))
                break

        if start > spec.epochs:  # resumed from the last epoch's checkpoint: nothing left to train
            self.note(f"the checkpoint already holds all {spec.epochs} epochs; nothing left to train.")
        writer.close()  # both checkpoints are complete on disk before the result names them
        if not self.is_main:  # rank 0 reports; the caller takes its result
            return TrainResult(metrics=epochs.best_metrics(), best_checkpoint=best_path, last_checkpoint=last_path)
        artifacts = [self.run_dir / "results.csv", self.run_dir / "args.yaml"]
        plot = report.plot_curves(self.run_dir / "results.png", epochs.history)
        if plot is not None:
            artifacts.append(plot)
        artifacts += report.evaluation(self.run_dir, model, best_path if best_path.is_file() else last_path, val_dl,
                                       rt, classes, epochs.history, self.pulse)
        return TrainResult(
            metrics=epochs.best_metrics(),  # the loop runs at least one epoch, or the resumed history has one
            best_checkpoint=best_path,
            last_checkpoint=last_path,
            artifacts=artifacts,
            epochs_completed=len(epochs.history),
            pretrained_used=pretrained_used,
            notes=self.notes,
            stopped_early=stopped_early,
        )
