"""The offline parser, kind by kind (issue 17): negation of every boolean and named option, Korean
numerals, self-corrections, numbers before an English keyword, near-miss model names, dataset names
without a keyword, the new knobs, and the words it could not place — each in Korean and English."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chat import parse
from chat.numbers import korean_number, words_to_digits

REGISTRY = {name: SimpleNamespace(name=name, task=task) for name, task in
            {"coco8": "detect", "pets": "classify", "flowers": "classify", "shapes-detect": "detect"}.items()}


def read(text: str, datasets: dict | None = None, previous: dict | None = None):
    return parse(text, datasets=REGISTRY if datasets is None else datasets, storage_url="file:///tmp/vtp-kinds",
                 use_llm=False, previous=previous)


# --- negation: every boolean field and on/off option, both languages ---------------------------------

PRETRAINED_OFF = [
    "resnet50 pretrained 없이 pets 분류", "pretrained weights 쓰지 말고 resnet50 pets", "resnet50 pets 사전학습 가중치 안 쓰고",
    "resnet50 pets 사전 학습 빼고", "resnet50 pets 프리트레인 말고", "resnet50 pets, 사전학습 모델은 사용하지 않고",
    "resnet50 on pets without pretrained weights", "resnet50 on pets, no pretrained", "don't use pretrained weights: resnet50 pets",
    "resnet50 w/o pretrained, pets", "resnet50 pets not pretrained", "resnet50 pets pretrained off",
    "resnet50 on pets without using any pretrained checkpoint", "resnet50 pets from scratch", "resnet50 pets 처음부터",
]


@pytest.mark.parametrize("text", PRETRAINED_OFF)
def test_negated_pretrained_is_off_and_says_where_from(text):
    result = read(text)
    assert result.spec["pretrained"] is False, result.spec
    assert result.spec["model"] == "resnet50" and result.spec["dataset"] == "pets"


@pytest.mark.parametrize("text", ["resnet50 pets, pretrained weights 써서", "resnet50 on pets with pretrained weights",
                                  "resnet50 pets, scratch 말고 pretrained로", "resnet50 pets, not from scratch"])
def test_plain_or_doubly_negated_pretrained_is_on(text):
    assert read(text).spec["pretrained"] is True


def test_the_negation_words_are_shown_in_the_reply():
    ko = read("resnet50 pretrained 없이 pets 분류")
    assert any("pretrained 없이" in n for n in ko.notes), ko.notes
    en = read("resnet50 on pets without pretrained weights")
    assert any("without pretrained" in n and "off" in n for n in en.notes), en.notes


@pytest.mark.parametrize("text, key, value", [
    ("yolo11n coco8 amp 끄고", "amp", False), ("yolo11n coco8 amp 없이", "amp", False),
    ("yolo11n on coco8 without amp", "amp", False), ("yolo11n coco8, disable amp", "amp", False),
    ("yolo11n coco8 with amp", "amp", True), ("yolo11n coco8 혼합 정밀도 쓰지 말고", "amp", False),
    ("yolo11n coco8 cosine lr 써줘", "cos_lr", True), ("yolo11n coco8, don't use cosine lr", "cos_lr", False),
    ("yolo11n coco8 코사인 학습률 말고", "cos_lr", False),
    ("yolo11n coco8 mosaic 빼고", "mosaic", 0.0), ("yolo11n on coco8, turn off mosaic", "mosaic", 0.0),
    ("yolo11n on coco8, no mixup", "mixup", 0.0), ("yolo11n coco8 믹스업 없이", "mixup", 0.0),
])
def test_negated_options_are_switched_off(text, key, value):
    assert read(text).spec["overrides"][key] == value


def _bool_options() -> list[str]:
    from core.frameworks import all_capabilities

    return sorted({k for caps in all_capabilities() for k, kind in caps.overrides.items() if kind == "bool"})


@pytest.mark.parametrize("key", _bool_options())
def test_every_boolean_option_of_every_framework_can_be_negated_in_both_languages(key):
    from chat import offline
    from chat.result import Context

    ctx = Context(datasets=REGISTRY, storage_url="file:///tmp/vtp-kinds")
    words = "validation" if key == "val" else key.replace("_", " ")
    for text in (f"yolo11n coco8 without {words}", f"yolo11n coco8, no {words}", f"yolo11n coco8 {words} 없이",
                 f"yolo11n coco8 {words} 끄고", f"yolo11n coco8 {words} 빼고"):
        ex = offline.extract(text, ctx)
        assert ex.overrides.get(key) is False, (text, ex.overrides)
        assert key in ex.negated and ex.dataset_strength == "registered"


def test_an_option_for_another_framework_is_named_and_ignored():
    result = read("yolo11n coco8 channels_last 켜고")
    assert "channels_last" not in (result.spec.get("overrides") or {})
    assert any("ultralytics" in n and "channels_last" in n for n in result.notes), result.notes


@pytest.mark.parametrize("text", ["yolo11n coco8 조기 종료 없이", "yolo11n on coco8 without early stopping",
                                  "yolo11n coco8 early stopping 끄고", "coco8 yolo11n, no early stop"])
def test_negated_early_stopping_sets_patience_zero(text):
    assert read(text).spec["patience"] == 0


@pytest.mark.parametrize("text, model, refused", [
    ("yolo11n 말고 yolo11s로 coco8", "yolo11s", "yolo11n"), ("coco8, yolo11s 대신 yolo11m", "yolo11m", "yolo11s"),
    ("coco8에서 yolo11n 쓰지 말고 yolo11l로", "yolo11l", "yolo11n"), ("coco8 yolov8n 아니고 yolo11n", "yolo11n", "yolov8n"),
    ("not yolo11n, use yolo11s on coco8", "yolo11s", "yolo11n"), ("train yolo11x instead of yolo11n on coco8", "yolo11x", "yolo11n"),
    ("rather than yolo11n, go with yolov8s on coco8", "yolov8s", "yolo11n"),
    ("pets resnet50 말고 efficientnet_b0", "efficientnet_b0", "resnet50"),
])
def test_a_negated_model_is_never_chosen(text, model, refused):
    result = read(text)
    assert result.spec["model"] == model
    assert any(refused in n for n in result.notes), result.notes


@pytest.mark.parametrize("text, export", [
    ("coco8 yolo11n, ONNX 말고 TorchScript로 export", ["torchscript"]),
    ("yolo11n coco8, export to torchscript, not onnx", ["torchscript"]),
    ("yolo11n coco8 no export", []), ("yolo11n coco8 export 없이", []),
])
def test_negated_export_formats_are_dropped(text, export):
    assert read(text).spec["export"] == export


def test_a_negated_registered_dataset_is_not_chosen():
    assert read("coco8 말고 shapes-detect로 yolo11n").spec["dataset"] == "shapes-detect"


# --- Korean numerals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, value", [("이십", 20), ("이백", 200), ("삼십", 30), ("백", 100), ("천", 1000),
                                        ("이백오십", 250), ("1천", 1000), ("2백", 200), ("3천5백", 3500), ("1만", 10000)])
def test_korean_number_grammar(raw, value):
    assert korean_number(raw) == value


@pytest.mark.parametrize("raw", ["이삼", "백백", "십백", "사진"])
def test_korean_number_refuses_what_is_no_numeral(raw):
    assert korean_number(raw) is None


@pytest.mark.parametrize("text, epochs", [
    ("yolo11n coco8 에폭 이십으로요", 20), ("yolo11n coco8 에폭 이백", 200), ("yolo11n coco8 epochs 이십", 20),
    ("yolo11n coco8 이십 에폭", 20), ("yolo11n coco8 에폭이 이백오십", 250), ("yolo11n coco8 에폭은 천", 1000),
    ("yolo11n coco8 스무 번", 20), ("yolo11n coco8 서른 에폭", 30), ("yolo11n coco8 에폭 쉰으로", 50),
    ("yolo11n coco8 마흔 번", 40), ("yolo11n coco8 1천 에폭", 1000), ("yolo11n coco8 에폭 3백", 300),
    ("yolo11n coco8 1k epochs", 1000), ("epoch 2k for yolo11n on coco8", 2000), ("yolo11n coco8 열 번만", 10),
])
def test_korean_numerals_in_any_order(text, epochs):
    assert read(text).spec["epochs"] == epochs


@pytest.mark.parametrize("text", ["이번에는 사진", "이거 오늘 해줘", "일단 구분해", "배치 32만 바꿔"])
def test_syllables_that_are_words_stay_words(text):
    assert words_to_digits(text) == text


# --- corrections and hedges ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, field, value", [
    ("yolo11m coco8 1k 에폭은 너무 많나? 그냥 300 에폭으로", "epochs", 300),
    ("coco8 yolo11n 100 에폭, 아니 200 에폭으로", "epochs", 200), ("coco8 yolo11n 500 에폭? 아냐 250으로 하자", "epochs", 250),
    ("yolo11n on coco8, 50 epochs... actually make it 80 epochs", "epochs", 80),
    ("yolo11n coco8 batch 8... no wait, batch 4", "batch_size", 4), ("yolo11n coco8 64 batch, no wait, make it 32", "batch_size", 32),
    ("yolo11n coco8 image size 1024, or rather 640", "image_size", 640),
    ("coco8 yolo11n 이미지 640으로 하다가 그냥 320으로", "image_size", 320),
])
def test_the_last_committed_value_wins_and_the_correction_is_shown(text, field, value):
    result = read(text)
    assert result.spec[field] == value
    assert any("→" in n and str(value) in n for n in result.notes), result.notes


@pytest.mark.parametrize("text, field", [
    ("yolo11n coco8 에폭 1000은 너무 많나?", "epochs"), ("yolo11n coco8, is 500 epochs too many?", "epochs"),
    ("yolo11n coco8 배치 128은 너무 큰가?", "batch_size"), ("yolo11n coco8, batch 256 would be overkill?", "batch_size"),
])
def test_a_value_in_doubt_alone_is_not_committed_but_asked_about(text, field):
    result = read(text)
    assert field not in result.spec or result.spec[field] != int(next(w for w in text.replace("?", " ").split() if w.isdigit()))
    assert any("1000" in n or "500" in n or "128" in n or "256" in n for n in result.notes), result.notes


@pytest.mark.parametrize("text, field, value", [
    ("yolo11n coco8 300 에폭, 아니 1000 에폭은 너무 많으려나", "epochs", 300),
    ("yolo11n coco8 batch 64? is that too big? ok batch 32", "batch_size", 32),
    ("yolo11n coco8, 에폭 100인데 혹시 너무 많으면 줄여도 돼요", "epochs", 100),
    ("yolo11n coco8 50 에폭으로 돌려줄 수 있어?", "epochs", 50),  # a polite question is a request, not a doubt
])
def test_a_doubted_value_never_wins(text, field, value):
    assert read(text).spec[field] == value


@pytest.mark.parametrize("text, model", [("yolo11n, 아니 yolo11s로 coco8", "yolo11s"),
                                         ("resnet18 on pets, actually make it resnet50", "resnet50")])
def test_a_corrected_model(text, model):
    assert read(text).spec["model"] == model


# --- numbers before an English keyword ----------------------------------------------------------------

@pytest.mark.parametrize("text, field, value", [
    ("train yolo11n on coco8 with 960 image size", "image_size", 960), ("yolo11n coco8 using 1280 input size", "image_size", 1280),
    ("yolo11n coco8 20 epochs", "epochs", 20), ("yolo11n coco8 32 batch", "batch_size", 32),
    ("yolo11n coco8 with a batch of 32", "batch_size", 32), ("resnet50 pets 64 batch size 12 epochs", "batch_size", 64),
])
def test_number_before_keyword(text, field, value):
    assert read(text).spec[field] == value


# --- near-miss model names -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, model, written", [
    ("effnet-b0로 pets 분류해봐", "efficientnet_b0", "effnet-b0"), ("train effnetb0 on pets", "efficientnet_b0", "effnetb0"),
    ("effnet b2 on flowers", "efficientnet_b2", "effnet b2"), ("resnt50 pets 분류", "resnet50", "resnt50"),
    ("efficentnet_b3 on flowers", "efficientnet_b3", "efficentnet_b3"), ("convnxt_small flowers", "convnext_small", "convnxt_small"),
    ("vit-b16 pets 분류", "vit_base_patch16_224", "vit-b16"), ("resnet-50 on pets", "resnet50", None),
    ("yolov11n on coco8", "yolo11n", None), ("yolo 11 s로 coco8", "yolo11s", None), ("convnext tiny on flowers", "convnext_tiny", None),
])
def test_near_miss_models_are_read_as_the_closest_known_name_with_a_note(text, model, written):
    result = read(text)
    assert result.spec["model"] == model
    if written:  # 'I read effnet-b0 as efficientnet_b0'
        assert any(written in n and model in n for n in result.notes), result.notes


def test_an_ambiguous_near_miss_is_asked_about_not_replaced(monkeypatch):
    import chat.model_names as names

    index = {"abcnetb0": "abcnet_b0", "abdnetb0": "abdnet_b0"}  # two names 'abnet-b0' is equally close to
    monkeypatch.setattr(names, "known_model_index", lambda: index)
    monkeypatch.setattr(names, "_families", lambda: ("abcnet", "abdnet"))
    result = read("abnet-b0 on pets")
    assert "model" not in result.spec or result.spec.get("model") is None or "model" in result.missing
    assert "model" in result.missing and not result.ready
    assert "abcnet_b0" in result.question and "abdnet_b0" in result.question and "abnet-b0" in result.question


def test_a_generic_word_is_no_model():
    assert read("train a convnet on pets").spec.get("model") != "convnext_tiny"


def test_a_near_miss_is_never_the_dataset_even_with_an_empty_registry():
    result = read("effnet-b0 on pets", datasets={})
    assert result.spec["model"] == "efficientnet_b0" and result.spec["dataset"] == "pets"


# --- dataset names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, datasets, dataset", [
    ("yolo11s로 forklifts 50번 학습시켜", {}, "forklifts"), ("yolo11n으로 drones 탐지 100번", {}, "drones"),
    ("dataset은 leaves, resnet50", {}, "leaves"), ("데이터셋: leaves 로 분류", {}, "leaves"),
    ("data set is leaves, classify with resnet50", {}, "leaves"), ("coco8-seg로 yolo11n-seg 학습", {}, "coco8-seg"),
])
def test_dataset_names_without_registry(text, datasets, dataset):
    assert read(text, datasets=datasets).spec["dataset"] == dataset


@pytest.mark.parametrize("text", ["yolo11n onnx로 export까지", "resnet50 fine-tuning 해줘", "detect cars with yolo11n",
                                  "yolo11n torchscript로 변환까지"])
def test_ordinary_words_never_become_datasets(text):
    result = read(text, datasets={})
    assert "dataset" not in result.spec and "dataset" in result.missing


# --- the new knobs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("coco8 yolo11n val 비율 20%", 0.2), ("coco8 yolo11n 검증 비율 10퍼센트", 0.1), ("yolo11n on coco8, 80/20 split", 0.2),
    ("yolo11n coco8 train/val 85/15", 0.15), ("yolo11n on coco8 with validation 0.1", 0.1),
    ("coco8 yolo11n, use 20 percent of data for validation", 0.2), ("yolo11n on coco8, hold out 10%", 0.1),
    ("yolo11n coco8 val_fraction=0.25", 0.25),
])
def test_val_fraction(text, value):
    assert read(text).spec["val_fraction"] == pytest.approx(value)


def test_an_out_of_range_val_fraction_is_refused_with_what_to_do():
    result = read("yolo11n coco8 val 70%")
    assert result.spec["val_fraction"] == pytest.approx(0.7) and not result.ready
    assert any("val_fraction" in e for e in result.errors), result.errors


@pytest.mark.parametrize("text, minutes", [
    ("coco8 yolo11n 최대 1시간", 60), ("yolo11n on coco8, at most 90 minutes", 90), ("coco8 yolo11n 2h 안에", 120),
    ("coco8 yolo11n 30분 이내로", 30), ("yolo11n coco8 1.5h", 90), ("coco8 yolo11n 한 시간 반 안에", 90),
    ("yolo11n coco8 1시간 30분 동안만", 90), ("train yolo11n on coco8 for an hour", 60), ("coco8 yolo11n 삼십 분만", 30),
    ("yolo11n coco8, don't spend more than 40 minutes", 40), ("yolo11n coco8 max_time=90", 90),
])
def test_max_time_in_minutes(text, minutes):
    assert read(text).spec["max_time"] == minutes


@pytest.mark.parametrize("text, n", [
    ("yolo11n coco8 gradient accumulation 4", 4), ("yolo11n on coco8, accumulate 8 steps", 8), ("coco8 yolo11n 그래디언트 누적 4", 4),
    ("yolo11n coco8 grad accum 2", 2), ("yolo11n coco8 accumulate gradients over 16 batches", 16), ("coco8 yolo11n 누적 8번", 8),
    ("yolo11n coco8 accumulate=4", 4), ("yolo11n coco8 accumulate grads x4", 4),
])
def test_accumulate(text, n):
    assert read(text).spec["accumulate"] == n


@pytest.mark.parametrize("text, export", [
    ("yolo11n coco8 onnx로 export까지", ["onnx"]), ("yolo11n coco8, export to onnx and torchscript", ["onnx", "torchscript"]),
    ("resnet50 pets 분류하고 onnx 변환까지", ["onnx"]), ("yolo11n coco8 끝나면 onnx로 내보내줘", ["onnx"]),
    ("after training export it as torchscript, yolo11n coco8", ["torchscript"]),
])
def test_export(text, export):
    result = read(text)
    assert result.spec["export"] == export and result.spec["dataset"] in ("coco8", "pets")


def test_an_export_format_the_framework_lacks_is_said_not_dropped():
    result = read("yolo11n coco8 tflite로 export")
    assert result.spec["export"] == ["tflite"] and not result.ready
    assert any("tflite" in e and "onnx" in e for e in result.errors), result.errors


@pytest.mark.parametrize("text, classes", [
    ("coco8 yolo11n person 클래스만", ["person"]), ("yolo11n on coco8, only cars and trucks", ["cars", "trucks"]),
    ("coco8 yolo11n person, car만 탐지", ["person", "car"]), ("yolo11n coco8 classes: person, dog", ["person", "dog"]),
    ("coco8로 yolo11n, 사람이랑 자동차 클래스만", ["사람", "자동차"]), ("yolo11n coco8, train only on the bus and truck classes", ["bus", "truck"]),
    ("detect only helmets and vests with yolo11n on coco8", ["helmets", "vests"]), ("yolo11n coco8 트럭이랑 버스만 탐지해줘", ["트럭", "버스"]),
    ("yolo11n coco8 only train on person and bicycle classes", ["person", "bicycle"]),
    ("coco8 yolo11n 최대 1시간, person 클래스만", ["person"]),
])
def test_classes(text, classes):
    assert read(text).spec["classes"] == classes


# --- nothing silently dropped --------------------------------------------------------------------------

@pytest.mark.parametrize("text, field, value", [("coco8 yolo11n epcohs 40", "epochs", 40), ("coco8 yolo11n 16 bacth", "batch_size", 16),
                                                ("coco8 yolo11n ephocs=12", "epochs", 12)])
def test_a_misspelt_field_word_is_read_with_a_note(text, field, value):
    result = read(text)
    assert result.spec[field] == value and result.unplaced == []
    assert any("read as" in n for n in result.notes), result.notes


def test_a_word_close_to_no_field_is_said_not_guessed():
    result = read("coco8 yolo11n zorbles 40")
    assert "epochs" not in result.spec and result.unplaced == ["zorbles", "40"]


def test_unplaced_words_are_listed_in_the_result_and_the_reply():
    en = read("train yolo11n on coco8 with frobnicate enabled")
    assert en.unplaced == ["frobnicate", "enabled"] and "I did not understand 'frobnicate', 'enabled'" in en.reply
    ko = read("yolo11n coco8 50 에폭 blorptastic 모드로")
    assert "blorptastic" in ko.unplaced and "이해하지 못했습니다" in ko.reply


@pytest.mark.parametrize("text", ["train yolo11n on coco8 for 20 epochs please", "coco8 데이터셋으로 yolo11n 모델 좀 학습해주세요",
                                  "could you fine-tune resnet50 on pets, 10 epochs, batch 32?", "pets로 resnet50 분류 모델 만들어줘"])
def test_filler_is_not_unplaced(text):
    assert read(text).unplaced == []


def test_an_option_the_framework_cannot_honour_is_said_and_ignored():
    result = read("resnet50 on pets, mosaic 0.5")
    assert "mosaic" not in (result.spec.get("overrides") or {})
    assert any("timm" in n and "mosaic" in n for n in result.notes), result.notes


def test_follow_up_negation_and_numeral():
    previous = {"task": "detect", "framework": "ultralytics", "model": "yolo11n", "dataset": "coco8", "epochs": 50}
    assert read("이번엔 에폭 이백으로", previous=previous).spec["epochs"] == 200
    assert read("now without pretrained weights", previous=previous).spec["pretrained"] is False
    assert read("yolo11n 말고 yolo11s로 바꿔", previous=previous).spec["model"] == "yolo11s"


# --- classes by the dataset's own names: 'only X and Y', 'X만', and 'all but X' ------------------------

WITH_CLASSES = {
    "shapes-detect": SimpleNamespace(name="shapes-detect", task="detect", classes=["circle", "square", "triangle"]),
    "pets": SimpleNamespace(name="pets", task="classify", classes=["고양이", "강아지", "햄스터"]),
    "traffic": SimpleNamespace(name="traffic", task="detect", classes=["car", "truck", "bus", "person"]),
}


@pytest.mark.parametrize("text, classes", [
    ("train yolo11n on shapes-detect, only circle and square", ["circle", "square"]),
    ("detect only circles and squares on shapes-detect with yolo11n", ["circle", "square"]),
    ("shapes-detect yolo11n, just square", ["square"]),
    ("shapes-detect yolo11n circle only", ["circle"]),
    ("pets로 고양이랑 강아지만 분류하는 resnet18", ["고양이", "강아지"]),
    ("yolo11n on traffic, only cars, trucks and buses", ["car", "truck", "bus"]),
    ("traffic 데이터셋 yolo11s로 person, bus만 탐지", ["person", "bus"]),
])
def test_only_these_classes_by_their_names(text, classes):
    r = read(text, WITH_CLASSES)
    assert r.spec["classes"] == classes and r.unplaced == [], (r.spec, r.unplaced)


@pytest.mark.parametrize("text, classes", [
    ("pets로 햄스터만 빼고 분류 resnet18", ["고양이", "강아지"]),
    ("pets resnet18 햄스터 빼고 학습", ["고양이", "강아지"]),
    ("pets resnet18, 햄스터는 제외하고", ["고양이", "강아지"]),
    ("shapes-detect yolo11n all classes except triangle", ["circle", "square"]),
    ("shapes-detect yolo11n without triangles", ["circle", "square"]),
    ("train yolo11n on shapes-detect, no squares please", ["circle", "triangle"]),
    ("traffic yolo11n, trucks and buses excluded", ["car", "person"]),
])
def test_all_but_these_classes_is_the_complement_and_says_so(text, classes):
    r = read(text, WITH_CLASSES)
    assert r.spec["classes"] == classes, r.spec
    assert any(", ".join(classes) in note for note in r.notes), r.notes  # the reply says what it read, and from what


def test_all_but_a_class_with_no_dataset_named_is_not_guessed():
    r = read("yolo11n 햄스터 빼고", WITH_CLASSES)
    assert "classes" not in (r.spec or {}) and r.unplaced == ["햄스터"]


def test_the_last_class_choice_wins_and_the_correction_is_said():
    r = read("pets 데이터에서 햄스터만 빼고... 아니 햄스터만 분류해줘 resnet18", WITH_CLASSES)
    assert r.spec["classes"] == ["햄스터"] and any("고양이, 강아지 → 햄스터" in n for n in r.notes), r.notes


def test_a_bare_class_mention_is_not_a_choice():
    r = read("pets 데이터로 강아지 고양이 분류 resnet18", WITH_CLASSES)
    assert "classes" not in r.spec and r.unplaced == ["강아지", "고양이"]  # said aloud, not taken as a subset


def test_only_before_a_number_is_not_a_class_list():
    r = read("traffic yolo11n only 10 epochs", WITH_CLASSES)
    assert r.spec["epochs"] == 10 and "classes" not in r.spec


# --- a dataset pinned to a version: 'pets@v1', 'pets 데이터셋 v1', 'pets version 1' ----------------------

VERSIONED = {"pets": SimpleNamespace(name="pets", task="classify", classes=["cat", "dog", "bird"], versions=[
    {"version": 1, "hash": "3f2a9c11aa00", "classes": ["cat", "dog"]},
    {"version": 2, "hash": "77aa00bb11cc", "classes": ["cat", "dog", "bird"]}])}


@pytest.mark.parametrize("text, ref", [
    ("pets@v1로 resnet18 학습", "pets@v1"), ("train resnet18 on pets@v2 for 5 epochs", "pets@v2"),
    ("pets 데이터셋 v1로 resnet18", "pets@v1"), ("pets version 2 resnet18 10 epochs", "pets@v2"),
    ("pets 버전 1로 resnet18", "pets@v1"), ("resnet18 pets@3f2a9c", "pets@3f2a9c"), ("PETS@V1 resnet18", "pets@v1"),
    ("resnet18 on pets", "pets"),
])
def test_a_pinned_version_is_kept(text, ref):
    r = read(text, VERSIONED)
    assert r.spec["dataset"] == ref and r.ready and r.unplaced == [], (r.spec, r.unplaced, r.errors)


@pytest.mark.parametrize("text", ["pets v3 resnet18", "resnet18 on pets@v9", "pets@abcdef12 resnet18"])
def test_a_version_that_does_not_exist_is_refused_with_the_versions_there_are(text):
    r = read(text, VERSIONED)
    assert not r.ready and any("v1, v2" in e for e in r.errors), r.errors
    assert "v1, v2" in r.question


def test_classes_of_a_pinned_version_are_that_versions():
    r = read("pets@v1 resnet18, dog 빼고", VERSIONED)
    assert r.spec["classes"] == ["cat"]  # v1 has cat and dog; bird came in v2
