"""Every sentence the parser says, in the person's language: Korean when the message has Hangul,
else English. Keys are stable; the API and tests may rely on them through ``say``."""

from __future__ import annotations

from typing import Any

from chat.lexicon import TASK_NAMES_KO

TEXT: dict[str, dict[str, str]] = {
    "model_default": {"en": "model not given: using {model} (the {task} default)",
                      "ko": "모델을 지정하지 않아 {model}을(를) 씁니다 ({task} 기본 모델)"},
    "model_size_default": {"en": "size not given: using {model}", "ko": "크기를 지정하지 않아 {model}을(를) 씁니다"},
    "model_size_word": {"en": "size from your words: {model}", "ko": "말씀하신 크기에 맞춰 {model}을(를) 씁니다"},
    "yolo_version": {"en": "YOLO version not given: using {family}", "ko": "YOLO 버전을 지정하지 않아 {family}을(를) 씁니다"},
    "alias": {"en": "'{written}' read as {model}", "ko": "'{written}'은(는) {model}(으)로 이해했습니다"},
    "epochs_default": {"en": "epochs not given: using {epochs}", "ko": "에폭을 지정하지 않아 {epochs} 에폭으로 합니다"},
    "task_from_dataset": {"en": "task taken from dataset {dataset}: {task}",
                          "ko": "작업은 데이터셋 {dataset}에 맞춰 {task}(으)로 했습니다"},
    "task_dataset_mismatch": {"en": "dataset {dataset} is registered for {dtask}, but the request is {task}",
                              "ko": "데이터셋 {dataset}은(는) {dtask}용으로 등록되어 있는데 요청은 {task}입니다"},
    "unknown_dataset": {"en": "dataset '{dataset}' is not registered", "ko": "데이터셋 '{dataset}'은(는) 등록되어 있지 않습니다"},
    "unknown_version": {"en": "dataset '{dataset}' has no version '{selector}': its versions are {versions}",
                        "ko": "데이터셋 '{dataset}'에는 '{selector}' 버전이 없습니다. 있는 버전: {versions}"},
    "registry_unreadable": {"en": "the dataset registry could not be read ({error}); dataset names were not checked",
                            "ko": "데이터셋 목록을 읽지 못해({error}) 데이터셋 이름을 확인하지 못했습니다"},
    "huggingface_later": {"en": "{model} is a Hugging Face model: the huggingface framework arrives in a later release",
                          "ko": "{model}은(는) Hugging Face 모델입니다: huggingface 프레임워크는 다음 릴리스에서 지원됩니다"},
    "refused_uri_http": {"en": "{uri} is a web address, never a dataset: use a registered name or s3://bucket/prefix",
                         "ko": "{uri}은(는) 웹 주소라 데이터셋으로 쓰지 않습니다: 등록된 이름이나 s3://버킷/경로를 주세요"},
    "refused_uri_scheme": {"en": "{uri} is not a storage vtp reads: use a registered name or s3://bucket/prefix",
                           "ko": "{uri}은(는) vtp가 읽는 저장소가 아닙니다: 등록된 이름이나 s3://버킷/경로를 주세요"},
    "refused_uri_file_outside_storage": {
        "en": "{uri} is outside vtp's storage: import it first with `vtp datasets add NAME FOLDER`",
        "ko": "{uri}은(는) vtp 저장소 밖에 있습니다: 먼저 `vtp datasets add 이름 폴더`로 가져오세요"},
    "refused_uri_bad_s3": {"en": "{uri} is not a valid s3://bucket/prefix", "ko": "{uri}은(는) 올바른 s3://버킷/경로가 아닙니다"},
    "refused_local_path": {"en": "{path} is a local path: import it first with `vtp datasets add NAME {path}`",
                           "ko": "{path}은(는) 로컬 경로입니다: 먼저 `vtp datasets add 이름 {path}`로 등록하세요"},
    "refused_dataset_name": {"en": "'{uri}' is not a dataset name (letters, digits, '.', '_' or '-')",
                             "ko": "'{uri}'은(는) 데이터셋 이름이 될 수 없습니다 (영문, 숫자, '.', '_', '-')"},
    "refused_value": {"en": "{key}={value} was ignored: it is not a plain value", "ko": "{key}={value}은(는) 값으로 쓸 수 없어 무시했습니다"},
    "clipped": {"en": "the message was long: only its first {n} characters were read",
                "ko": "메시지가 길어 앞의 {n}자만 읽었습니다"},
    "override_mapped": {"en": "{generic} is called {key} in {framework}", "ko": "{framework}에서는 {generic}을(를) {key}(으)로 씁니다"},
    "changed": {"en": "changed {field}: {old} → {new}", "ko": "{field} 변경: {old} → {new}"},
    "model_dropped": {"en": "{model} does not do {task}: using the {task} default instead",
                      "ko": "{model}은(는) {task}을(를) 하지 않아 {task} 기본 모델로 바꿨습니다"},
    "llm_fallback": {"en": "the LLM did not answer ({error}): this reply comes from the offline parser",
                     "ko": "LLM이 응답하지 않아({error}) 오프라인 파서가 답했습니다"},
    "negated": {"en": "{field}: {value} — from '{words}'", "ko": "{field}: {value} — '{words}'에서 읽었습니다"},
    "negated_model": {"en": "'{words}': that model is left out, as you said", "ko": "'{words}'(이)라고 하셔서 그 모델은 쓰지 않습니다"},
    "corrected": {"en": "{field} {new} (you corrected {old} → {new})", "ko": "{field} {new} (정정하신 대로 {old} → {new})"},
    "hedged": {"en": "{field} {value}: you asked whether it is right, so it is not set; say the value you want",
               "ko": "{field} {value}: 괜찮은지 물으셔서 정하지 않았습니다. 원하는 값을 알려 주세요"},
    "unplaced": {"en": "I did not understand {words}: say what they should set, or leave them out",
                 "ko": "{words}은(는) 이해하지 못했습니다: 무엇을 설정하려는 건지 알려 주시거나 빼 주세요"},
    "model_ambiguous": {"en": "'{written}' could be {options}: which one?", "ko": "'{written}'은(는) {options} 중 어느 것인가요?"},
    "export_which": {"en": "export: which format? ({formats})", "ko": "내보낼 형식을 알려 주세요 ({formats})"},
    "option_ignored": {"en": "{framework} has no {option}; ignored", "ko": "{framework}에는 {option} 설정이 없어 무시했습니다"},
    # questions
    "ask_llm_disagrees": {"en": "The message reads {key}={mine}, but the LLM kept answering {theirs}: I used {mine}. "
                                "Is {mine} right?",
                          "ko": "메시지에서는 {key}={mine}(으)로 읽었는데 LLM은 계속 {theirs}(이)라고 답했습니다: {mine}(으)로 "
                                "했습니다. {mine}이(가) 맞나요?"},
    "ask_dataset": {"en": "Which dataset should I train on? Registered: {datasets}. An s3://bucket/prefix works too.",
                    "ko": "어떤 데이터셋으로 학습할까요? 등록된 데이터셋: {datasets}. s3://버킷/경로도 됩니다."},
    "ask_dataset_none": {"en": "Which dataset should I train on? None is registered yet: add one with `vtp datasets add NAME FOLDER` "
                               "or give an s3://bucket/prefix.",
                         "ko": "어떤 데이터셋으로 학습할까요? 아직 등록된 데이터셋이 없습니다: `vtp datasets add 이름 폴더`로 "
                               "등록하거나 s3://버킷/경로를 알려 주세요."},
    "ask_unknown_dataset": {"en": "'{dataset}' is not registered. Use one of: {datasets}, or register it with "
                                  "`vtp datasets add {dataset} FOLDER_OR_URI`.",
                            "ko": "'{dataset}' 데이터셋은 등록되어 있지 않습니다. 다음 중에서 고르거나: {datasets}, "
                                  "`vtp datasets add {dataset} 폴더_또는_URI`로 등록해 주세요."},
    "ask_unknown_dataset_none": {
        "en": "'{dataset}' is not registered, and no dataset is yet: register it with "
              "`vtp datasets add {dataset} FOLDER_OR_URI`, or give an s3://bucket/prefix.",
        "ko": "'{dataset}' 데이터셋은 등록되어 있지 않고, 등록된 데이터셋도 아직 없습니다: "
              "`vtp datasets add {dataset} 폴더_또는_URI`로 등록하거나 s3://버킷/경로를 알려 주세요."},
    "ask_task": {"en": "What should the model do: detect (boxes), segment (masks), classify (whole image), pose (keypoints) "
                       "or obb (rotated boxes)? Or name a model (yolo11n, resnet50).",
                 "ko": "어떤 작업인가요: 탐지(detect), 분할(segment), 분류(classify), 자세 추정(pose), 회전 박스(obb)? "
                       "모델 이름(yolo11n, resnet50)을 알려 주셔도 됩니다."},
    "ask_fix": {"en": "That cannot run as asked: {error} What should I change?",
                "ko": "그대로는 학습할 수 없습니다: {error} 어떻게 바꿀까요?"},
    "ask_huggingface": {"en": "Hugging Face training ({model}) arrives in a later release. Use a model vtp trains today instead "
                              "(e.g. {alternative})?",
                        "ko": "Hugging Face 학습({model})은 다음 릴리스에서 지원됩니다. 지금 학습할 수 있는 모델(예: {alternative})로 "
                              "바꿀까요?"},
    "ask_what": {"en": "What should I train? Name a dataset and a task or model, e.g. 'detect with yolo11n on coco8'.",
                 "ko": "무엇을 학습할까요? 데이터셋과 작업 또는 모델을 알려 주세요. 예: 'coco8으로 yolo11n 탐지 학습'."},
    "ask_nothing_to_repeat": {"en": "There is no earlier run in this conversation to {action}. What should I train?",
                              "ko": "이 대화에는 {action}할 이전 학습이 없습니다. 무엇을 학습할까요?"},
    # replies
    "summary": {"en": "{model} ({task}) on {dataset}{extras}", "ko": "{dataset} 데이터셋으로 {model} ({task}){extras}"},
    "ask_confirm": {"en": "Ready: {summary}. Start it?", "ko": "준비됐습니다: {summary}. 시작할까요?"},
    "cancelled": {"en": "Cancelled. Nothing will run.", "ko": "취소했습니다. 아무것도 실행하지 않습니다."},
    "retrying": {"en": "Run it again: {summary}. Start it?", "ko": "같은 설정으로 다시 학습할 준비가 됐습니다: {summary}. 시작할까요?"},
    "compare_new_models": {
        "en": "Training several models to compare them is not available yet: below are the runs you already have. "
              "To compare a new model, start it, and ask again when it has finished.",
        "ko": "여러 모델을 새로 학습해 비교하는 기능은 아직 없습니다: 아래는 이미 끝난 실행들의 비교입니다. "
              "새 모델과 비교하려면 먼저 학습을 시작하고, 끝난 뒤 다시 물어봐 주세요."},
    "promote_after_training": {
        "en": "I read this as a training request, so nothing is promoted now ({aliases}): when the run has finished, "
              "ask \"promote it to production\" (or `vtp models promote RUN --alias production`).",
        "ko": "학습 요청으로 읽었기 때문에 지금은 모델을 등록하지 않습니다 ({aliases}): 학습이 끝난 뒤 "
              "\"이 모델 production으로 올려줘\"라고 하거나 `vtp models promote RUN --alias production`을 쓰세요."},
    "stage_word": {"en": "'{word}' is read as the alias {alias}.", "ko": "'{word}'은(는) 별칭 {alias}(으)로 읽었습니다."},
    "resuming": {"en": "Continue from the last run's weights: {summary}. Start it?",
                 "ko": "이전 학습의 가중치에서 이어서 학습할 준비가 됐습니다: {summary}. 시작할까요?"},
}
ACTION = {"retry": {"en": "run again", "ko": "다시 실행"}, "resume": {"en": "resume", "ko": "이어서 진행"},
          "confirm": {"en": "start", "ko": "시작"}}
FIELD_KO = {"epochs": "에폭", "batch_size": "배치", "image_size": "이미지 크기", "learning_rate": "학습률", "model": "모델",
            "dataset": "데이터셋", "task": "작업", "device": "장치", "devices": "여러 장치", "seed": "시드", "patience": "조기 종료",
            "workers": "워커", "pretrained": "사전 학습", "framework": "프레임워크", "overrides": "추가 설정",
            "val_fraction": "검증 비율", "max_time": "최대 시간(분)", "accumulate": "그래디언트 누적", "classes": "클래스",
            "export": "내보내기", "amp": "AMP", "cos_lr": "코사인 학습률"}


def say(lang: str, key: str, /, **kwargs: Any) -> str:
    lang = "ko" if lang == "ko" else "en"
    if lang == "ko" and "task" in kwargs and kwargs["task"] in TASK_NAMES_KO:
        kwargs = {**kwargs, "task": f"{TASK_NAMES_KO[kwargs['task']]}"}
    if lang == "ko" and "field" in kwargs:
        kwargs = {**kwargs, "field": FIELD_KO.get(kwargs["field"], kwargs["field"])}
    return TEXT[key][lang].format(**kwargs)


def summary(lang: str, spec: dict[str, Any]) -> str:
    extras = []
    labels = {"en": {"epochs": "{} epochs", "image_size": "{}px", "batch_size": "batch {}", "device": "on {}",
                     "learning_rate": "lr {}"},
              "ko": {"epochs": "{} 에폭", "image_size": "{}px", "batch_size": "배치 {}", "device": "{}에서",
                     "learning_rate": "학습률 {}"}}["ko" if lang == "ko" else "en"]
    if lang != "ko" and spec.get("epochs") == 1:
        labels["epochs"] = "{} epoch"
    for key, fmt in labels.items():
        if spec.get(key) is not None:
            extras.append(fmt.format(spec[key]))
    if spec.get("devices"):
        extras.append(_devices_text(lang, str(spec["devices"])))
    if spec.get("pretrained") is False:
        extras.append("from scratch" if lang != "ko" else "처음부터")
    text = ", ".join(extras)
    return say(lang, "summary", model=spec.get("model") or "?", task=spec.get("task") or "?",
               dataset=spec.get("dataset") or "?", extras=(", " + text) if text else "")


def _devices_text(lang: str, devices: str) -> str:
    """'in 2 CPU processes' / 'GPU 0, 1에서 (GPU마다 한 프로세스)' for the summary; the value as written when it
    does not parse (the spec's own error says why)."""
    from core.devices import parse_devices

    try:
        d = parse_devices(devices)
    except ValueError:
        return devices
    if lang == "ko":
        return f"CPU 프로세스 {d.count}개로" if d.kind == "cpu" else f"GPU {', '.join(map(str, d.gpus))}에서 (GPU마다 한 프로세스)"
    return f"in {d.describe()}" if d.kind == "cpu" else f"on {d.describe()} (one process each)"
