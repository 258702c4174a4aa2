"""Training throughput of vtp's trainer adapters against the plain framework, side by side, on the
same synthetic data, the same model and the same settings (meant for a GPU; runs on CPU too).

    uv run python bench/gpu.py                       # timm resnet50 + ultralytics yolo11n on cuda if present
    uv run python bench/gpu.py --frameworks timm --device cpu --images 64 --epochs 2 --image-size 64
    uv run python bench/gpu.py --devices 0,1          # also vtp on two GPUs (DDP): the scaling over one
    uv run python bench/gpu.py --frameworks timm --device cpu --devices cpu:2 --images 64 --epochs 3 --image-size 64

Throughput is images (train + val) per second of steady-state epoch time: the first epoch is
warm-up and not counted. The last line is machine-readable:
device=… timm_ratio=… ultralytics_ratio=…   (adapter images/s ÷ plain images/s; 1.0 = no overhead)
With --devices, each framework also trains through vtp on those devices (TrainSpec.devices), and
the line gains ``<framework>_scaling`` = multi-device images/s ÷ one-device images/s (2 GPUs ideally
2.0). The multi-device epoch times come from the run's callbacks (ultralytics' DDP: from results.csv,
so within the relay's 2 s poll).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def steady_rate(stamps: list[float], images_per_epoch: int) -> float:
    """Images/s from epoch-end timestamps, ignoring the first (warm-up) epoch."""
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=False)] or [stamps[0]]
    return images_per_epoch / statistics.median(gaps)


def plain_timm(data: Path, opts, device: str) -> list[float]:
    """A canonical timm training loop (AdamW, AMP + channels_last on CUDA), train + val per epoch."""
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    torch.manual_seed(0)
    model = timm.create_model(opts.timm_model, pretrained=False, num_classes=3).to(device)
    cuda = device.startswith("cuda")
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    cfg = resolve_data_config({"input_size": (3, opts.image_size, opts.image_size)}, model=model)
    train_ds = ImageFolder(str(data / "train"), transform=create_transform(**cfg, is_training=True))
    val_ds = ImageFolder(str(data / "val"), transform=create_transform(**cfg))
    kw = {"batch_size": opts.batch_size, "num_workers": opts.workers, "pin_memory": cuda,
          "persistent_workers": opts.workers > 0}
    train_dl = torch.utils.data.DataLoader(train_ds, shuffle=True, drop_last=True, **kw)
    val_dl = torch.utils.data.DataLoader(val_ds, **kw)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    scaler = torch.amp.GradScaler(enabled=cuda)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    stamps = []
    start = time.perf_counter()
    for _ in range(opts.epochs):
        model.train()
        for x, y in train_dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cuda:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type="cuda" if cuda else "cpu", enabled=cuda):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        model.eval()
        with torch.no_grad(), torch.autocast(device_type="cuda" if cuda else "cpu", enabled=cuda):
            for x, y in val_dl:
                model(x.to(device, non_blocking=True)).argmax(1).eq(y.to(device)).sum().item()
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter() - start)
    return stamps


def adapter(framework: str, spec_data: dict, info, workdir: Path) -> list[float]:
    from core.contracts import Callbacks, TrainContext
    from core.frameworks import get_trainer
    from core.spec import parse_spec

    callbacks = Callbacks()
    ctx = TrainContext(workdir=workdir, dataset=info, callbacks=callbacks, download_timeout_s=1)
    start = time.time()
    get_trainer(framework)(parse_spec(spec_data), ctx)
    return [e["time"] - start for e in callbacks.epochs]


def plain_yolo(data_yaml: Path, opts, device: str, workdir: Path) -> list[float]:
    from trainers.ultralytics.env import import_ultralytics

    model = import_ultralytics().YOLO(f"{opts.yolo_model}.yaml")
    stamps: list[float] = []
    start = time.time()
    model.add_callback("on_fit_epoch_end", lambda trainer: stamps.append(time.time() - start))
    model.train(data=str(data_yaml), epochs=opts.epochs, imgsz=opts.image_size, batch=opts.batch_size,
                device=device.removeprefix("cuda:") if device.startswith("cuda") else device,
                workers=opts.workers, project=str(workdir), name="plain", exist_ok=True, pretrained=False,
                patience=0, seed=0, verbose=False)
    return stamps[: opts.epochs]  # the extra final-validation event is not an epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frameworks", default="timm,ultralytics")
    p.add_argument("--device", default="")
    p.add_argument("--timm-model", default="resnet50")
    p.add_argument("--yolo-model", default="yolo11n")
    p.add_argument("--images", type=int, default=2048, help="training images (val gets a quarter)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--devices", default="", help="also train through vtp on these devices: 0,1 (GPUs) or cpu:2")
    opts = p.parse_args()

    import torch

    device = opts.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    from tasks.dataset_formats import prepare_local
    from tasks.samples import make_sample

    tmp = Path(tempfile.mkdtemp(prefix="vtp-gpu-bench-"))
    n_val = max(opts.images // 4, 8)
    common = {"epochs": opts.epochs, "image_size": opts.image_size, "batch_size": opts.batch_size,
              "device": device.replace("cuda:", "") if device.startswith("cuda") else device,
              "workers": opts.workers, "pretrained": False, "patience": 0, "dataset": "bench"}
    ratios: dict[str, float] = {}
    single: dict[str, tuple[dict, object, float]] = {}  # framework -> (spec data, dataset, one-device images/s)
    print(f"device: {device} ({name}); torch {torch.__version__}; {opts.images}+{n_val} images at "
          f"{opts.image_size}px, batch {opts.batch_size}, {opts.epochs} epochs (first is warm-up)", flush=True)
    if "timm" in opts.frameworks:
        data = make_sample("shapes-classify", tmp / "cls", n_train=opts.images, n_val=n_val, image_size=opts.image_size)
        info = prepare_local(data, "classify", tmp / "cls-work")
        plain = steady_rate(plain_timm(data, opts, device), opts.images + n_val)
        ours = steady_rate(adapter("timm", {**common, "model": opts.timm_model}, info, tmp / "timm"), opts.images + n_val)
        ratios["timm"] = ours / plain
        single["timm"] = ({**common, "model": opts.timm_model}, info, ours)
        print(f"timm {opts.timm_model}: plain {plain:.1f} img/s | vtp adapter {ours:.1f} img/s | ratio {ours / plain:.3f}", flush=True)
    if "ultralytics" in opts.frameworks:
        data = make_sample("shapes-detect", tmp / "det", n_train=opts.images, n_val=n_val, image_size=opts.image_size)
        info = prepare_local(data, "detect", tmp / "det-work")
        size = opts.image_size // 32 * 32
        plain = steady_rate(plain_yolo(info.data_yaml, argparse.Namespace(**{**vars(opts), "image_size": size}),
                                       device, tmp / "yolo"), opts.images + n_val)
        ours = steady_rate(adapter("ultralytics", {**common, "model": opts.yolo_model, "image_size": size}, info,
                                   tmp / "yolo-vtp"), opts.images + n_val)
        ratios["ultralytics"] = ours / plain
        single["ultralytics"] = ({**common, "model": opts.yolo_model, "image_size": size}, info, ours)
        print(f"ultralytics {opts.yolo_model}: plain {plain:.1f} img/s | vtp adapter {ours:.1f} img/s | "
              f"ratio {ours / plain:.3f}", flush=True)
    for fw, (spec_data, info, one) in single.items() if opts.devices else ():
        stamps = adapter(fw, {**spec_data, "device": "auto", "devices": opts.devices}, info, tmp / f"{fw}-devices")
        multi = steady_rate(stamps, opts.images + n_val)
        ratios[f"{fw}_scaling"] = multi / one
        print(f"{fw} on {opts.devices}: vtp {multi:.1f} img/s | one device {one:.1f} img/s | scaling {multi / one:.2f}",
              flush=True)
    print(f"device={name.replace(' ', '_')} " + " ".join(
        f"{k}={v:.3f}" if k.endswith("_scaling") else f"{k}_ratio={v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
