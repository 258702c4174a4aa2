"""Model names however people write them: 'YOLO11n', 'yolo 11 n', 'YOLO11-N', 'YOLO11 small', 'YOLOv8',
'EfficientNet-B0', 'ResNet 50', 'ViT', 'DETR', 'google/vit-base-patch16-224'.

Every finder returns (start, end, ModelMention) spans of the text so the caller can blank them out
(the 11 in 'yolo11n' is not an epoch count).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

from core import frameworks as registry

YOLO_FAMILIES = ("yolo11", "yolov8", "yolo26")


@dataclass
class ModelMention:
    """A model named in a request. YOLO names stay in parts so an edit can change only one part
    ('now YOLOv8' keeps the size and task of the previous yolo11s-seg)."""

    text: str
    name: str | None = None  # a full name: resnet50, google/vit-base-patch16-224
    family: str | None = None  # yolo11 | yolov8 | yolo26 | yolov5 ... (YOLO only)
    size: str | None = None  # n s m l x
    suffix: str | None = None  # -seg -cls -pose -obb
    framework: str | None = None
    task_hint: str | None = None
    alias_note: str | None = None  # 'ViT' -> vit_base_patch16_224: say so; 'ambiguous': ask among candidates
    candidates: tuple[str, ...] = ()  # the known names a near miss ('effnet') could be

    def resolved(self, size: str | None = None) -> str:
        if self.family is None:
            return self.name or self.text
        return f"{self.family}{self.size or size or 'n'}{self.suffix or ''}"


_SIZE_WORD = r"(?:nano|small|medium|large|x-?large|extra[\s-]?large|나노|스몰|미디엄|미디움|라지|엑스라지)"
_SIZE_OF = {"nano": "n", "나노": "n", "small": "s", "스몰": "s", "medium": "m", "미디엄": "m", "미디움": "m",
            "large": "l", "라지": "l", "엑스라지": "x"}
_YOLO_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?P<pre>" + _SIZE_WORD + r")(?:[\s-]+sized?)?\s+(?:the\s+)?)?(?:yolo|욜로)\s*[-_]?\s*(v?\s*(?:\d{1,2}))?"
    r"(?:\s*[-_]?\s*(" + _SIZE_WORD + r"|[nsmlx])(?![A-Za-z0-9]))?"
    r"(?:\s*[-_]?\s*(seg|cls|pose|obb)(?![A-Za-z]))?(?:\.(?:pt|yaml|pth))?",
    re.IGNORECASE,
)
_SUFFIX_OF = {"seg": "-seg", "cls": "-cls", "pose": "-pose", "obb": "-obb"}
_TASK_OF_SUFFIX = {"-seg": "segment", "-cls": "classify", "-pose": "pose", "-obb": "obb", "": "detect"}

# A hub id: org/name, not part of a URI or a path.
_HUB_RE = re.compile(r"(?<![A-Za-z0-9_/:.-])([A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})(?![A-Za-z0-9_/])")
HF_ORGS = frozenset({"google", "facebook", "microsoft", "openai", "nvidia", "apple", "hustvl", "pekingu",
                     "sensetime", "intel", "meta", "huggingface", "keras-io", "timm", "ultralytics", "jozhang97",
                     "shi-labs", "openmmlab", "mattmdjaga", "nateraw", "qualcomm", "ustc-community"})
HF_ARCH_WORDS = ("vit", "detr", "deit", "beit", "swin", "convnext", "resnet", "segformer", "mask2former",
                 "maskformer", "dinov2", "yolos", "rtdetr", "rt-detr", "owl", "clip", "mobilevit", "efficientnet",
                 "mit-b", "upernet", "dpt", "levit", "regnet", "bit-", "conditional-detr", "table-transformer")

# Architecture names that are not a timm name as written: squashed alias -> (name, framework, task, note?).
ALIASES: dict[str, tuple[str, str, str | None]] = {
    "vit": ("vit_base_patch16_224", "timm", "classify"),
    "vitb16": ("vit_base_patch16_224", "timm", "classify"),
    "vitbase": ("vit_base_patch16_224", "timm", "classify"),
    "vitbase16": ("vit_base_patch16_224", "timm", "classify"),
    "vits16": ("vit_small_patch16_224", "timm", "classify"),
    "vitsmall": ("vit_small_patch16_224", "timm", "classify"),
    "vitl16": ("vit_large_patch16_224", "timm", "classify"),
    "vitlarge": ("vit_large_patch16_224", "timm", "classify"),
    "vittiny": ("vit_tiny_patch16_224", "timm", "classify"),
    "visiontransformer": ("vit_base_patch16_224", "timm", "classify"),
    "비전트랜스포머": ("vit_base_patch16_224", "timm", "classify"),
    "resnet": ("resnet50", "timm", "classify"),
    "레즈넷": ("resnet50", "timm", "classify"),
    "efficientnet": ("efficientnet_b0", "timm", "classify"),
    "efficientnetv2": ("efficientnetv2_rw_s", "timm", "classify"),
    "convnext": ("convnext_tiny", "timm", "classify"),
    "mobilenet": ("mobilenetv3_large_100", "timm", "classify"),
    "mobilenetv3": ("mobilenetv3_large_100", "timm", "classify"),
    "mobilenetv3large": ("mobilenetv3_large_100", "timm", "classify"),
    "mobilenetv3small": ("mobilenetv3_small_100", "timm", "classify"),
    "mobilenetv2": ("mobilenetv2_100", "timm", "classify"),
    "mobilevit": ("mobilevit_s", "timm", "classify"),
    "swin": ("swin_tiny_patch4_window7_224", "timm", "classify"),
    "swintransformer": ("swin_tiny_patch4_window7_224", "timm", "classify"),
    "deit": ("deit_small_patch16_224", "timm", "classify"),
    "beit": ("beit_base_patch16_224", "timm", "classify"),
    "densenet": ("densenet121", "timm", "classify"),
    "regnet": ("regnety_008", "timm", "classify"),
    "vgg": ("vgg16", "timm", "classify"),
    "inception": ("inception_v3", "timm", "classify"),
    "inceptionv3": ("inception_v3", "timm", "classify"),
    "resnext": ("resnext50_32x4d", "timm", "classify"),
    "dinov2": ("vit_small_patch14_dinov2", "timm", "classify"),
    "detr": ("facebook/detr-resnet-50", "huggingface", "detect"),
    "디테르": ("facebook/detr-resnet-50", "huggingface", "detect"),
    "deformabledetr": ("SenseTime/deformable-detr", "huggingface", "detect"),
    "rtdetr": ("PekingU/rtdetr_r50vd", "huggingface", "detect"),
    "conditionaldetr": ("microsoft/conditional-detr-resnet-50", "huggingface", "detect"),
    "yolos": ("hustvl/yolos-small", "huggingface", "detect"),
    "segformer": ("nvidia/mit-b0", "huggingface", "segment"),
    "mask2former": ("facebook/mask2former-swin-tiny-coco-instance", "huggingface", "segment"),
    "maskformer": ("facebook/maskformer-swin-tiny-coco", "huggingface", "segment"),
    # Architectures no vtp framework trains: kept as written so the person is told, never dropped.
    "fasterrcnn": ("fasterrcnn_resnet50_fpn", "", "detect"),
    "maskrcnn": ("maskrcnn_resnet50_fpn", "", "segment"),
    "retinanet": ("retinanet_resnet50_fpn", "", "detect"),
    "unet": ("unet", "", "segment"),
    "deeplab": ("deeplabv3_resnet50", "", "segment"),
    "deeplabv3": ("deeplabv3_resnet50", "", "segment"),
}
# Alias words as they appear in text (the squashed key is looked up after joining the tokens).
_ALIAS_TEXT_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:vision\s+transformer|비전\s*트랜스포머|faster\s*[-_]?\s*r\s*[-_]?\s*cnn|mask\s*[-_]?\s*r\s*[-_]?\s*cnn|"
    r"rt\s*[-_]?\s*detr|deformable\s*[-_]?\s*detr|conditional\s*[-_]?\s*detr|u\s*[-_]?\s*net|deeplab\s*v?3?|"
    r"swin\s+transformer|vit\s*[-_]?\s*[bsl]\s*/\s*16|mobilenet\s*[-_]?\s*v3\s*[-_]?\s*(?:large|small)|디테르|레즈넷)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_.\-/])[A-Za-z][A-Za-z0-9_.\-]*[A-Za-z0-9]|(?<![A-Za-z0-9_.\-/])[A-Za-z0-9]+")


def squash(text: str) -> str:
    return re.sub(r"[\s_.\-/]", "", text.lower())


@functools.cache
def _timm_index() -> dict[str, str]:
    return {squash(name): name for name in registry.timm_model_names()}


@functools.cache
def _timm_families() -> frozenset[str]:
    return frozenset(re.split(r"[_\d]", name)[0] for name in registry.timm_model_names())


def find_yolo(text: str) -> list[tuple[int, int, ModelMention]]:
    found = []
    for m in _YOLO_RE.finditer(text):
        version, size, suffix = m.group(2), m.group(3) or m.group("pre"), m.group(4)
        family = "yolo11"
        if version:
            v = re.sub(r"\D", "", version)
            family = f"yolov{v}" if v in {"3", "4", "5", "6", "7", "8", "9", "10"} else f"yolo{v}"
        size_letter = None
        if size:
            low = size.lower().replace(" ", "")
            size_letter = low if len(low) == 1 else _SIZE_OF.get(low, "x")
        mention = ModelMention(text=m.group(0).strip(), family=family, size=size_letter,
                               suffix=_SUFFIX_OF.get((suffix or "").lower()), framework="ultralytics")
        if not version:
            mention.alias_note = "yolo_version"
        if mention.suffix:
            mention.task_hint = _TASK_OF_SUFFIX[mention.suffix]
        found.append((m.start(), m.end(), mention))
    return found


def find_hub_ids(text: str) -> list[tuple[int, int, ModelMention]]:
    found = []
    for m in _HUB_RE.finditer(text):
        hub_id = m.group(1).rstrip(".")
        org, _, name = hub_id.partition("/")
        if ".." in hub_id or not (org.lower() in HF_ORGS or any(w in name.lower() for w in HF_ARCH_WORDS)):
            continue
        if org.lower() == "timm":  # timm/resnet50.a1_in1k is a timm model
            base = name.split(".", 1)[0]
            mention = ModelMention(text=hub_id, name=base, framework="timm", task_hint="classify")
        else:
            mention = ModelMention(text=hub_id, name=hub_id, framework="huggingface", task_hint=hf_task_of(hub_id))
        found.append((m.start(), m.start() + len(hub_id), mention))
    return found


def hf_task_of(hub_id: str) -> str | None:
    low = hub_id.lower()
    if any(w in low for w in ("detr", "yolos", "owl", "table-transformer")):
        return "detect"
    if any(w in low for w in ("segformer", "mask2former", "maskformer", "mit-b", "upernet", "-seg", "segment")):
        return "segment"
    if any(w in low for w in ("vit", "deit", "beit", "swin", "convnext", "resnet", "efficientnet", "regnet",
                              "mobilenet", "levit", "dinov2", "bit-")):
        return "classify"
    return None


def find_aliases_and_timm(text: str) -> list[tuple[int, int, ModelMention]]:
    """Named architectures: aliases ('ViT', 'Faster R-CNN') and timm names, also split over tokens
    ('ResNet 50', 'convnext tiny', 'efficientnet-b0')."""
    found: list[tuple[int, int, ModelMention]] = []
    taken: list[tuple[int, int]] = []
    for m in _ALIAS_TEXT_RE.finditer(text):
        key = squash(m.group(0))
        key = {"vitb16": "vitb16", "vits16": "vits16", "vitl16": "vitl16"}.get(key, key)
        if key.startswith("deeplab"):
            key = "deeplab"
        if key in ALIASES:
            found.append((m.start(), m.end(), _alias(m.group(0), key)))
            taken.append((m.start(), m.end()))
    tokens = [(m.start(), m.end(), m.group(0)) for m in _TOKEN_RE.finditer(text)]
    index, families = _timm_index(), _timm_families()
    i = 0
    while i < len(tokens):
        start = tokens[i][0]
        if any(a <= start < b for a, b in taken):
            i += 1
            continue
        first = tokens[i][2].lower()
        best = None
        span_limit = 4 if (first.split("_")[0].rstrip("0123456789") in families or squash(first) in ALIASES
                           or re.sub(r"[\d_.-].*", "", first) in families) else 1
        for j in range(min(len(tokens), i + span_limit) - 1, i - 1, -1):
            if j > i and text[tokens[j - 1][1]:tokens[j][0]].strip():  # only tokens separated by spaces
                continue
            if j > i and re.fullmatch(r"\d+", tokens[j][2]) and _number_has_unit(text, tokens[j][1]):
                continue
            key = squash(text[start:tokens[j][1]])
            if key in index:
                best = (j, ModelMention(text=text[start:tokens[j][1]], name=index[key], framework="timm",
                                        task_hint="classify"))
                break
            if key in ALIASES:
                best = (j, _alias(text[start:tokens[j][1]], key))
                break
        if best is not None:
            j, mention = best
            found.append((start, tokens[j][1], mention))
            i = j + 1
        else:
            i += 1
    return found


def _number_has_unit(text: str, end: int) -> bool:
    return re.match(r"\s*(?:에폭|에포크|epochs?|번|회|px|픽셀|장|개|배치|batch)", text[end:end + 12], re.IGNORECASE) is not None


def _alias(written: str, key: str) -> ModelMention:
    name, framework, task = ALIASES[key]
    return ModelMention(text=written, name=name, framework=framework or None, task_hint=task,
                        alias_note="alias" if squash(written) != squash(name) else None)


def parse_model_string(value: str) -> ModelMention:
    """One model string (from key=value or an LLM) -> a mention, keeping it as written when unknown."""
    value = value.strip()
    for finder in (find_hub_ids, find_yolo, find_aliases_and_timm):
        hits = finder(value)
        if hits and hits[0][0] == 0 and hits[0][1] >= len(value.rstrip()) - 3:
            return hits[0][2]
    return ModelMention(text=value, name=value)


@functools.cache
def known_model_index() -> dict[str, str]:
    """squashed name -> name, for every concrete model some installed framework trains (its
    capabilities' ``known_models()``; hub ids left out), plus the architecture aliases."""
    out: dict[str, str] = {}
    for caps in registry.all_capabilities():
        try:
            names = caps.known_models()
        except (OSError, ValueError, re.error):
            continue
        for name in names:
            if "/" not in name:
                out.setdefault(squash(name), name)
    for key, (name, framework, _task) in ALIASES.items():
        if framework == "timm":
            out.setdefault(key, name)
    return out


@functools.cache
def _families() -> tuple[str, ...]:
    """The letter stems of the known names ('efficientnet', 'resnet', 'convnext'), longest first."""
    stems = {m.group(0) for name in known_model_index().values() if (m := re.match(r"[a-z]{3,}", name.lower()))}
    return tuple(sorted(stems, key=len, reverse=True))


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(c in it for c in short)


def _near(letters: str, family: str) -> bool:
    """'effnet' ~ 'efficientnet' (an abbreviation), 'resnt' ~ 'resnet', 'efficentnet' ~ 'efficientnet' (typos)."""
    if letters == family or letters[:2] != family[:2]:
        return False
    if len(letters) >= max(4, len(family) // 2) and _is_subsequence(letters, family):
        return True
    return len(letters) >= 5 and difflib.SequenceMatcher(None, letters, family).ratio() >= 0.85


_GENERIC = frozenset({"convnet", "convnets", "network", "networks", "cnn", "cnns", "backbone", "transformer"})
_NEAR_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_./-])(?P<l>[A-Za-z]{3,})(?P<r>(?:[\s_-]?(?:[a-z]?\d[a-z0-9]*|tiny|small|base|large))?)"
                            r"(?![A-Za-z0-9_/-])", re.IGNORECASE)


def find_near_misses(text: str) -> list[tuple[int, int, ModelMention]]:
    """Model-like words that are no known name as written, matched to the closest known ones:
    'effnet-b0' -> efficientnet_b0, 'resnt50' -> resnet50, 'convnxt tiny' -> convnext_tiny. One match is
    a mention with ``alias_note='alias'`` (the reply says how it was read); several are a mention with
    ``alias_note='ambiguous'`` and ``candidates`` (the reply asks)."""
    from chat.lexicon import NOT_DATASETS

    index = known_model_index()
    found = []
    for m in _NEAR_TOKEN_RE.finditer(text):
        word, rest0 = m.group("l").lower(), squash(m.group("r"))
        if word in NOT_DATASETS or word in _GENERIC or squash(m.group(0)) in index:
            continue
        scored: dict[str, float] = {}
        for cut in (0, 1, 2):  # 'effnetb0' is 'effnet' + 'b0': the variant's letters may be glued on
            letters, rest = word[:len(word) - cut], word[len(word) - cut:] + rest0
            if len(letters) < 4 or (cut and not rest0):
                continue
            for family in _families():
                if _near(letters, family):
                    key = family + rest
                    name = index.get(key) or (index.get(squash(ALIASES[key][0])) if key in ALIASES else None)
                    if name:
                        closeness = difflib.SequenceMatcher(None, letters, family).ratio()
                        scored[name] = max(scored.get(name, 0.0), closeness)
        if not scored:
            continue
        options = sorted(scored, key=lambda n: -scored[n])
        tied = [n for n in options if scored[options[0]] - scored[n] < 0.02]  # as close as the best: ask
        mention = ModelMention(text=m.group(0).strip(), name=options[0], framework="timm", task_hint="classify",
                               alias_note="alias" if len(tied) == 1 else "ambiguous")
        mention.candidates = tuple(tied[:4])
        found.append((m.start(), m.end(), mention))
    return found
