"""Convert other labelling tools' exports to a YOLO dataset folder, as :func:`tasks.dataset_formats.coco_to_yolo`
does for COCO: ``data.yaml`` (``names``), ``images/<split>/`` (hard links, or copies, of the source
images) and ``labels/<split>/*.txt`` (normalized). The source folder is never changed.

Formats (:func:`detect` names them, :func:`convert` converts them):

``voc``
    Pascal VOC (LabelImg, CVAT "PASCAL VOC 1.1", Roboflow "Pascal VOC"): ``Annotations/*.xml``,
    ``JPEGImages/``, ``ImageSets/Main/{train,val,trainval,test}.txt``, an optional CVAT
    ``labelmap.txt`` (``name:r,g,b::``; ``background`` is not a class). Roboflow's flat variant
    (``train/``, ``valid/`` holding images and XML side by side) is read too. Boxes only. VOC
    coordinates are 1-based and inclusive: ``xmin=1, xmax=10`` covers pixels 0..9, i.e. the
    0-based box [xmin - 1, xmax] (as Detectron2 reads VOC).
``darknet``
    CVAT "YOLO 1.1" / darknet: ``obj.names``, ``obj.data`` (``train = data/train.txt``,
    ``valid = data/valid.txt``), list files of image paths (``data/obj_train_data/x.PNG``: the
    ``data/`` prefix names the export folder itself), images and ``.txt`` labels side by side.
``labelme``
    LabelMe: one ``.json`` per image (``shapes`` of rectangles, polygons, circles; ``imagePath``
    relative to the JSON). The image file is preferred; the embedded ``imageData`` is decoded
    (bounded) only when the file is missing.
``labelstudio``
    Label Studio "JSON" export (a list of tasks; ``rectanglelabels`` / ``polygonlabels`` in percent
    of ``original_width``/``original_height``; images found by file name inside the dataset, with or
    without the 8-hex-digit upload prefix ``1a2b3c4d-``) and its "YOLO" export (``classes.txt``,
    ``images/``, ``labels/``).

Datasets are closed worlds (docs/security.md, "Datasets"): every path the data names is checked
with :func:`core.dataset_layout.within`; a path that leads outside is refused with one message
whether or not the file exists. XML is parsed by defusedxml (or expat, when it is missing) with DOCTYPE
and ENTITY declarations refused (no entity expansion, no external entities); JSON and XML files over ``MAX_FILE_BYTES`` are refused;
at most ``MAX_CLASSES`` classes. Every problem is collected first; when there is one, a
:class:`DatasetError` lists them all ("file:line-or-element: what") and nothing is written.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree.ElementTree import Element, ParseError, TreeBuilder
from xml.parsers import expat

import yaml
from PIL import Image, UnidentifiedImageError

from core.dataset_layout import (
    MAX_CLASSES,
    OUTSIDE,
    SPLIT_ALIASES,
    SPLITS,
    decode_text,
    inside,
    is_image,
    within,
)
from core.errors import DatasetError

try:  # a declared dependency; the expat fallback below refuses the same documents
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as _defused_fromstring
except ImportError:  # pragma: no cover - depends on the environment
    DefusedXmlException = ValueError  # type: ignore[assignment,misc]
    _defused_fromstring = None

FORMATS = {"voc": "Pascal VOC", "darknet": "CVAT YOLO 1.1 / darknet", "labelme": "LabelMe",
           "labelstudio": "Label Studio"}
TASKS = {"voc": ("detect",), "darknet": ("detect", "segment"), "labelme": ("detect", "segment"),
         "labelstudio": ("detect", "segment")}
MAX_FILE_BYTES = 50_000_000  # one JSON or XML annotation file
MAX_LIST_BYTES = 50_000_000  # one .txt list or label file
MAX_IMAGE_DATA = 50_000_000  # a LabelMe imageData, decoded
MAX_LISTED = 50  # problems shown in the message (all are in DatasetError.problems)
TOLERANCE = 0.01  # normalized coordinates accepted in [-0.01, 1.01] (as Ultralytics), then clamped
SNIFF = 20  # files opened by detect() to recognise a layout
CIRCLE_POINTS = 32
NOT_CLASSES = frozenset({"background", "_background_", "__ignore__"})
_UPLOAD_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-(.+)$")  # Label Studio: 1a2b3c4d-cat.jpg
_SPLIT_OF_FOLDER = {alias: split for split, aliases in SPLIT_ALIASES.items() for alias in aliases}
_SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}


# ------------------------------------------------------------------------------------------- helpers


class _Refused(ValueError):
    """A file vtp will not read (too large, DOCTYPE, not the expected shape); the text says why."""


def _read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise _Refused(f"larger than {limit // 1_000_000} MB; split it or remove what is not annotation")
    return raw


def _read_json(path: Path) -> Any:  # noqa: ANN401 - whatever the JSON holds
    raw = _read_bytes(path)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _Refused(f"cannot be read as UTF-8 JSON ({e}); fix or re-export it") from None


def _read_text(path: Path, limit: int = MAX_LIST_BYTES, notes: list[str] | None = None) -> str:
    """Text in UTF-8, or in the encoding :func:`decode_text` recognises (obj.names from Windows);
    ``notes`` gets a sentence when it was not UTF-8."""
    try:
        text, encoding = decode_text(_read_bytes(path, limit), path.name)
    except DatasetError as e:
        raise _Refused(str(e)) from None
    if encoding and notes is not None:
        notes.append(f"{path.name}: not UTF-8; read as {encoding} (as Windows Notepad saves 'ANSI' text): check the "
                     "class names, or re-save the file as UTF-8")
    return text


_DOCTYPE = ("has a DOCTYPE or ENTITY declaration, which vtp refuses (entities can expand without bound); "
            "remove it")


def parse_xml(raw: bytes) -> Element:
    """Parse XML bytes refusing DOCTYPE and ENTITY declarations (no entity can expand, nothing
    external is fetched): defusedxml when installed, else expat with the same refusals. Raises
    ValueError saying why a document is refused."""
    if _defused_fromstring is not None:
        try:
            return _defused_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException:
            raise _Refused(_DOCTYPE) from None
        except ParseError as e:
            raise _Refused(f"is not well-formed XML ({e}); fix or re-export it") from None
    return _parse_expat(raw)


def _parse_expat(raw: bytes) -> Element:
    builder = TreeBuilder()
    parser = expat.ParserCreate()

    def refuse(*_: Any) -> None:
        raise _Refused(_DOCTYPE)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as e:
        raise _Refused(f"is not well-formed XML ({e}); fix or re-export it") from None
    return builder.close()


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image header (nothing decoded), or None when PIL cannot open it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _number(v: Any) -> float | None:  # noqa: ANN401 - any JSON/XML value
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _positive_int(v: Any) -> int | None:  # noqa: ANN401 - any JSON/XML value
    f = _number(v)
    return int(f) if f is not None and f >= 1 else None


def _fmt(cls: int, values: list[float]) -> str:
    return " ".join([str(cls), *(f"{v:.6f}" for v in values)])


def _clamp(v: float, hi: float) -> float:
    return min(hi, max(0.0, v))


def _box_values(x0: float, y0: float, x1: float, y1: float, w: float, h: float) -> list[float] | None:
    """Normalized cx cy bw bh of a pixel box clamped to the w x h image; None when nothing is left."""
    x0, x1, y0, y1 = _clamp(x0, w), _clamp(x1, w), _clamp(y0, h), _clamp(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]


def _polygon_values(points: list[tuple[float, float]], w: float, h: float) -> list[float] | None:
    """Normalized x y pairs of a pixel polygon clamped to the image; None when its box is empty."""
    pts = [(_clamp(x, w), _clamp(y, h)) for x, y in points]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if len(pts) < 3 or max(xs) <= min(xs) or max(ys) <= min(ys):
        return None
    return [v for x, y in pts for v in (x / w, y / h)]


def _outside(points: list[tuple[float, float]], w: float, h: float) -> bool:
    return any(x < 0 or y < 0 or x > w or y > h for x, y in points)


def _split_of_folders(rel: PurePosixPath) -> str | None:
    """The split a file's folders name (``train/``, ``valid/``...), nearest folder first."""
    return next((_SPLIT_OF_FOLDER[p.lower()] for p in reversed(rel.parts[:-1]) if p.lower() in _SPLIT_OF_FOLDER), None)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith(('s', 'x')) else 's'}"


@dataclass
class _Item:
    split: str | None  # None: not known yet (see _Job.settle_splits)
    source: Path | bytes  # an image file inside the dataset, or decoded LabelMe imageData
    name: str  # the output file name (made unique per split when written)
    lines: list[str]


@dataclass
class _Job:
    root: Path
    fmt: str
    task: str
    items: list[_Item] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what to tell, by kind

    def rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.name

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def image_files(self, folder: Path) -> list[Path]:
        """Images under ``folder`` (recursively, sorted) that stay inside the dataset, links followed."""
        if not folder.is_dir() or within(self.root, os.path.relpath(folder, self.root)) is None:
            return []
        real_root = Path(os.path.realpath(self.root))
        return sorted(p for p in folder.rglob("*")
                      if is_image(p) and p.is_file() and inside(Path(os.path.realpath(p)), real_root))

    def files(self, folder: Path, suffix: str, limit: int | None = None) -> list[Path]:
        """Files with ``suffix`` (any case) under ``folder``, recursively, sorted, inside the dataset."""
        real_root = Path(os.path.realpath(self.root))
        found: list[Path] = []
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() == suffix and p.is_file() and inside(Path(os.path.realpath(p)), real_root):
                found.append(p)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def settle_splits(self, where: str) -> None:
        """Items of no known split go to train; no val: test is used as val, else a note says the
        caller has to make one."""
        known = {i.split for i in self.items if i.split}
        loose = [i for i in self.items if i.split is None]
        for i in loose:
            i.split = "train"
        if loose and known:
            self.notes.append(f"{_plural(len(loose), 'image')} in no train/val/test folder put in train")
        if "val" not in known and "test" in known:
            for i in self.items:
                if i.split == "test":
                    i.split = "val"
            self.notes.append(f"{where} has no val split: used test as val")
        elif "val" not in known:
            self.notes.append(f"{where} has no val split: all images are train (make a val split from them)")


def _raise_problems(job: _Job) -> None:
    if not job.problems:
        return
    n = len(job.problems)
    shown = "\n  ".join(job.problems[:MAX_LISTED]) + (f"\n  ... and {n - MAX_LISTED} more" if n > MAX_LISTED else "")
    raise DatasetError(f"{FORMATS[job.fmt]} export {job.root} has {n} problem(s); fix them and convert again:\n  {shown}",
                       list(job.problems))


def _check_classes(job: _Job, classes: list[str], where: str) -> None:
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"{where}: more than {MAX_CLASSES} classes; vtp trains at most {MAX_CLASSES} classes")
    if not classes:
        _raise_problems(job)  # the files that could not be read say more than "no classes"
        raise DatasetError(f"{job.root}: the {FORMATS[job.fmt]} export names no classes (no labelled object and no "
                           "class list); label some objects and export again")


# ------------------------------------------------------------------------------------------ detect


def _looks_labelme(data: Any) -> bool:  # noqa: ANN401 - parsed JSON
    return isinstance(data, dict) and isinstance(data.get("shapes"), list) and "imagePath" in data


def _looks_labelstudio(data: Any) -> bool:  # noqa: ANN401 - parsed JSON
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict) and isinstance(data[0].get("data"), dict)
            and ("annotations" in data[0] or "predictions" in data[0]))


def _sniff_json(path: Path) -> Any:  # noqa: ANN401 - parsed JSON or None
    try:
        return _read_json(path)
    except (OSError, _Refused):
        return None


def _looks_voc(path: Path) -> bool:
    try:
        return parse_xml(_read_bytes(path)).tag == "annotation"
    except (OSError, ValueError):
        return False


def _ls_yolo(root: Path) -> bool:
    return (root / "classes.txt").is_file() and (root / "images").is_dir() and (root / "labels").is_dir()


def _ls_json_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.glob("*.json"))[:SNIFF] if p.is_file() and _looks_labelstudio(_sniff_json(p))]


def detect(root: Path) -> str | None:
    """``voc``, ``darknet``, ``labelme`` or ``labelstudio`` when ``root`` holds such an export, else None.
    At most a few annotation files are opened (size-capped, XML without DOCTYPE)."""
    root = Path(root)
    if not root.is_dir():
        return None
    job = _Job(root.resolve(), "voc", "detect")
    if (root / "Annotations").is_dir() and any(_looks_voc(p) for p in job.files(job.root / "Annotations", ".xml", SNIFF)):
        return "voc"
    if (root / "obj.names").is_file() or (root / "obj.data").is_file():
        return "darknet"
    if _ls_yolo(root) or _ls_json_files(job.root):
        return "labelstudio"
    if any(_looks_labelme(_sniff_json(p)) for p in job.files(job.root, ".json", SNIFF)):
        return "labelme"
    if any(_looks_voc(p) for p in job.files(job.root, ".xml", SNIFF)):
        return "voc"
    return None


# -------------------------------------------------------------------------------------- Pascal VOC


def _labelmap(job: _Job, path: Path) -> list[str]:
    """Class names of a CVAT labelmap.txt (``name:r,g,b:parts:actions``; ``#`` comments); the
    background entry is not a class."""
    classes: list[str] = []
    for n, line in enumerate(_read_text(path, notes=job.notes).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(":", 1)[0].strip()
        if not name:
            job.problem(f"{job.rel(path)}:{n}", "a line with no class name; write `name:r,g,b::`")
        elif name.lower() in NOT_CLASSES:
            job.notes.append(f"'{name}' in {job.rel(path)} is not a class")
        elif name in classes:
            job.problem(f"{job.rel(path)}:{n}", f"class {name!r} is listed twice; keep one line per class")
        else:
            classes.append(name)
    return classes


@dataclass
class _VocObject:
    where: str
    name: str
    box: tuple[float, float, float, float] | None  # xmin ymin xmax ymax as written


@dataclass
class _VocFile:
    split: str | None
    image: Path
    size: tuple[int, int]
    objects: list[_VocObject]


def _voc_lists(job: _Job, ann_by_stem: dict[str, Path]) -> dict[str, list[str]] | None:
    """Split -> stems from ImageSets/Main/{train,val,trainval,test}.txt, or None when there are none."""
    main = job.root / "ImageSets" / "Main"
    lists: dict[str, list[str]] = {}
    for name in ("train", "val", "trainval", "test"):
        f = main / f"{name}.txt"
        if not f.is_file():
            continue
        stems: list[str] = []
        for n, line in enumerate(_read_text(f).splitlines(), start=1):
            stem = line.split()[0] if line.split() else ""
            if not stem:
                continue
            if within(job.root, f"{stem}.xml", job.root / "Annotations") is None or "/" in stem or "\\" in stem:
                job.problem(f"{job.rel(f)}:{n}", f"{stem!r} {OUTSIDE}")
            elif stem not in stems:
                stems.append(stem)
        lists[name] = stems
    if not lists:
        return None
    where = "ImageSets/Main"
    if "train" in lists:
        out = {"train": lists["train"]}
        if "val" in lists:
            out["val"] = lists["val"]
            if "test" in lists:
                out["test"] = lists["test"]
        elif "trainval" in lists and [s for s in lists["trainval"] if s not in set(lists["train"])]:
            out["val"] = [s for s in lists["trainval"] if s not in set(lists["train"])]
            job.notes.append(f"{where} has no val.txt: used the trainval.txt images not in train.txt as val")
        elif "test" in lists:
            out["val"] = lists["test"]
            job.notes.append(f"{where} has no val.txt: used test.txt as val")
    elif "trainval" in lists:
        if "val" in lists:
            out = {"train": [s for s in lists["trainval"] if s not in set(lists["val"])], "val": lists["val"]}
            job.notes.append(f"{where} has no train.txt: used the trainval.txt images not in val.txt as train")
        elif "test" in lists:
            out = {"train": lists["trainval"], "val": lists["test"]}
            job.notes.append(f"{where} has trainval.txt and test.txt only: used trainval as train and test as val")
        else:
            out = {"train": lists["trainval"]}
    else:
        listed = {s for stems in lists.values() for s in stems}
        out = {"train": [s for s in ann_by_stem if s not in listed], **{k: v for k, v in lists.items()}}
        job.notes.append(f"{where} has no train.txt: the annotation files in no list are train")
    out = {k: v for k, v in out.items() if v}
    if "val" not in out:
        job.notes.append(f"{where} has no val split: all images are train (make a val split from them)")
    listed = {s for stems in out.values() for s in stems}
    unlisted = [s for s in ann_by_stem if s not in listed]
    if unlisted:
        job.notes.append(f"{_plural(len(unlisted), 'annotation file')} in no {where} list left out "
                         f"(e.g. {ann_by_stem[unlisted[0]].name})")
    both = set(out.get("train", [])) & set(out.get("val", []))
    if both:
        job.notes.append(f"{_plural(len(both), 'image')} listed in both train and val")
    return out


class _ImageIndex:
    """Images of one folder (recursively) by lower-case name and by lower-case stem."""

    def __init__(self, job: _Job, folder: Path):
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        for p in job.image_files(folder):
            self.by_name.setdefault(p.name.lower(), p)
            self.by_stem.setdefault(p.stem.lower(), p)

    def find(self, name: str, stem: str) -> Path | None:
        return self.by_name.get(name.lower()) or self.by_stem.get(Path(name).stem.lower()) or self.by_stem.get(stem.lower())


def _voc_file(job: _Job, xml: Path, split: str | None, folder: Path, indexes: dict[Path, _ImageIndex]) -> _VocFile | None:
    """One VOC XML file read; its image looked up in ``folder`` (JPEGImages/, or the XML's own folder)."""
    where = job.rel(xml)
    try:
        doc = parse_xml(_read_bytes(xml))
    except (OSError, ValueError) as e:
        job.problem(where, str(e) if isinstance(e, _Refused) else f"cannot be read ({e})")
        return None
    if doc.tag != "annotation":
        job.problem(where, f"root element is <{doc.tag}>, not <annotation>: not a Pascal VOC file")
        return None
    filename = (doc.findtext("filename") or "").strip().replace("\\", "/")
    if filename and within(job.root, filename, folder) is None:
        job.problem(f"{where}: <filename>", f"{filename!r} {OUTSIDE}")
        return None
    if folder not in indexes:
        indexes[folder] = _ImageIndex(job, folder)
    image = indexes[folder].find(PurePosixPath(filename).name if filename else "", xml.stem)
    if image is None:
        job.problem(f"{where}: <filename>", f"image {filename or xml.stem!r} not found in {job.rel(folder) or '.'}/")
        return None
    header = _image_size(image)
    if header is None:
        job.problem(job.rel(image), "cannot be opened as an image; replace or remove it")
        return None
    w, h = _positive_int(doc.findtext("size/width")), _positive_int(doc.findtext("size/height"))
    size = (w, h) if w and h else header
    if size != header:
        job.count("size_differs")
    objects: list[_VocObject] = []
    for k, obj in enumerate(doc.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        owhere = f"{where}: object {k} ({name!r})"
        if not name:
            job.problem(f"{where}: object {k}", "has no <name>; give it a class name")
            continue
        if _number(obj.findtext("difficult")) == 1:
            job.count("difficult")
        bnd = obj.find("bndbox")
        vals = [_number(bnd.findtext(t)) if bnd is not None else None for t in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in vals):
            job.problem(owhere, "needs a <bndbox> with numeric xmin, ymin, xmax and ymax")
            continue
        objects.append(_VocObject(owhere, name, tuple(vals)))  # type: ignore[arg-type]
    return _VocFile(split, image, size, objects)


def _voc(job: _Job) -> list[str]:
    ann_dir = job.root / "Annotations"
    labelmap = job.root / "labelmap.txt"
    fixed = _labelmap(job, labelmap) if labelmap.is_file() else None
    parsed: list[_VocFile] = []
    if ann_dir.is_dir():
        ann_by_stem = {p.stem: p for p in job.files(ann_dir, ".xml") if p.parent == ann_dir}
        images = job.root / "JPEGImages"
        indexes: dict[Path, _ImageIndex] = {images: _ImageIndex(job, images)}
        lists = _voc_lists(job, ann_by_stem)
        if lists is None:
            job.notes.append("no ImageSets/Main lists, so no val split: all images are train (make a val split from them)")
            lists = {"train": list(ann_by_stem)}
        for split, stems in lists.items():
            for stem in stems:
                xml = ann_by_stem.get(stem)
                if xml is None:
                    image = indexes[images].find("", stem)
                    if image is None:
                        job.problem(f"ImageSets/Main/{split}.txt", f"{stem!r} has no Annotations/{stem}.xml "
                                    "and no image in JPEGImages/; remove the line or add the files")
                    elif (size := _image_size(image)) is None:
                        job.problem(job.rel(image), "cannot be opened as an image; replace or remove it")
                    else:
                        job.count("no_xml")
                        parsed.append(_VocFile(split, image, size, []))
                    continue
                f = _voc_file(job, xml, split, images, indexes)
                if f is not None:
                    parsed.append(f)
    else:  # Roboflow's flat layout: <split>/*.xml beside the images
        indexes = {}
        for xml in job.files(job.root, ".xml"):
            if xml.name == "labelmap.xml":
                continue
            f = _voc_file(job, xml, _split_of_folders(PurePosixPath(job.rel(xml))), xml.parent, indexes)
            if f is not None:
                parsed.append(f)
    classes = fixed if fixed is not None else sorted({o.name for f in parsed for o in f.objects})
    _check_classes(job, classes, job.rel(labelmap) if fixed is not None else str(job.root))
    ids = {c: i for i, c in enumerate(classes)}
    n_objects = 0
    for f in parsed:
        w, h = f.size
        lines: list[str] = []
        for o in f.objects:
            if o.name not in ids:
                job.problem(o.where, f"class {o.name!r} is not in labelmap.txt ({', '.join(classes)}); "
                            "add it there or rename the object")
                continue
            xmin, ymin, xmax, ymax = o.box  # type: ignore[misc]
            if xmax < xmin or ymax < ymin:
                job.problem(o.where, f"empty box: xmax {xmax:g} < xmin {xmin:g} or ymax {ymax:g} < ymin {ymin:g}")
                continue
            x0, y0, x1, y1 = xmin - 1, ymin - 1, xmax, ymax  # 1-based inclusive -> 0-based edges
            vals = _box_values(x0, y0, x1, y1, w, h)
            if vals is None:
                job.problem(o.where, f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {w}x{h} image")
                continue
            if _outside([(x0, y0), (x1, y1)], w, h):
                job.count("clamped")
            lines.append(_fmt(ids[o.name], vals))
            n_objects += 1
        job.items.append(_Item(f.split, f.image, f.image.name, lines))
    if not ann_dir.is_dir():
        job.settle_splits("the export")
    job.notes.insert(0, f"converted {_plural(len(parsed) - job.counts.get('no_xml', 0), 'Pascal VOC file')} "
                        f"({_plural(n_objects, 'object')})")
    if job.counts.get("no_xml"):
        job.notes.append(f"{_plural(job.counts['no_xml'], 'listed image')} without an annotation file kept as "
                         "background (no objects)")
    if job.counts.get("difficult"):
        job.notes.append(f"{_plural(job.counts['difficult'], 'object')} marked difficult kept")
    if job.counts.get("clamped"):
        job.notes.append(f"{_plural(job.counts['clamped'], 'box')} reaching past the image edge clamped to it")
    if job.counts.get("size_differs"):
        job.notes.append(f"{_plural(job.counts['size_differs'], 'file')}' <size> differs from the image's own size; "
                         "boxes were normalized by <size>, the frame they were drawn in")
    return classes


# ---------------------------------------------------------------------------- CVAT YOLO 1.1 / darknet


def _data_path(job: _Job, value: str, where: str, strict: bool = True) -> Path | None:
    """A file named in obj.data or a list: relative to the export folder, where a leading ``data/``
    names the export folder itself (darknet's working folder layout). None when not found, or when
    it leads outside: a problem (``strict``, a list line) or a note (an obj.data entry, for which
    the export's own obj.names / train.txt / valid.txt are used instead; nothing outside is read)."""
    value = value.strip().replace("\\", "/").removeprefix("./")
    candidates = [value]
    stripped = value
    while stripped.startswith("data/"):
        stripped = stripped[len("data/"):]
        candidates.append(stripped)
    found = [within(job.root, c) for c in candidates]
    if all(p is None for p in found):
        if strict:
            job.problem(where, f"{value!r} {OUTSIDE}")
        else:
            job.notes.append(f"{where} {value!r} leads outside the export folder: ignored")
        return None
    return next((p for p in found if p is not None and p.is_file()), None)


def _yolo_label(job: _Job, path: Path, n_classes: int, names_file: str) -> list[list[float] | tuple[int, list[float]]]:
    """Rows (class, values) of a YOLO/darknet label file; problems for bad rows."""
    rows: list[Any] = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{job.rel(path)}:{n}"
        nums = [_number(p) for p in parts]
        if any(v is None for v in nums) or not (len(parts) == 5 or (len(parts) >= 7 and len(parts) % 2 == 1)):
            job.problem(where, "expected `class x_center y_center width height` (or `class x1 y1 x2 y2 x3 y3 ...`), "
                        "numbers only")
            continue
        cls = nums[0]
        if cls != int(cls) or not 0 <= cls < n_classes:
            job.problem(where, f"class id {parts[0]} is not in {names_file} (ids 0..{n_classes - 1})")
            continue
        vals = nums[1:]
        if any(v < -TOLERANCE or v > 1 + TOLERANCE for v in vals):  # type: ignore[operator]
            job.problem(where, "coordinates must be normalized to 0..1 (divide pixels by the image width and height)")
            continue
        vals = [_clamp(v, 1.0) for v in vals]  # type: ignore[arg-type]
        if len(vals) == 4 and (vals[2] <= 0 or vals[3] <= 0):
            job.problem(where, "box width and height must be > 0")
            continue
        rows.append((int(cls), vals))
    return rows


def _yolo_lines(job: _Job, rows: list[Any]) -> list[str]:
    lines = []
    for cls, vals in rows:
        if len(vals) == 4:
            job.count("boxes")
            lines.append(_fmt(cls, vals))
        elif job.task == "segment":
            lines.append(_fmt(cls, vals))
        else:  # a polygon row in a detect dataset: its box
            xs, ys = vals[0::2], vals[1::2]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            lines.append(_fmt(cls, [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]))
    return lines


def _refuse_boxes_for_segment(job: _Job, what: str) -> None:
    if job.task == "segment" and job.counts.get("boxes"):
        raise DatasetError(f"{job.root}: the {what} labels are boxes ({_plural(job.counts['boxes'], 'box row')}); "
                           "segment needs polygons: use task detect, or export polygons (e.g. CVAT 'Ultralytics "
                           "YOLO Segmentation 1.0')")


def _darknet(job: _Job) -> list[str]:
    data_file = job.root / "obj.data"
    data: dict[str, str] = {}
    if data_file.is_file():
        for line in _read_text(data_file, 1_000_000).splitlines():
            key, sep, value = line.partition("=")
            if sep and value.strip():
                data[key.strip().lower()] = value.strip()
    names_file = _data_path(job, data["names"], "obj.data: names", strict=False) if "names" in data else None
    names_file = names_file or (job.root / "obj.names" if (job.root / "obj.names").is_file() else None)
    if names_file is None:
        _raise_problems(job)
        raise DatasetError(f"{job.root}: no obj.names (one class name per line); the darknet export needs it: "
                           "export again with it, or add it")
    classes = [ln.strip() for ln in _read_text(names_file, 1_000_000, job.notes).splitlines() if ln.strip()]
    _check_classes(job, classes, job.rel(names_file))
    declared = _number(data.get("classes"))
    if declared is not None and int(declared) != len(classes):
        job.notes.append(f"obj.data says classes = {data['classes']} but {job.rel(names_file)} names "
                         f"{len(classes)}; used {job.rel(names_file)}")
    lists: dict[str, Path | None] = {}
    for split, key, defaults in (("train", "train", ("train.txt",)), ("val", "valid", ("valid.txt", "val.txt"))):
        p = _data_path(job, data[key], f"obj.data: {key}", strict=False) if key in data else None
        lists[split] = p or next((job.root / d for d in defaults if (job.root / d).is_file()), None)
    if lists["train"] is None and (job.root / "obj_train_data").is_dir():
        job.notes.append("no train.txt: used the images in obj_train_data/ as train")
    n_labels = n_background = 0
    for split, lst in lists.items():
        if lst is None:
            images = job.image_files(job.root / "obj_train_data") if split == "train" else []
        else:
            images = []
            for n, line in enumerate(_read_text(lst).splitlines(), start=1):
                entry = line.strip()
                if not entry:
                    continue
                where = f"{job.rel(lst)}:{n}"
                img = _data_path(job, entry, where)
                if img is None:
                    if not job.problems or not job.problems[-1].startswith(where):
                        job.problem(where, f"image {entry!r} not found in the export")
                    continue
                if not is_image(img):
                    job.problem(where, f"{entry!r} is not an image file")
                    continue
                images.append(img)
        for img in images:
            if _image_size(img) is None:
                job.problem(job.rel(img), "cannot be opened as an image; replace or remove it")
                continue
            label = img.with_suffix(".txt")
            if label.is_file():
                lines = _yolo_lines(job, _yolo_label(job, label, len(classes), job.rel(names_file)))
                n_labels += 1
            else:
                lines = []
                n_background += 1
            job.items.append(_Item(split, img, img.name, lines))
    if not any(i.split == "train" for i in job.items) and not job.problems:
        raise DatasetError(f"{job.root}: no train images: train.txt (or obj_train_data/) names none; "
                           "export again with images")
    _refuse_boxes_for_segment(job, "CVAT YOLO 1.1 / darknet")
    job.notes.insert(0, f"converted {_plural(n_labels, 'darknet label file')}")
    if not any(i.split == "val" for i in job.items):
        job.notes.append("no valid.txt: all images are train (make a val split from them)")
    if n_background:
        job.notes.append(f"{_plural(n_background, 'image')} without a label file kept as background (no objects)")
    return classes


# ------------------------------------------------------------------------------------------- LabelMe


def _class_list(job: _Job) -> tuple[list[str] | None, Path | None]:
    """A LabelMe labels.txt / classes.txt at the top (``__ignore__`` and ``_background_`` are no classes)."""
    for name in ("labels.txt", "classes.txt"):
        p = job.root / name
        if p.is_file():
            names = [ln.strip() for ln in _read_text(p, 1_000_000, job.notes).splitlines() if ln.strip()]
            skipped = [n for n in names if n.lower() in NOT_CLASSES]
            if skipped:
                job.notes.append(f"{', '.join(repr(s) for s in skipped)} in {name} not a class")
            return [n for n in names if n.lower() not in NOT_CLASSES], p
    return None, None


def _decode_image_data(job: _Job, text: Any, where: str) -> tuple[bytes, tuple[int, int], str] | None:  # noqa: ANN401
    if not isinstance(text, str) or not text:
        return None
    if len(text) > MAX_IMAGE_DATA * 4 // 3 + 4:
        job.problem(f"{where}: imageData", f"larger than {MAX_IMAGE_DATA // 1_000_000} MB; put the image file beside "
                    "the JSON instead")
        return None
    try:
        raw = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        job.problem(f"{where}: imageData", "is not base64; put the image file beside the JSON instead")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                size, fmt = im.size, im.format or ""
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        job.problem(f"{where}: imageData", "is not an image; put the image file beside the JSON instead")
        return None
    return raw, size, _SUFFIX_OF_FORMAT.get(fmt, f".{fmt.lower() or 'png'}")


def _points(v: Any) -> list[tuple[float, float]] | None:  # noqa: ANN401 - JSON
    if not isinstance(v, list):
        return None
    out = []
    for p in v:
        if not (isinstance(p, (list, tuple)) and len(p) >= 2):
            return None
        x, y = _number(p[0]), _number(p[1])
        if x is None or y is None:
            return None
        out.append((x, y))
    return out


def _circle(c: tuple[float, float], edge: tuple[float, float]) -> list[tuple[float, float]]:
    r = math.dist(c, edge)
    return [(c[0] + r * math.cos(2 * math.pi * k / CIRCLE_POINTS), c[1] + r * math.sin(2 * math.pi * k / CIRCLE_POINTS))
            for k in range(CIRCLE_POINTS)]


def _shape_line(job: _Job, cls: int, kind: str, pts: list[tuple[float, float]], w: float, h: float,
                where: str) -> str | None:
    """One YOLO row of a rectangle / polygon (pixel points); a problem when nothing is inside the image."""
    if kind == "rectangle":
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        if x1 <= x0 or y1 <= y0:
            job.problem(where, "empty rectangle (zero width or height)")
            return None
    else:
        poly = pts
    vals = (_box_values(min(p[0] for p in poly), min(p[1] for p in poly), max(p[0] for p in poly),
                        max(p[1] for p in poly), w, h) if job.task == "detect" else _polygon_values(poly, w, h))
    if vals is None:
        job.problem(where, f"lies outside the {w:g}x{h:g} image (or has no area)")
        return None
    if _outside(poly, w, h):
        job.count("clamped")
    if job.task == "segment" and kind == "rectangle":
        job.count("rect_as_polygon")
    return _fmt(cls, vals)


def _labelme(job: _Job) -> list[str]:
    fixed, fixed_file = _class_list(job)
    docs: list[tuple[Path, dict]] = []
    for p in job.files(job.root, ".json"):
        try:
            data = _read_json(p)
        except (OSError, _Refused) as e:
            job.problem(job.rel(p), str(e))
            continue
        if _looks_labelme(data):
            docs.append((p, data))
        else:
            job.count("other_json")
    if not docs and not job.problems:
        raise DatasetError(f"{job.root}: no LabelMe JSON files (a dict with `shapes` and `imagePath`) found")
    plans: list[tuple[Path, Path | bytes, str, tuple[float, float], list[tuple[str, str, list, str]]]] = []
    for p, data in docs:
        where = job.rel(p)
        image_path = str(data.get("imagePath") or "").replace("\\", "/")
        source: Path | bytes | None = None
        name = ""
        size: tuple[float, float] | None = None
        if image_path:
            img = within(job.root, image_path, p.parent)
            if img is None:
                job.problem(f"{where}: imagePath", f"{image_path!r} {OUTSIDE}")
                continue
            if img.is_file():
                source, name = img, img.name
        if source is None:  # a renamed image: the one with the JSON's stem beside it
            beside = [q for q in job.image_files(p.parent) if q.parent == p.parent and q.stem == p.stem]
            if beside:
                source, name = beside[0], beside[0].name
                if image_path:
                    job.count("beside")
        if source is None:
            decoded = _decode_image_data(job, data.get("imageData"), where)
            if decoded is None:
                if not job.problems or not job.problems[-1].startswith(f"{where}: imageData"):
                    job.problem(f"{where}: imagePath", f"image {image_path or p.stem!r} not found beside the JSON "
                                "and no imageData; add the image")
                continue
            source, size, suffix = decoded[0], decoded[1], decoded[2]
            name = f"{PurePosixPath(image_path).stem or p.stem}{suffix}"
            job.count("decoded")
        if isinstance(source, Path):
            size = _image_size(source)
            if size is None:
                job.problem(job.rel(source), "cannot be opened as an image; replace or remove it")
                continue
        w, h = _positive_int(data.get("imageWidth")), _positive_int(data.get("imageHeight"))
        frame = (w, h) if w and h else size
        shapes: list[tuple[str, str, list, str]] = []
        for k, s in enumerate(data.get("shapes") or [], start=1):
            if not isinstance(s, dict):
                job.problem(f"{where}: shape {k}", "is not an object with label and points")
                continue
            label = str(s.get("label") or "").strip()
            swhere = f"{where}: shape {k} ({label!r})"
            kind = s.get("shape_type") or "polygon"
            if label.lower() in NOT_CLASSES:
                continue
            if not label:
                job.problem(f"{where}: shape {k}", "has no label")
                continue
            if kind not in ("rectangle", "polygon", "circle"):
                job.count(f"skipped:{kind}")
                continue
            pts = _points(s.get("points"))
            need = 3 if kind == "polygon" else 2
            if pts is None or len(pts) < need:
                job.problem(swhere, f"a {kind} needs at least {need} [x, y] points")
                continue
            if kind == "circle":
                pts, kind = _circle(pts[0], pts[1]), "polygon"
            shapes.append((label, kind, pts, swhere))
        plans.append((p, source, name, frame, shapes))  # type: ignore[arg-type]
    classes = fixed if fixed is not None else sorted({s[0] for plan in plans for s in plan[4]})
    _check_classes(job, classes, job.rel(fixed_file) if fixed_file else str(job.root))
    ids = {c: i for i, c in enumerate(classes)}
    n_shapes = 0
    for p, source, name, (w, h), shapes in plans:
        lines = []
        for label, kind, pts, swhere in shapes:
            if label not in ids:
                job.problem(swhere, f"label {label!r} is not in {job.rel(fixed_file)} ({', '.join(classes)}); "  # type: ignore[arg-type]
                            "add it there or fix the label")
                continue
            line = _shape_line(job, ids[label], kind, pts, w, h, swhere)
            if line is not None:
                lines.append(line)
                n_shapes += 1
        job.items.append(_Item(_split_of_folders(PurePosixPath(job.rel(p))), source, name, lines))
    job.notes.insert(0, f"converted {_plural(len(plans), 'LabelMe file')} ({_plural(n_shapes, 'shape')})")
    job.settle_splits("the LabelMe export")
    _shape_notes(job)
    if job.counts.get("decoded"):
        job.notes.append(f"{_plural(job.counts['decoded'], 'image')} missing beside the JSON taken from its imageData")
    if job.counts.get("beside"):
        job.notes.append(f"{_plural(job.counts['beside'], 'imagePath')} not found: used the image with the JSON's name")
    return classes


def _shape_notes(job: _Job) -> None:
    skipped = {k.split(":", 1)[1]: n for k, n in job.counts.items() if k.startswith("skipped:")}
    if skipped:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items()))
        job.notes.append(f"skipped shapes YOLO {job.task} cannot hold: {kinds}")
    if job.counts.get("clamped"):
        job.notes.append(f"{_plural(job.counts['clamped'], 'shape')} reaching past the image edge clamped to it")
    if job.counts.get("rect_as_polygon"):
        job.notes.append(f"{_plural(job.counts['rect_as_polygon'], 'rectangle')} written as 4-point polygons")


# -------------------------------------------------------------------------------------- Label Studio


def _strip_upload(name: str) -> str:
    m = _UPLOAD_PREFIX.match(name)
    return m.group(1) if m else name


class _NameIndex:
    """Every image in the dataset by file name, and by file name without Label Studio's upload prefix."""

    def __init__(self, job: _Job):
        self.exact: dict[str, list[Path]] = {}
        self.bare: dict[str, list[Path]] = {}
        for p in job.image_files(job.root):
            self.exact.setdefault(p.name, []).append(p)
            self.bare.setdefault(_strip_upload(p.name), []).append(p)

    def find(self, name: str) -> list[Path]:
        bare = _strip_upload(name)
        for hits in (self.exact.get(name), self.bare.get(name) if name == bare else None,
                     self.exact.get(bare), self.bare.get(bare)):
            if hits:
                return hits
        return []


def _ls_image(job: _Job, ref: str, index: _NameIndex, where: str) -> Path | None:
    """The image a task's ``data.image`` names: a relative path inside the dataset, else found by
    its file name (URLs such as /data/upload/1/1a2b3c4d-cat.jpg or /data/local-files/?d=x/cat.jpg)."""
    url = urlparse(ref)
    local = not url.scheme and not url.netloc and not ref.startswith("/")
    if local:
        p = within(job.root, unquote(ref).replace("\\", "/"))
        if p is None:
            job.problem(where, f"image {ref!r} {OUTSIDE}")
            return None
        if p.is_file():
            return p
    query = parse_qs(url.query).get("d")
    name = PurePosixPath(unquote(query[0] if query else url.path).replace("\\", "/")).name
    hits = index.find(name) if name else []
    if not hits:
        job.problem(where, f"image {ref!r} not found in the dataset (looked for {name!r} or "
                    f"{_strip_upload(name)!r}); add the image files to the folder")
        return None
    if len(hits) > 1:
        job.problem(where, f"image {ref!r} matches {len(hits)} files ({', '.join(job.rel(h) for h in hits[:3])}); "
                    "keep one")
        return None
    return hits[0]


def _ls_region(value: dict, kind: str, w: float, h: float) -> tuple[str, list[tuple[float, float]]] | None:
    """(rectangle|polygon, pixel points) of a Label Studio result value in percent, or None when malformed."""
    if kind == "rectangle":
        x, y, bw, bh = (_number(value.get(k)) for k in ("x", "y", "width", "height"))
        if x is None or y is None or bw is None or bh is None:
            return None
        x, y, bw, bh = x * w / 100, y * h / 100, bw * w / 100, bh * h / 100
        a = math.radians(_number(value.get("rotation")) or 0.0)
        corners = [(0, 0), (bw, 0), (bw, bh), (0, bh)]  # rotated about the top-left corner, as Label Studio does
        pts = [(x + cx * math.cos(a) - cy * math.sin(a), y + cx * math.sin(a) + cy * math.cos(a)) for cx, cy in corners]
        return ("rectangle" if not a else "polygon"), pts
    pts = _points(value.get("points"))
    if pts is None or len(pts) < 3:
        return None
    return "polygon", [(px * w / 100, py * h / 100) for px, py in pts]


_LS_KIND = {"rectanglelabels": "rectangle", "polygonlabels": "polygon", "rectangle": "rectangle", "polygon": "polygon"}


def _labelstudio_json(job: _Job, files: list[Path]) -> list[str]:
    index = _NameIndex(job)
    plans: list[tuple[Path, list[tuple[str, dict, str, str]]]] = []
    for f in files:
        try:
            tasks = _read_json(f)
        except (OSError, _Refused) as e:
            job.problem(job.rel(f), str(e))
            continue
        for t_no, task in enumerate(tasks, start=1):
            twhere = f"{job.rel(f)}: task {task.get('id', t_no) if isinstance(task, dict) else t_no}"
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                job.problem(twhere, "is not a Label Studio task (an object with `data`)")
                continue
            data = task["data"]
            ref = data.get("image")
            if not isinstance(ref, str):
                ref = next((v for v in data.values() if isinstance(v, str) and is_image(Path(urlparse(v).path))), None)
            if not ref:
                job.problem(twhere, "data names no image (`data.image`)")
                continue
            annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
            if not annotations:
                job.count("unannotated")
                continue
            if len(annotations) > 1:
                job.count("several_annotations")
            img = _ls_image(job, ref, index, twhere)
            if img is None:
                continue
            regions = []
            for r_no, r in enumerate(annotations[0].get("result") or [], start=1):
                if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
                    continue
                kind, value = str(r.get("type", "")), r["value"]
                labels = value.get(kind) if isinstance(value.get(kind), list) else value.get("labels")
                shape = _LS_KIND.get(kind) or ("rectangle" if "width" in value and kind == "labels" else
                                               "polygon" if "points" in value and kind == "labels" else None)
                if shape is None:
                    job.count(f"skipped:{kind or 'untyped'}")
                    continue
                rwhere = f"{twhere} result {r_no}"
                if not isinstance(labels, list) or not labels or not str(labels[0]).strip():
                    job.problem(rwhere, f"a {kind} region has no label")
                    continue
                if len(labels) > 1:
                    job.count("multi_label")
                label = str(labels[0]).strip()
                regions.append((label, {**value, "_w": r.get("original_width"), "_h": r.get("original_height")},
                                shape, f"{rwhere} ({label!r})"))
            plans.append((img, regions))
    classes = sorted({lab for _, regions in plans for lab, *_ in regions})
    _check_classes(job, classes, str(job.root))
    ids = {c: i for i, c in enumerate(classes)}
    n_regions = 0
    for img, regions in plans:
        header = _image_size(img)
        if header is None:
            job.problem(job.rel(img), "cannot be opened as an image; replace or remove it")
            continue
        lines = []
        for label, value, shape, rwhere in regions:
            w, h = _positive_int(value["_w"]), _positive_int(value["_h"])
            w, h = (w, h) if w and h else header
            region = _ls_region(value, shape, w, h)
            if region is None:
                job.problem(rwhere, "needs numeric x, y, width, height (rectangles) or [[x, y], ...] points (polygons), "
                            "in percent")
                continue
            kind, pts = region
            if kind == "polygon" and shape == "rectangle":
                job.count("rotated")
            line = _shape_line(job, ids[label], kind, pts, w, h, rwhere)
            if line is not None:
                lines.append(line)
                n_regions += 1
        job.items.append(_Item(None, img, img.name, lines))
    job.notes.insert(0, f"converted {_plural(len(plans), 'Label Studio task')} ({_plural(n_regions, 'region')})")
    job.settle_splits("the Label Studio export")
    _shape_notes(job)
    for key, text in (("unannotated", "task(s) without a submitted annotation left out"),
                      ("several_annotations", "task(s) with several annotations: used the first"),
                      ("multi_label", "region(s) with several labels: used the first"),
                      ("rotated", "rotated rectangle(s) taken as their enclosing box (detect) or polygon (segment)")):
        if job.counts.get(key):
            job.notes.append(f"{job.counts[key]} {text}")
    return classes


def _labelstudio_yolo(job: _Job) -> list[str]:
    classes_file = job.root / "classes.txt"
    classes = [ln.strip() for ln in _read_text(classes_file, 1_000_000, job.notes).splitlines() if ln.strip()]
    _check_classes(job, classes, "classes.txt")
    n_labels = n_background = 0
    for img in job.image_files(job.root / "images"):
        rel = img.relative_to(job.root / "images")
        label = within(job.root, (PurePosixPath("labels") / rel.as_posix()).with_suffix(".txt").as_posix())
        if _image_size(img) is None:
            job.problem(job.rel(img), "cannot be opened as an image; replace or remove it")
            continue
        if label is not None and label.is_file():
            lines = _yolo_lines(job, _yolo_label(job, label, len(classes), "classes.txt"))
            n_labels += 1
        else:
            lines = []
            n_background += 1
        job.items.append(_Item(_split_of_folders(PurePosixPath("images") / rel.as_posix()), img, img.name, lines))
    if not job.items and not job.problems:
        raise DatasetError(f"{job.root}: images/ holds no images; export again with images")
    _refuse_boxes_for_segment(job, "Label Studio YOLO")
    job.notes.insert(0, f"converted {_plural(n_labels, 'Label Studio YOLO label file')}")
    job.settle_splits("the Label Studio export")
    if n_background:
        job.notes.append(f"{_plural(n_background, 'image')} without a label file kept as background (no objects)")
    return classes


def _labelstudio(job: _Job) -> list[str]:
    files = _ls_json_files(job.root)
    if files:
        return _labelstudio_json(job, files)
    if _ls_yolo(job.root):
        return _labelstudio_yolo(job)
    raise DatasetError(f"{job.root}: no Label Studio export found: expected a JSON export (a list of tasks) or a "
                       "YOLO export (classes.txt, images/, labels/)")


# ------------------------------------------------------------------------------------------ writing


def _write(job: _Job, classes: list[str], dest: Path) -> dict[str, int]:
    """Write the planned dataset into a staging folder beside ``dest``, then move it to ``dest``."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DatasetError(f"{dest} already exists and is not empty; convert into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.converting-{uuid.uuid4().hex[:8]}"
    counts = {s: 0 for s in SPLITS}
    used: dict[str, set[str]] = {s: set() for s in SPLITS}
    try:
        for item in job.items:
            split = item.split or "train"
            stem, suffix = Path(item.name).stem, Path(item.name).suffix
            name, k = item.name, 1
            while stem_key(name) in used[split]:  # one label file per image: stems unique, any case
                name, k = f"{stem}_{k}{suffix}", k + 1
            used[split].add(stem_key(name))
            out = staging / "images" / split / name
            out.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(item.source, bytes):
                out.write_bytes(item.source)
            else:
                try:
                    os.link(item.source, out)
                except OSError:
                    shutil.copy2(item.source, out)
            lbl = staging / "labels" / split / f"{Path(name).stem}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text("".join(f"{ln}\n" for ln in item.lines))
            counts[split] += 1
        data = {"path": ".", **{s: f"images/{s}" for s in SPLITS if counts[s]}, "names": dict(enumerate(classes))}
        (staging / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        if dest.is_dir():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {s: n for s, n in counts.items() if n}


def stem_key(name: str) -> str:
    return Path(name).stem.lower()


def convert(root: Path, fmt: str, dest: Path, task: str) -> tuple[Path, list[str]]:
    """Convert the ``fmt`` export at ``root`` (see :func:`detect`) to a YOLO dataset in ``dest`` for
    ``task``; returns (dest, notes): sentences saying what was done and what was assumed.

    ``dest`` must not exist (or be empty) and must lie outside ``root``. Raises DatasetError (with
    ``problems``, each "file:line-or-element: what") when the export is not acceptable; nothing is
    written then."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown export format {fmt!r}; vtp converts {', '.join(FORMATS)}")
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist: check the path")
    if fmt == "voc" and task == "segment":
        raise DatasetError(f"{root}: Pascal VOC holds boxes only, no polygons, so it cannot train 'segment': use task "
                           "detect, or export polygons from the labelling tool (e.g. CVAT 'COCO 1.0' or 'Ultralytics "
                           "YOLO Segmentation 1.0')")
    if task not in TASKS[fmt]:
        raise DatasetError(f"a {FORMATS[fmt]} export converts to a {' or '.join(TASKS[fmt])} dataset, not {task!r}: "
                           f"use task {TASKS[fmt][0]}")
    if inside(dest, root) or inside(root, dest):
        raise DatasetError(f"convert {root} into a folder outside it (not {dest}): the source is never changed")
    job = _Job(root, fmt, task)
    converter = {"voc": _voc, "darknet": _darknet, "labelme": _labelme, "labelstudio": _labelstudio}[fmt]
    try:
        classes = converter(job)
    except (OSError, _Refused) as e:  # a file that vanished or cannot be read mid-way
        raise DatasetError(f"{FORMATS[fmt]} export {root} cannot be read: {e}") from None
    _raise_problems(job)
    if not job.items:
        raise DatasetError(f"{FORMATS[fmt]} export {root} has no images to convert; export again with the images")
    counts = _write(job, classes, dest)
    job.notes.insert(1, "wrote images: " + ", ".join(f"{s} {n}" for s, n in counts.items())
                     + f"; {_plural(len(classes), 'class')}")
    return dest, job.notes
