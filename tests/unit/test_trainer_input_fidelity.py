"""What the dataset check accepts is exactly what each trainer's data loader hands the model:
16-bit images scaled by one dataset-wide bit depth (not white, not per-image stretched), polygon
label rows as their bounding boxes, class ids, image counts. Tiny generated datasets in tmp_path;
real timm / transformers transforms; no model, no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import TrainerError
from trainers.common import images
from trainers.common.images import bit_depth_scale, describe_scale, load_rgb, scale_for

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # pixel p (0-255) -> (p / 255 - 0.5) / 0.5


def to_pixel(x: torch.Tensor) -> torch.Tensor:
    """Normalized model input back to 0-255."""
    return (x * 0.5 + 0.5) * 255


def thermal(root: Path, n: int = 2, split_names: tuple[str, ...] = ("train", "val")) -> Path:
    """ImageFolder of 16-bit grayscale PNGs (mode I;16) holding 12-bit data: 'cool' ~600-1400,
    'hot' ~2600-3400 (as ../shared/cases/18-imagefolder-16bit-png)."""
    rng = np.random.default_rng(18)
    for split in split_names:
        for cls, level in (("cool", 1000), ("hot", 3000)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = (level + rng.integers(-400, 400, (32, 32))).astype(np.uint16)
                Image.fromarray(a).save(d / f"{cls}_{i}.png")
    return root


# ------------------------------------------------------------------------------- trainers.common.images


def test_16bit_png_opens_as_mode_i16(tmp_path):
    thermal(tmp_path, 1, ("train",))
    with Image.open(tmp_path / "train/hot/hot_0.png") as im:
        assert im.mode in ("I;16", "I")  # what the loader must handle; convert("RGB") makes it white
        assert np.asarray(im.convert("RGB")).min() == 255


def test_dataset_scale_is_the_bit_depth_of_the_largest_value(tmp_path):
    paths = sorted(thermal(tmp_path).rglob("*.png"))
    assert bit_depth_scale(paths) == 4095.0  # max ~3400 -> 12 bits
    assert describe_scale(4095.0) == "16-bit images scaled from 12-bit range (0-4095 -> 0-255)"
    assert describe_scale(None) is None
    assert [scale_for(v) for v in (200, 255, 256, 1023, 1024, 4095, 4096, 16384, 65535)] == [
        255.0,
        255.0,
        1023.0,
        1023.0,
        4095.0,
        4095.0,
        16383.0,
        65535.0,
        65535.0,
    ]
    assert scale_for(70000, "I") == 2.0**17 - 1
    assert scale_for(0.8, "F") == 1.0


def test_8bit_datasets_need_no_scale_and_load_as_before(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")  # mode L
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert bit_depth_scale([tmp_path / "a.png", tmp_path / "g.png", tmp_path / "p.png"]) is None
    # a scale does not touch 8-bit images
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "a.png", 4095.0)), rgb)
    g = np.asarray(load_rgb(tmp_path / "g.png"))
    assert g.shape == (8, 8, 3) and np.array_equal(g[..., 1], rgb[..., 0])
    with Image.open(tmp_path / "p.png") as im:
        assert np.array_equal(np.asarray(load_rgb(tmp_path / "p.png")), np.asarray(im.convert("RGB")))


def test_load_rgb_scales_linearly_and_clips(tmp_path):
    a = np.array([[0, 1000, 2048, 4095, 5000, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "x.png")
    out = np.asarray(load_rgb(tmp_path / "x.png", 4095.0))
    assert out.dtype == np.uint8 and out.shape == (1, 6, 3)
    assert out[0, :, 0].tolist() == [0, 62, 128, 255, 255, 255]
    full = np.asarray(load_rgb(tmp_path / "x.png"))  # no dataset scale: the container's 16-bit range
    assert full[0, :, 0].tolist() == [0, 4, 8, 16, 19, 255]
    with pytest.raises(ValueError):
        load_rgb(tmp_path / "x.png", 0)


def test_32bit_int_and_float_images(tmp_path):
    Image.fromarray(np.array([[0, 500, 1023]], dtype=np.int32), mode="I").save(tmp_path / "i.tif")
    Image.fromarray(np.array([[0.0, 0.5, 1.0, -1.0]], dtype=np.float32), mode="F").save(tmp_path / "f.tif")
    assert bit_depth_scale([tmp_path / "i.tif"]) == 1023.0
    assert np.asarray(load_rgb(tmp_path / "i.tif", 1023.0))[0, :, 0].tolist() == [0, 125, 255]
    assert bit_depth_scale([tmp_path / "f.tif"]) == 1.0
    assert np.asarray(load_rgb(tmp_path / "f.tif", 1.0))[0, :, 0].tolist() == [0, 128, 255, 0]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    assert load_rgb(tmp_path / "r.jpg").size == (2, 4)  # upright, as Ultralytics and labelling tools show it


def test_unreadable_image_raises_oserror(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(OSError):
        load_rgb(tmp_path / "bad.png")
    assert bit_depth_scale([tmp_path / "bad.png"]) is None  # skipped: the loader reports it


# --------------------------------------------------------------------------------------------- timm


def _timm_loaders(root: Path, size: int = 32):
    from trainers.timm.data import DataConfig, loaders

    cfg = DataConfig((3, size, size), "bilinear", MEAN, STD, 1.0)
    train_dl, val_dl = loaders(
        root / "train",
        root / "val",
        ["cool", "hot"],
        cfg,
        batch_size=4,
        workers=0,
        seed=0,
        pin_memory=False,
        hflip=0.0,
        color_jitter=0.0,
        scale_min=1.0,
    )
    return cfg, train_dl, val_dl


def test_timm_16bit_hot_and_cool_reach_the_model_different_and_unsaturated(tmp_path):
    cfg, train_dl, val_dl = _timm_loaders(thermal(tmp_path, 4))
    assert cfg.pixel_scale == 4095.0 and cfg.as_dict()["pixel_scale"] == 4095.0
    assert cfg.pixel_note() == "16-bit images scaled from 12-bit range (0-4095 -> 0-255)"
    assert len(train_dl.dataset) == 8 and len(val_dl.dataset) == 8
    x, y = next(iter(torch.utils.data.DataLoader(val_dl.dataset, batch_size=8)))
    assert x.shape == (8, 3, 32, 32) and y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    p = to_pixel(x)
    cool, hot = p[y == 0], p[y == 1]
    assert p.max() < 250 and p.min() > 5  # neither white (the old bug) nor black
    assert cool.std() > 1 and hot.std() > 1  # the noise survives: values not all equal
    # absolute levels kept: cool ~1000/4095*255 = 62, hot ~3000/4095*255 = 187
    assert 55 < cool.mean() < 70 and 180 < hot.mean() < 195
    assert cool.max() < hot.min()


def test_timm_data_config_round_trips_and_reads_old_checkpoints():
    from trainers.timm.data import DataConfig

    cfg = DataConfig((3, 32, 32), "bilinear", MEAN, STD, 1.0, 4095.0)
    assert DataConfig.from_dict(cfg.as_dict()) == cfg
    old = {k: v for k, v in cfg.as_dict().items() if k != "pixel_scale"}
    assert DataConfig.from_dict(old).pixel_scale is None


def test_timm_8bit_dataset_keeps_its_pixels(tmp_path):
    for split in ("train", "val"):
        for cls, v in (("a", 40), ("b", 200)):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32), (v, v, v)).save(tmp_path / split / cls / "x.png")
    from trainers.timm.data import DataConfig, loaders

    cfg = DataConfig((3, 32, 32), "bilinear", MEAN, STD, 1.0)
    _, val_dl = loaders(
        tmp_path / "train",
        tmp_path / "val",
        ["a", "b"],
        cfg,
        batch_size=2,
        workers=0,
        seed=0,
        pin_memory=False,
        hflip=0.0,
        color_jitter=0.0,
        scale_min=1.0,
    )
    x, y = next(iter(val_dl))
    assert cfg.pixel_scale is None
    assert y.tolist() == [0, 1]
    assert to_pixel(x[0]).round().unique().tolist() == [40.0]
    assert to_pixel(x[1]).round().unique().tolist() == [200.0]


# -------------------------------------------------------------------------------- huggingface: classify


def _vit_processor(size: int = 32):
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": size, "width": size}, image_mean=list(MEAN), image_std=list(STD))


def test_hf_classify_16bit(tmp_path):
    from trainers.huggingface.data import ClassifyDataset, collate_classify

    root = thermal(tmp_path, 3)
    proc = _vit_processor()
    train = ClassifyDataset(root / "train", ["cool", "hot"], proc, True, hflip=0.0)
    val = ClassifyDataset(root / "val", ["cool", "hot"], proc, False, pixel_scale=train.pixel_scale)
    assert train.pixel_scale == 4095.0 and len(train) == 6 and len(val) == 6
    batch = collate_classify([val[i] for i in range(len(val))])
    x, y = batch["pixel_values"], batch["labels"]
    assert x.shape == (6, 3, 32, 32) and y.tolist() == [0, 0, 0, 1, 1, 1]
    p = to_pixel(x)
    assert p.max() < 250 and p.min() > 5
    assert 55 < p[y == 0].mean() < 70 and 180 < p[y == 1].mean() < 195
    assert p[y == 0].std() > 1 and not torch.equal(x[0], x[3])


# ------------------------------------------------------------------------------- huggingface: detection

# objects in a 64 x 48 image, pixels: (class, x1, y1, x2, y2)
W, H = 64, 48
OBJECTS = [(0, 8, 4, 24, 20), (1, 30, 10, 62, 46)]


def detect_dataset(root: Path, rows: str = "polygon", yaml_extra: str = "", n: int = 2) -> Path:
    """A YOLO detect dataset (train/images, valid/images, data.yaml as Roboflow writes it) whose
    label rows are diamonds (polygon rows) or boxes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        f"path: .\ntrain: train/images\nval: valid/images\nnc: 2\nnames: ['leaf', 'spot']\n{yaml_extra}"
    )
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (W, H), (30, 30, 30)).save(root / split / "images" / f"{split}_{i}.png")
            lines = []
            for c, x1, y1, x2, y2 in OBJECTS:
                if rows == "polygon":  # diamond: its box is exactly (x1, y1, x2, y2)
                    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
                    pts = [(xm, y1), (x2, ym), (xm, y2), (x1, ym)]
                    lines.append(f"{c} " + " ".join(f"{x / W} {y / H}" for x, y in pts))
                else:
                    lines.append(
                        f"{c} {(x1 + x2) / 2 / W} {(y1 + y2) / 2 / H} {(x2 - x1) / W} {(y2 - y1) / H}"
                    )
            (root / split / "labels" / f"{split}_{i}.txt").write_text("\n".join(lines) + "\n")
    return root


def _detr_processor():
    from transformers import ConditionalDetrImageProcessor

    return ConditionalDetrImageProcessor(do_resize=False, image_mean=list(MEAN), image_std=list(STD))


@pytest.mark.parametrize("rows", ["polygon", "box"])
def test_hf_detect_polygon_rows_become_their_bounding_boxes(tmp_path, rows):
    from trainers.huggingface.data import DetectDataset, collate_detect, read_boxes, yolo_splits

    root = detect_dataset(tmp_path, rows)
    names, splits = yolo_splits(root, root / "data.yaml")
    assert names == ["leaf", "spot"] and [len(splits["train"]), len(splits["val"])] == [2, 2]
    boxes = read_boxes(splits["train"][0], W, H)
    assert [c for c, _ in boxes] == [0, 1]
    for (_, (x, y, w, h)), (_, x1, y1, x2, y2) in zip(boxes, OBJECTS, strict=True):
        assert [x, y, w, h] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-9)

    ds = DetectDataset(splits["val"], _detr_processor(), False)
    assert ds.pixel_scale is None
    batch = collate_detect([ds[i] for i in range(len(ds))])
    assert batch["pixel_values"].shape[0] == 2 and batch["index"] == [0, 1]
    for target in batch["labels"]:
        assert target["class_labels"].tolist() == [0, 1]
        expected = [
            [(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H]
            for _, x1, y1, x2, y2 in OBJECTS
        ]
        np.testing.assert_allclose(target["boxes"].numpy(), expected, atol=1e-6)  # normalized cx cy w h


def test_hf_detect_training_flip_moves_polygon_boxes(tmp_path):
    from trainers.huggingface.data import DetectDataset, yolo_splits

    root = detect_dataset(tmp_path)
    _, splits = yolo_splits(root, root / "data.yaml")
    item = DetectDataset(splits["train"], _detr_processor(), True, hflip=1.0)[0]
    expected = [
        [1 - (x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H]
        for _, x1, y1, x2, y2 in OBJECTS
    ]
    np.testing.assert_allclose(item["labels"]["boxes"].numpy(), expected, atol=1e-6)


def test_the_shared_polygon_case_reads_as_ultralytics_reads_it(tmp_path):
    """../shared/cases/06: every row is a diamond; its box is the polygon's extent, never the first
    four numbers (x1 y1 x2 y2 read as cx cy w h)."""
    from trainers.huggingface.data import read_boxes, row_box

    values = [0, 0.53125, 0.31250, 0.64062, 0.52344, 0.53125, 0.73438, 0.42188, 0.52344]
    assert row_box(values) == (0, (0.42188, 0.31250, 0.64062, 0.73438))
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "images" / "a.jpg")
    # a BOM and a blank line, as the dataset check accepts them
    (tmp_path / "labels" / "a.txt").write_text("\ufeff" + " ".join(map(str, values)) + "\n\n")
    [(c, box)] = read_boxes(tmp_path / "images" / "a.jpg", 64, 64)
    assert c == 0 and box == pytest.approx([0.42188 * 64, 0.3125 * 64, 0.21874 * 64, 0.42188 * 64])


def test_hf_detect_refuses_pose_datasets_and_odd_rows(tmp_path):
    from trainers.huggingface.data import read_boxes, row_box, yolo_splits

    root = detect_dataset(tmp_path / "pose", yaml_extra="kpt_shape: [2, 2]\n")
    with pytest.raises(TrainerError, match="pose dataset"):
        yolo_splits(root, root / "data.yaml")
    for bad in ([0, 0.5, 0.5], [0, 0.5, 0.5, 0.2, 0.2, 0.1], [0, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 2]):
        with pytest.raises(ValueError, match="values"):
            row_box(bad)
    with pytest.raises(ValueError, match="class id"):
        row_box([1.5, 0.5, 0.5, 0.2, 0.2])
    root = detect_dataset(tmp_path / "bad")
    label = root / "train" / "labels" / "train_0.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2 0.3\n")  # row 2: 6 values, neither kind
    with pytest.raises(TrainerError, match=r"train_0\.txt:2: 6 values"):
        read_boxes(root / "train" / "images" / "train_0.png", W, H)
    label.write_text("0 0.5 0.5 0.2 zero\n")
    with pytest.raises(TrainerError, match=r"train_0\.txt:1"):
        read_boxes(root / "train" / "images" / "train_0.png", W, H)


def test_hf_detect_16bit_images(tmp_path):
    from trainers.huggingface.data import DetectDataset, yolo_splits

    root = detect_dataset(tmp_path)
    for split in ("train", "valid"):
        for i, level in enumerate((1000, 3000)):
            Image.fromarray(np.full((H, W), level, np.uint16)).save(
                root / split / "images" / f"{split}_{i}.png"
            )
    _, splits = yolo_splits(root, root / "data.yaml")
    ds = DetectDataset(splits["val"], _detr_processor(), False)
    assert ds.pixel_scale == 4095.0
    cool, hot = to_pixel(ds[0]["pixel_values"]), to_pixel(ds[1]["pixel_values"])
    assert cool.round().unique().tolist() == [62.0] and hot.round().unique().tolist() == [187.0]
    assert ds[0]["labels"]["class_labels"].tolist() == [0, 1]


def test_high_depth_modes_are_listed():
    assert "I;16" in images.HIGH_DEPTH_MODES and "F" in images.HIGH_DEPTH_MODES
