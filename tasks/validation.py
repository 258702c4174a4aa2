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

import hashlib
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
    # the health report (:func:`health`): per split images, labelled, background, unreadable, instances per
    # class, image sizes and duplicates; train/val leakage; classes with no training instance
    stats: dict = field(default_factory=dict)

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


@dataclass
class _SplitStats:
    images: int = 0
    unreadable: int = 0
    labelled: int = 0  # images with at least one valid object (YOLO) or in a class folder (ImageFolder)
    annotated: int = 0  # images whose label file has at least one row, valid or not (YOLO)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    hashes: dict[str, list[str]] = field(default_factory=dict)  # sha256 of the file -> its names
    instances: dict[int | str, int] = field(default_factory=dict)  # class id (YOLO) or name -> objects/images


class _Collector:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.splits: dict[str, _SplitStats] = {}
        self.split = "train"  # the split being checked

    @property
    def stats(self) -> _SplitStats:
        return self.splits.setdefault(self.split, _SplitStats())

    def seen(self, p: Path, size: tuple[int, int]) -> None:
        """A readable image of the current split: its size and content hash go into the health report."""
        with open(p, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        self.stats.sizes.append(size)
        self.stats.hashes.setdefault(digest, []).append(self.name(p))

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
    out.stats.images += 1
    if not _check_image(p, out):
        out.stats.unreadable += 1
        return False
    return True


def _check_image(p: Path, out: _Collector) -> bool:
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
    out.seen(p, (w, h))
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
    report.stats = health(out, report)
    return report


def _size_summary(sizes: list[tuple[int, int]]) -> dict[str, list[int]]:
    """min, median and max of width and height, in pixels, each taken on its own."""
    if not sizes:
        return {}
    ws, hs = sorted(w for w, _ in sizes), sorted(h for _, h in sizes)
    mid = len(sizes) // 2
    return {"min": [ws[0], hs[0]], "median": [ws[mid], hs[mid]], "max": [ws[-1], hs[-1]]}


def health(out: _Collector, report: ValidationReport) -> dict:
    """The health report of a checked dataset, and the warnings it implies (added to ``out``).

    Returns ``{"splits": {split: {images, labelled, background, unreadable, instances: {class: n},
    image_size: {min, median, max: [w, h] px}, duplicates}}, "leakage": {count, examples: [[a, b]]},
    "empty_classes": [names]}``. ``instances`` counts objects per class for YOLO tasks and images per
    class folder for ImageFolder; ``background`` counts readable images without an object;
    ``duplicates`` counts images whose bytes equal an earlier image's in the same split; leakage is
    the same bytes in train and in val or test (the val metrics would overstate)."""
    names = report.classes
    yolo = report.format == "yolo"
    splits: dict[str, dict] = {}
    for split, st in out.splits.items():
        if split not in report.counts:
            continue
        instances = {n: st.instances.get(i if yolo else n, 0) for i, n in enumerate(names)}
        splits[split] = {
            "images": st.images, "labelled": st.labelled, "unreadable": st.unreadable,
            "background": max(0, st.images - st.unreadable - st.labelled),
            "instances": instances, "image_size": _size_summary(st.sizes),
            "duplicates": sum(len(v) - 1 for v in st.hashes.values()),
        }
        dup = [v for v in st.hashes.values() if len(v) > 1]
        if dup:
            n = sum(len(v) - 1 for v in dup)
            out.warning(dup[0][0], f"{n} image(s) in {split} repeat another {split} image byte for byte "
                                   f"(e.g. {dup[0][0]} = {dup[0][1]}); they weigh double in training",
                        f"{split}의 이미지 {n}개가 같은 분할의 다른 이미지와 똑같습니다 (예: {dup[0][0]} = {dup[0][1]})")
    train = out.splits.get("train")
    leaks: list[list[str]] = []
    if train is not None:
        for split in ("val", "test"):
            other = out.splits.get(split)
            if other is None or split not in report.counts:
                continue
            for digest, files in other.hashes.items():
                if digest in train.hashes:
                    leaks.append([train.hashes[digest][0], files[0]])
    if leaks:
        out.warning(leaks[0][1], f"{len(leaks)} val/test image(s) are also in train (same bytes, e.g. {leaks[0][0]} = "
                                 f"{leaks[0][1]}): the val metrics will overstate how well the model does on new "
                                 "images; remove them from one split",
                    f"검증/테스트 이미지 {len(leaks)}개가 학습 분할에도 있습니다 (예: {leaks[0][0]} = {leaks[0][1]}): "
                    "검증 지표가 실제보다 좋게 나옵니다. 한쪽 분할에서 지워 주세요")
    empty: list[str] = []
    if "train" in splits and splits["train"]["images"] and (not yolo or out.splits["train"].annotated):
        empty = [n for n, k in splits["train"]["instances"].items() if k == 0]
        for n in empty[:MAX_LISTED]:
            out.warning(report.format == "yolo" and "data.yaml" or "train", f"class {n!r} has no instance in train: "
                        "the model cannot learn it; remove it from the class names or add labelled images",
                        f"클래스 {n!r}의 학습 인스턴스가 없습니다: 모델이 배울 수 없습니다. 클래스 목록에서 빼거나 "
                        "라벨이 있는 이미지를 넣어 주세요")
    return {"splits": splits, "leakage": {"count": len(leaks), "examples": leaks[:MAX_LISTED]}, "empty_classes": empty}


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
    objects = 0
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
        if cls % 1 == 0 and 0 <= cls < nc:
            out.stats.instances[int(cls)] = out.stats.instances.get(int(cls), 0) + 1
            objects += 1
    if objects:
        out.stats.labelled += 1
    if any(line.strip() for line in text.splitlines()):
        out.stats.annotated += 1
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
        out.split = split
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
    if images and not out.stats.annotated and (task != "pose" or kpt is not None):
        _no_labelled_image(images, out)
    else:
        out.warn_files(unlabeled, "no label file; trained as a background image (nothing to find)",
                       "images have no label", "라벨 파일이 없어 배경 이미지(찾을 것이 없는 이미지)로 학습합니다",
                       "라벨이 없는 이미지")
    orphans: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            label_dir = label_path(entry / "x.jpg").parent
            if label_dir.is_dir() and within(root, os.path.relpath(label_dir, root)) is not None:
                orphans += [t for t in sorted(label_dir.rglob("*.txt")) if t not in labels]
    out.warn_files(orphans, "label file without a matching image; it is ignored", "label files have no image",
                   "짝이 되는 이미지가 없는 라벨 파일이라 무시합니다", "이미지가 없는 라벨 파일")


def _no_labelled_image(images: list[Path], out: _Collector) -> None:
    """A split whose images have no object at all: an error (it would train or measure on nothing)
    that says where YOLO looked and where label files with the images' names are."""
    root, split = out.root, out.split
    first = images[0]
    stems = {img.stem for img in images}
    found: dict[Path, int] = {}
    for t in root.rglob("*.txt"):
        if t.stem in stems:
            found[t.parent] = found.get(t.parent, 0) + 1
    where = max(found, key=lambda d: (d.name == first.parent.name, found[d])) if found else None  # labels/val for val
    msg = (f"{split} split: none of its {len(images)} images has a labelled object. YOLO finds an image's labels by "
           f"replacing /images/ with /labels/ in its path, so {out.name(first)} needs {out.name(label_path(first))}")
    ko = (f"{split} 분할의 이미지 {len(images)}개 중 라벨이 있는 이미지가 하나도 없습니다. YOLO는 이미지 경로의 /images/를 "
          f"/labels/로 바꿔 라벨을 찾으므로 {out.name(first)}에는 {out.name(label_path(first))}이(가) 필요합니다")
    if where is not None and where != label_path(first).parent:
        msg += f"; {out.name(where)}/ holds {found[where]} label files with the same names (stems) as these images"
        ko += f". {out.name(where)}/에 이미지와 같은 이름의 라벨 파일이 {found[where]}개 있습니다"
    capital = next((part for part in first.relative_to(root).parts[:-1] if part.lower() == "images" and part != "images"),
                   None)
    if capital:
        msg += (f". The folder is named {capital!r} with a capital letter: rename {capital}/ to images/ "
                "(lower-case) and import again")
        ko += f". 폴더 이름이 대문자로 시작하는 {capital!r}입니다: {capital}/를 소문자 images/로 바꾸고 다시 가져오세요"
    else:
        msg += ": put each image's label file there (same name, .txt), or fix the split's entry in data.yaml"
        ko += ": 각 이미지의 라벨 파일(같은 이름, .txt)을 그 위치에 두거나 data.yaml의 분할 항목을 고쳐 주세요"
    out.error(out.name(first.parent), msg, ko)


# -------------------------------------------------------------------------------------- ImageFolder


def _validate_imagefolder(root: Path, task: str, out: _Collector, report: ValidationReport) -> None:
    val = find_val_dir(root)
    split_dirs = {"train": root / "train", "val": val}
    per_split: dict[str, set[str]] = {}
    for split, d in split_dirs.items():
        out.split = split
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
                if check_image(img, out):
                    out.stats.instances[c.name] = out.stats.instances.get(c.name, 0) + 1
                    out.stats.labelled += 1
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


def describe(report: dict, *, limit: int = 30) -> str:
    """A stored report (:meth:`ValidationReport.to_dict` with ``stats``, ``notes`` and ``dropped``) as
    the lines `vtp datasets add` and `vtp datasets show` print: what vtp did, a table per split, image
    sizes, leakage, and every error and warning (up to ``limit``)."""
    lines: list[str] = [f"  note: {n}" for n in report.get("notes") or []]
    stats = report.get("stats") or {}
    splits = stats.get("splits") or {}
    if splits:
        lines.append(f"  {'split':<6} {'images':>6} {'labelled':>8} {'background':>10} {'unreadable':>10} {'dups':>5}"
                     "  instances per class")
        for split, st in splits.items():
            inst = ", ".join(f"{k} {v}" for k, v in list(st["instances"].items())[:12])
            more = len(st["instances"]) - 12
            inst += f", ... {more} more" if more > 0 else ""
            lines.append(f"  {split:<6} {st['images']:>6} {st['labelled']:>8} {st['background']:>10} "
                         f"{st['unreadable']:>10} {st['duplicates']:>5}  {inst}")
        sizes = [(s, st["image_size"]) for s, st in splits.items() if st.get("image_size")]
        for split, size in sizes:
            lines.append(f"  {split} image size (w x h px): median {size['median'][0]}x{size['median'][1]}, "
                         f"min {size['min'][0]}x{size['min'][1]}, max {size['max'][0]}x{size['max'][1]}")
    leakage = (stats.get("leakage") or {}).get("count")
    if leakage:
        lines.append(f"  leakage: {leakage} val/test image(s) are also in train (same bytes)")
    if report.get("dropped_count"):
        lines.append(f"  left out {report['dropped_count']} file(s) that are not dataset files "
                     f"(e.g. {report['dropped'][0]['file']}: {report['dropped'][0]['reason']})")
    problems = report.get("problems") or []
    ordered = [p for p in problems if p["severity"] == "error"] + [p for p in problems if p["severity"] == "warning"]
    for p in ordered[:limit]:
        lines.append(f"  {p['severity']}: {p['file']}: {p['message']}")
    if len(ordered) > limit:
        lines.append(f"  ... and {len(ordered) - limit} more (vtp datasets show NAME --json lists them all)")
    return "\n".join(lines)

