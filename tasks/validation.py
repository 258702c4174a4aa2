"""Check a local dataset before training, so a person sees every problem at once, named by file.

The checks mirror what Ultralytics would reject later (label columns, class ids, 1% coordinate
tolerance, mixed box and polygon rows) and what would make a classifier meaningless (one class,
val classes unknown to train). Images are opened, never decoded: ``Image.open`` parses the header
and ``verify()`` checks what the format allows cheaply, so thousands of files take about a second.
An image over ``MAX_PIXELS`` is refused from its header, before anything is decoded.

Every path the dataset names must stay inside it (see :mod:`core.dataset_layout`); a path that
leads outside gets the same error whether or not the file it names exists.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image

from core.dataset_layout import (
    OUTSIDE,
    YAML_NAMES,
    DataYaml,
    class_dirs,
    find_val_dir,
    is_image,
    label_path,
    list_images,
    read_data_yaml,
    read_list,
    within,
)
from core.errors import DatasetError
from tasks.dataset_formats import TASK_FORMATS, detect_format

TOLERANCE = 0.01  # Ultralytics accepts coordinates in [-0.01, 1.01]
MAX_LISTED = 50
MAX_PIXELS = 50_000_000  # 50 megapixels: ~150 MB decoded as RGB; larger images are refused from their header
MAX_PER_KIND = 20  # per split, for warnings that can concern every file (backgrounds, orphan labels)


@dataclass
class Problem:
    severity: Literal["error", "warning"]
    file: str
    message: str
    message_ko: str | None = None  # the same in Korean, for the web app's Korean page (None: English only)

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.message}"


@dataclass
class ValidationReport:
    format: str
    task: str
    classes: list[str]
    counts: dict[str, int]
    problems: list[Problem] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_dict(self) -> dict:
        return {**asdict(self), "fatal": self.fatal}

    def summary(self, limit: int = MAX_LISTED) -> str:
        counts = ", ".join(f"{s} {n}" for s, n in self.counts.items()) or "no images"
        head = (
            f"{self.format} dataset for {self.task}: {len(self.classes)} classes, {counts} images; "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )
        ordered = self.errors + self.warnings
        lines = [head, *(f"  {p}" for p in ordered[:limit])]
        if len(ordered) > limit:
            lines.append(f"  ... and {len(ordered) - limit} more")
        return "\n".join(lines)

    def raise_if_fatal(self) -> None:
        if self.fatal:
            raise DatasetError(
                f"the dataset has {len(self.errors)} error(s); fix the files named below (or remove them) "
                f"and run again:\n{self.summary()}",
                self.problems,
            )


class _Collector:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []

    def name(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def error(self, p: Path | str, message: str, ko: str | None = None) -> None:
        self.problems.append(Problem("error", p if isinstance(p, str) else self.name(p), message, ko))

    def warning(self, p: Path | str, message: str, ko: str | None = None) -> None:
        self.problems.append(Problem("warning", p if isinstance(p, str) else self.name(p), message, ko))

    def warn_files(self, files: list[Path], message: str, what: str, ko: str | None = None,
                   what_ko: str | None = None) -> None:
        """One warning per file, or one for all of them when there are many."""
        if len(files) <= MAX_PER_KIND:
            for f in files:
                self.warning(f, message, ko)
        else:
            examples = ", ".join(self.name(f) for f in files[:3])
            self.warning(self.name(files[0].parent), f"{len(files)} {what} (e.g. {examples}): {message}",
                         f"{what_ko} {len(files)}개 (예: {examples}): {ko}" if ko and what_ko else None)


def check_image(p: Path, out: _Collector) -> bool:
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the cap below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            w, h = im.size  # from the header: nothing decoded yet
            if w * h > MAX_PIXELS:
                out.error(p, f"image is {w}x{h} pixels, over the limit of {MAX_PIXELS // 1_000_000} megapixels; "
                             "downscale it",
                          f"이미지가 {w}x{h} 픽셀로 한도({MAX_PIXELS // 1_000_000}메가픽셀)를 넘습니다: 크기를 줄여 주세요")
                return False
            im.verify()
    except Exception as e:  # PIL raises many types for broken files; each means "unreadable"
        out.error(p, f"image cannot be read ({type(e).__name__}: {e}); replace or delete it",
                  f"이미지를 읽을 수 없습니다 ({type(e).__name__}: {e}): 바꾸거나 지워 주세요")
        return False
    if w < 10 or h < 10:
        out.error(p, f"image is {w}x{h} pixels; images need at least 10 pixels per side",
                  f"이미지가 {w}x{h} 픽셀입니다: 한 변이 10픽셀 이상이어야 합니다")
        return False
    if p.suffix.lower() in (".jpg", ".jpeg"):
        with open(p, "rb") as f:
            f.seek(-2, 2)
            if f.read() != b"\xff\xd9":
                out.warning(p, "JPEG has no end marker (truncated?); re-save it, or some readers will fail on it",
                            "JPEG 끝 표시가 없습니다(잘린 파일?): 다시 저장해 주세요. 일부 도구가 읽지 못합니다")
    return True


def validate(root: Path, task: str) -> ValidationReport:
    """Check the dataset at ``root`` for ``task``; every finding is in the report, nothing raises
    except an unrecognised layout or a COCO dataset (convert it first)."""
    root = Path(root).resolve()
    if task not in TASK_FORMATS:
        raise DatasetError(f"task {task!r} is unknown: use one of {', '.join(TASK_FORMATS)}")
    fmt = detect_format(root)
    if fmt == "coco":
        raise DatasetError(f"{root} is a COCO dataset: convert it with coco_to_yolo (prepare_local does) and validate that")
    out = _Collector(root)
    report = ValidationReport(fmt, task, [], {}, out.problems)
    if TASK_FORMATS[task] != fmt:
        others = [t for t, f in TASK_FORMATS.items() if f == fmt]
        need = "a YOLO dataset with a data.yaml" if TASK_FORMATS[task] == "yolo" else "an ImageFolder dataset"
        need_ko = "data.yaml이 있는 YOLO 데이터셋" if TASK_FORMATS[task] == "yolo" else "ImageFolder 데이터셋"
        out.error(root.name, f"task {task} needs {need}, but this is a {fmt} dataset: use task {' or '.join(others)}",
                  f"작업 {task}에는 {need_ko}이 필요한데 이 데이터셋은 {fmt} 형식입니다: 작업을 {' 또는 '.join(others)}(으)로 "
                  "바꿔 주세요")
        return report
    if fmt == "yolo":
        _validate_yolo(root, task, out, report)
    else:
        _validate_imagefolder(root, task, out, report)
    return report


# --------------------------------------------------------------------------------------------- YOLO


def _expected_columns(task: str, kpt: tuple[int, int] | None) -> str:
    return {
        "detect": "5 values (class cx cy w h) or a polygon",
        "segment": "class followed by 3 or more x y points",
        "obb": "9 values (class x1 y1 x2 y2 x3 y3 x4 y4)",
        "pose": f"{5 + kpt[0] * kpt[1]} values (class cx cy w h, then {kpt[0]} keypoints of {kpt[1]})" if kpt else "",
    }[task]


def _columns_ok(n: int, task: str, kpt: tuple[int, int] | None) -> bool:
    if task == "detect":
        return n == 5 or (n >= 7 and n % 2 == 1)
    if task == "segment":
        return n >= 7 and n % 2 == 1
    if task == "obb":
        return n == 9
    return kpt is not None and n == 5 + kpt[0] * kpt[1]


def _coordinates(values: list[float], task: str, kpt: tuple[int, int] | None) -> list[float]:
    """The values that must lie in [0, 1]: everything but the class and keypoint visibilities."""
    if task != "pose" or kpt is None or kpt[1] != 3:
        return values[1:]
    points = values[5:]
    return values[1:5] + [v for i, v in enumerate(points) if i % 3 != 2]


def check_label_file(lbl: Path, task: str, nc: int, kpt: tuple[int, int] | None, out: _Collector) -> None:
    try:
        text = lbl.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        out.error(lbl, f"label file cannot be read ({e}); rewrite it as UTF-8 text",
                  f"라벨 파일을 읽을 수 없습니다 ({e}): UTF-8 텍스트로 다시 저장해 주세요")
        return
    widths: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{out.name(lbl)}:{n}"
        if not _columns_ok(len(parts), task, kpt):
            out.error(where, f"{len(parts)} values; {task} labels need {_expected_columns(task, kpt)}",
                      f"값이 {len(parts)}개입니다: {task} 라벨은 {_expected_columns(task, kpt)}")
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            out.error(where, f"non-numeric value in {line.strip()[:60]!r}; every value must be a number",
                      f"{line.strip()[:60]!r}에 숫자가 아닌 값이 있습니다: 모든 값은 숫자여야 합니다")
            continue
        cls = values[0]
        if cls % 1 != 0 or not 0 <= cls < nc:
            out.error(where, f"class id {parts[0]} is out of range: data.yaml names {nc} classes, ids 0..{nc - 1}",
                      f"클래스 ID {parts[0]}이(가) 범위를 벗어납니다: data.yaml의 클래스는 {nc}개, ID는 0..{nc - 1}입니다")
        coords = _coordinates(values, task, kpt)
        if coords and (min(coords) < -TOLERANCE or max(coords) > 1 + TOLERANCE):
            out.error(where, "coordinates outside 0..1: labels must be normalized by the image width and height",
                      "좌표가 0..1 밖에 있습니다: 라벨은 이미지의 너비와 높이로 정규화되어야 합니다")
        widths.add("box" if len(parts) == 5 else "polygon")
    if task == "detect" and len(widths) == 2:
        out.error(lbl, "mixes box rows (5 values) and polygon rows; use one kind per file",
                  "박스 줄(값 5개)과 폴리곤 줄이 섞여 있습니다: 파일마다 한 가지만 써 주세요")


def _split_entries(layout: DataYaml, root: Path, out: _Collector) -> dict[str, list[Path]]:
    splits = dict(layout.splits)
    if "val" not in splits and "test" in splits:
        splits["val"] = splits.pop("test")
        out.warning(layout.yaml_file, "no val split; test is used as val",
                    "검증(val) 분할이 없어 test를 검증에 씁니다")
    for split in ("train", "val"):
        if split not in splits:
            out.error(layout.yaml_file, f"no `{split}:` entry: add one, e.g. `{split}: images/{split}`",
                      f"`{split}:` 항목이 없습니다: 예를 들어 `{split}: images/{split}`를 추가해 주세요")
    for split, entry in layout.outside:
        out.error(layout.yaml_file, f"{split} entry {entry!r} {OUTSIDE}",
                  f"{split} 항목 {entry!r}은(는) 데이터셋 폴더 밖을 가리킵니다")
    for split, entries in list(splits.items()):
        for p in entries:
            if not p.exists():
                out.error(layout.yaml_file, f"{split} split {out.name(p)} does not exist: create it or fix `{split}:`",
                          f"{split} 분할 {out.name(p)}이(가) 없습니다: 만들거나 `{split}:`를 고쳐 주세요")
            elif p.is_file():
                refused = read_list(p, root)[1]
                for n, line in refused[:MAX_PER_KIND]:
                    out.error(f"{out.name(p)}:{n}", f"{line[:200]!r} {OUTSIDE}",
                              f"{line[:200]!r}은(는) 데이터셋 폴더 밖을 가리킵니다")
                if len(refused) > MAX_PER_KIND:
                    out.error(p, f"{len(refused) - MAX_PER_KIND} more lines lead outside the dataset folder",
                              f"{len(refused) - MAX_PER_KIND}줄이 더 데이터셋 폴더 밖을 가리킵니다")
        splits[split] = [p for p in entries if p.exists()]
    return splits


def _validate_yolo(root: Path, task: str, out: _Collector, report: ValidationReport) -> None:
    try:
        layout = read_data_yaml(root)
    except DatasetError as e:
        out.error(next((n for n in YAML_NAMES if (root / n).exists()), YAML_NAMES[0]), str(e))
        return
    report.classes = layout.names
    for note in layout.notes:
        out.warning(layout.yaml_file, note.split(": ", 1)[-1])
    kpt: tuple[int, int] | None = None
    if task == "pose":
        shape = layout.data.get("kpt_shape")
        if isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape) and shape[1] in (2, 3):
            kpt = (shape[0], shape[1])
        else:
            out.error(layout.yaml_file, f"pose needs `kpt_shape: [K, 3]` (or [K, 2]); found {shape!r}",
                      f"pose에는 `kpt_shape: [K, 3]`(또는 [K, 2])이 필요한데 {shape!r}입니다")
    if not layout.names:
        out.error(layout.yaml_file, "names is empty: list the class names",
                  "names가 비어 있습니다: 클래스 이름을 적어 주세요")
    for split, entries in _split_entries(layout, root, out).items():
        images = [img for e in entries for img in list_images(e, root)]
        report.counts[split] = len(images)
        if not images and entries:
            out.error(entries[0], f"{split} split has no images: add .jpg or .png files (labels under labels/{split}/)",
                      f"{split} 분할에 이미지가 없습니다: .jpg나 .png 파일을 넣어 주세요 (라벨은 labels/{split}/ 아래)")
        _check_yolo_split(images, entries, task, len(layout.names), kpt, out)


def _check_yolo_split(
    images: list[Path], entries: list[Path], task: str, nc: int, kpt: tuple[int, int] | None, out: _Collector
) -> None:
    root = out.root
    # a label is only read inside the dataset (a root under some .../images/ folder maps elsewhere)
    labels = {lbl: img for img in images if within(root, os.path.relpath(lbl := label_path(img), root)) is not None}
    unlabeled: list[Path] = [img for img in images if within(root, os.path.relpath(label_path(img), root)) is None]
    for img in images:
        check_image(img, out)
    for lbl, img in labels.items():
        if lbl.is_file():
            if task != "pose" or kpt is not None:
                check_label_file(lbl, task, nc, kpt, out)
        else:
            unlabeled.append(img)
    out.warn_files(unlabeled, "no label file; trained as a background image (nothing to find)", "images have no label",
                   "라벨 파일이 없어 배경 이미지(찾을 것이 없는 이미지)로 학습합니다", "라벨이 없는 이미지")
    orphans: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            label_dir = label_path(entry / "x.jpg").parent
            if label_dir.is_dir() and within(root, os.path.relpath(label_dir, root)) is not None:
                orphans += [t for t in sorted(label_dir.rglob("*.txt")) if t not in labels]
    out.warn_files(orphans, "label file without a matching image; it is ignored", "label files have no image",
                   "짝이 되는 이미지가 없는 라벨 파일이라 무시합니다", "이미지가 없는 라벨 파일")


# -------------------------------------------------------------------------------------- ImageFolder


def _validate_imagefolder(root: Path, task: str, out: _Collector, report: ValidationReport) -> None:
    val = find_val_dir(root)
    split_dirs = {"train": root / "train", "val": val}
    per_split: dict[str, set[str]] = {}
    for split, d in split_dirs.items():
        if d is None or not d.is_dir():
            out.error(split, f"missing {split}/ folder: add {split}/<class>/ folders of images",
                      f"{split}/ 폴더가 없습니다: 이미지가 든 {split}/<클래스>/ 폴더를 추가해 주세요")
            continue
        stray = [p for p in d.iterdir() if p.is_file() and is_image(p)]
        out.warn_files(stray, "image outside a class folder; it is ignored", "images lie outside class folders",
                       "클래스 폴더 밖에 있는 이미지라 무시합니다", "클래스 폴더 밖의 이미지")
        count = 0
        classes: set[str] = set()
        for c in class_dirs(d):
            imgs = list_images(c, root)
            if not imgs:
                out.warning(c, "class folder has no images", "클래스 폴더에 이미지가 없습니다")
                continue
            classes.add(c.name)
            count += len(imgs)
            for img in imgs:
                check_image(img, out)
        report.counts[split] = count
        per_split[split] = classes
        if count == 0:
            out.error(d, f"{split} split has no images: add {d.name}/<class>/*.jpg",
                      f"{split} 분할에 이미지가 없습니다: {d.name}/<클래스>/*.jpg를 넣어 주세요")
    train, val_classes = per_split.get("train", set()), per_split.get("val")
    report.classes = sorted(train)
    if task == "classify" and "train" in per_split and len(train) < 2:
        out.error("train", f"{len(train)} class folder(s) with images; classification needs at least 2 classes",
                  f"이미지가 있는 클래스 폴더가 {len(train)}개입니다: 분류에는 클래스가 2개 이상 필요합니다")
    if val is not None and val_classes is not None and train:
        for c in sorted(train - val_classes):
            out.warning(f"{val.name}/{c}", f"class {c!r} has training images but none in {val.name}/",
                        f"클래스 {c!r}은(는) 학습 이미지는 있지만 {val.name}/에는 없습니다")
        for c in sorted(val_classes - train):
            out.error(f"{val.name}/{c}", f"class {c!r} is in {val.name}/ but not in train/: add train images or remove it",
                      f"클래스 {c!r}은(는) {val.name}/에는 있지만 train/에는 없습니다: 학습 이미지를 넣거나 지워 주세요")
