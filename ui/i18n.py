"""Korean and English interface text. The language follows the browser (navigator.language) and a
switch at the top; every labelled component registers here so a switch relabels the whole page."""

from __future__ import annotations

from typing import Any

import gradio as gr

LANGS = ("en", "ko")

STRINGS: dict[str, tuple[str, str]] = {  # key: (English, Korean)
    "title": ("## vtp — vision training", "## vtp — 비전 모델 학습"),
    "lang": ("Language", "언어"),
    "tab_chat": ("Chat", "채팅"), "tab_runs": ("Runs", "실행"), "tab_datasets": ("Datasets", "데이터셋"),
    "tab_models": ("Models", "모델"), "tab_compare": ("Compare", "비교"),
    "cmp_pick": ("Runs to compare (2 to 6)", "비교할 실행 (2~6개)"), "cmp_go": ("Compare", "비교하기"),
    "cmp_need_two": ("Pick at least two runs.", "실행을 두 개 이상 고르세요."),
    "cmp_plot": ("Main metric by epoch, and per class", "에폭별 주 지표와 클래스별 지표"),
    "cmp_gallery": ("Confusion matrices and PR curves", "혼동 행렬과 PR 곡선"),
    "cmp_confusion_matrix": ("confusion matrix", "혼동 행렬"), "cmp_pr_curve": ("PR curve", "PR 곡선"),
    "cmp_per_class": ("{metric} per class (0–1, higher is better; the best epoch's validation)",
                      "클래스별 {metric} (0–1, 높을수록 좋음; 최고 에폭의 검증 결과)"),
    "cmp_class": ("Class", "클래스"),
    "cmp_no_per_class": ("The runs share no per-class metric (a run without an evaluation report, or different tasks).",
                         "실행들에 공통된 클래스별 지표가 없습니다 (평가 보고서가 없는 실행이 있거나 작업이 다릅니다)."),
    "cmp_exports": ("Checked exports", "검사한 내보내기"),
    "cmp_exports_head": ("| Run | Format | MB | ms/image (p50) | Metric drop |", "| 실행 | 형식 | MB | 이미지당 ms (p50) | 지표 하락 |"),
    "cmp_no_exports": ("None of these runs has a checked export yet (Models tab: *Export and check*).",
                       "이 실행들에는 아직 검사한 내보내기가 없습니다 (모델 탭: *내보내고 검사하기*)."),
    "chat": ("Conversation", "대화"),
    "message": ("Your request", "요청"),
    "message_ph": ("e.g. train YOLO11n on shapes-detect for 2 epochs, image size 64",
                   "예: shapes-detect 데이터셋으로 YOLO11n 2에폭 학습해줘, 이미지 크기 64"),
    "send": ("Send", "보내기"), "start": ("Start", "시작"), "edit": ("Edit", "수정"), "new_chat": ("New chat", "새 대화"),
    "choices": ("Registered datasets", "등록된 데이터셋"),
    "edit_hint": ("epochs=", "epochs="),
    "spec_title": ("Training plan", "학습 계획"),
    "task": ("Task", "작업"), "model": ("Model", "모델"), "dataset": ("Dataset", "데이터셋"), "epochs": ("Epochs", "에폭"),
    "image_size": ("Image size", "이미지 크기"), "batch": ("Batch", "배치"), "pretrained": ("Pretrained", "사전학습"),
    "assumptions": ("Assumptions", "가정한 내용"), "problems": ("Problems", "문제"),
    "missing": ("Still needed", "추가로 필요한 정보"),
    "ready_hint": ("Press **Start** to train, or **Edit** to change something.",
                   "**시작**을 누르면 학습합니다. 바꿀 것이 있으면 **수정**을 누르세요."),
    "started": ("Run `{id}` started.", "실행 `{id}`을(를) 시작했습니다."),
    "eta": ("ETA", "남은 시간"), "loss": ("loss", "손실"),
    "final_metrics": ("Final metrics", "최종 지표"),
    "checkpoint": ("Checkpoint", "체크포인트"), "plots": ("Plots", "그래프"),
    "no_start": ("There is no plan to start yet: describe the training first.",
                 "아직 시작할 계획이 없습니다. 먼저 학습 내용을 알려주세요."),
    "error": ("⚠ {msg}", "⚠ {msg}"),  # U+26A0 without the emoji selector: a text glyph every font has
    "runs_table": ("Runs", "실행 목록"), "refresh": ("Refresh", "새로고침"), "run": ("Run", "실행"),
    "cancel": ("Cancel", "취소"), "retry": ("Retry", "다시 실행"), "logs": ("Log tail", "로그 (마지막 부분)"),
    "metrics_plot": ("Metrics by epoch", "에폭별 지표"), "prefect_link": ("Open in the Prefect UI", "Prefect UI에서 보기"),
    "cols": ("id|name|state|model|dataset|progress|metric|started|duration",
             "ID|이름|상태|모델|데이터셋|진행|지표|시작|소요 시간"),
    "upload_title": ("### Upload a dataset archive (.zip, .tar.gz)", "### 데이터셋 압축 파일 올리기 (.zip, .tar.gz)"),
    "archive": ("Archive", "압축 파일"), "name": ("Name", "이름"), "upload": ("Upload", "올리기"),
    "val_share": ("Validation share, when the archive has no val split", "검증 비율 (압축 파일에 val 분할이 없을 때)"),
    "register_title": ("### Register a storage URI", "### 저장소 URI 등록"),
    "uri": ("URI (s3://bucket/prefix or file:///path)", "URI (s3://bucket/prefix 또는 file:///path)"),
    "register": ("Register", "등록"),
    "sample_title": ("### Generate a sample dataset", "### 예제 데이터셋 만들기"),
    "sample": ("Sample", "예제"), "generate": ("Generate", "만들기"),
    "datasets": ("Datasets", "데이터셋 목록"), "report": ("Validation report", "검증 보고서"),
    "gallery": ("Samples with labels", "라벨이 그려진 샘플"),
    "class_chart": ("Instances per class and split (objects; images for classification)",
                    "클래스·분할별 인스턴스 수 (객체 수, 분류는 이미지 수)"),
    "need_name": ("Give the dataset a name.", "데이터셋 이름을 입력하세요."),
    "need_file": ("Choose an archive first.", "먼저 압축 파일을 고르세요."),
    "unchanged": ("the same content as v{version}: nothing new was stored",
                  "v{version}과(와) 같은 내용이라 새로 저장한 것이 없습니다"),
    "imported": ("Dataset **{name}** imported: {n} classes.", "데이터셋 **{name}**을(를) 가져왔습니다: 클래스 {n}개."),
    "models": ("Trained checkpoints", "학습된 체크포인트"), "image": ("Image", "이미지"),
    "predict": ("Predict", "예측"), "prediction": ("Prediction", "예측 결과"), "download": ("Download checkpoint", "체크포인트 받기"),
    "need_model": ("Pick a trained model first.", "먼저 학습된 모델을 고르세요."),
    "need_image": ("Drop in an image first.", "먼저 이미지를 넣으세요."),
    "preds_classify": ("Top classes · probability (softmax, 0–1)", "상위 클래스 · 확률 (softmax, 0–1)"),
    "preds_detect": ("{n} objects · confidence (0–1) · box x1, y1, x2, y2 in pixels of the image",
                     "객체 {n}개 · 신뢰도 (0–1) · 상자 x1, y1, x2, y2 (이미지 픽셀)"),
    "no_runs": ("No completed runs yet.", "아직 완료된 실행이 없습니다."),
    "export_formats": ("Export formats", "내보낼 형식"), "export_run": ("Export and check", "내보내고 검사하기"),
    "exports_title": ("Exports, each checked against PyTorch on the validation images (latency on the API machine's CPU)",
                      "내보낸 모델: 검증 이미지로 PyTorch와 비교 (지연 시간은 API 머신의 CPU 기준)"),
    "exports_none": ("No exports yet: pick formats and press *Export and check*.",
                     "아직 내보낸 모델이 없습니다: 형식을 고르고 *내보내고 검사하기*를 누르세요."),
    "exports_head": ("| Format | MB | ms/image (p50) | Metric | Export | PyTorch | Drop | Max abs. diff |",
                     "| 형식 | MB | ms/이미지 (p50) | 지표 | 내보낸 모델 | PyTorch | 하락 | 최대 출력 차이 |"),
    "exports_note": ("Note", "비고"), "exports_machine": ("Measured on: {machine}", "측정한 머신: {machine}"),
    "need_formats": ("Pick at least one format.", "형식을 하나 이상 고르세요."),
    "registry_title": ("Model registry", "모델 레지스트리"),
    "reg_name": ("Model name (empty: <model>-<dataset>)", "모델 이름 (비우면 <모델>-<데이터셋>)"),
    "reg_alias": ("Aliases, comma-separated (production, staging, ...)", "별칭, 쉼표로 구분 (production, staging 등)"),
    "reg_export": ("Ship with", "함께 등록할 파일"), "reg_pytorch": ("PyTorch checkpoint only", "PyTorch 체크포인트만"),
    "promote": ("Promote to registry", "레지스트리에 등록"),
    "promoted": ("Promoted to **{name} v{version}**{aliases}.", "**{name} v{version}**(으)로 등록했습니다{aliases}."),
    "reg_model": ("Model", "모델"), "reg_alias_one": ("Alias", "별칭"), "reg_version": ("Version (3, v3, latest)", "버전 (3, v3, latest)"),
    "set_alias": ("Point alias", "별칭 지정"),
    "alias_set": ("**{name}**: {alias} → v{version}.", "**{name}**: {alias} → v{version}."),
    "need_alias": ("Give the model, the alias and the version.", "모델, 별칭, 버전을 모두 입력하세요."),
    "registry_none": ("No registered models yet: pick a run and press *Promote to registry*.",
                      "등록된 모델이 아직 없습니다: 실행을 고르고 *레지스트리에 등록*을 누르세요."),
    "registry_head": ("| Model | Version | Aliases | Run | Ships | Main metric | Dataset | Promoted |",
                      "| 모델 | 버전 | 별칭 | 실행 | 파일 | 주 지표 | 데이터셋 | 등록 시각 |"),
    "registry_note": ("Versions never change: promoting again makes a new one; an alias moves. The main metric is the run's "
                      "final value on its dataset's validation split.",
                      "버전은 바뀌지 않습니다: 다시 등록하면 새 버전이 생기고, 별칭은 옮겨집니다. 주 지표는 실행이 끝날 때 "
                      "데이터셋 검증 분할에서 잰 값입니다."),
    "exporting": ("Exported {n} format(s).", "{n}개 형식을 내보냈습니다."),
    "extends": ("Continues run", "이어서 학습할 실행"), "waiting": ("Waiting for the run to start …", "실행이 시작되기를 기다리는 중 …"),
    "field": ("Field", "항목"), "value": ("Value", "값"),
    "val_fraction": ("Validation share", "검증 비율"), "max_time": ("Time budget (min)", "최대 학습 시간(분)"),
    "accumulate": ("Gradient accumulation", "그래디언트 누적"), "classes": ("Classes", "클래스"),
    "export": ("Export", "내보내기"), "unplaced": ("Not understood", "이해하지 못한 말"),
    "conf": ("Confidence threshold (objects below it are not shown)", "신뢰도 임계값 (이보다 낮은 객체는 표시하지 않음)"), "error_label": ("Error", "오류"),
    "state_queued": ("queued", "대기 중"), "state_pending": ("starting", "시작 중"), "state_running": ("running", "학습 중"),
    "state_completed": ("completed", "완료"), "state_failed": ("failed", "실패"), "state_cancelled": ("cancelled", "취소됨"),
    "state_crashed": ("crashed", "비정상 종료"),
    # {run}: the readable name beside the short id (cards.run_label), already Markdown
    "progress_run": ("Run {run} — {state} · epoch {done}/{total}", "실행 {run} — {state} · 에폭 {done}/{total}"),
    "result_title_run": ("Result of run {run}", "실행 {run} 결과"),
    "run_failed_run": ("Run {run} ended **{state}**: {error}", "실행 {run}이(가) **{state}** 상태로 끝났습니다: {error}"),
    "cancel_sent_run": ("Cancel requested for {run}.", "{run} 취소를 요청했습니다."),
    "retried_run": ("Retry started as {run}.", "{run}(으)로 다시 실행했습니다."),
    "run_id": ("Run id", "실행 ID"),
    "polling": ("live updates unavailable: polling the API", "실시간 연결 불가: API를 주기적으로 조회 중"),
}


def state_name(state: str | None, lang: str = "en") -> str:
    """A run state in the page's language (the API's value when it is not one vtp knows)."""
    key = f"state_{state}"
    return t(key, lang) if key in STRINGS else str(state or "—")


def t(key: str, lang: str = "en", **fmt: Any) -> str:
    en, ko = STRINGS[key]
    text = ko if lang == "ko" else en
    return text.format(**fmt) if fmt else text


def pick_lang(value: str | None) -> str:
    """'ko-KR' → 'ko'; anything else → 'en'."""
    return "ko" if (value or "").lower().startswith("ko") else "en"


BROWSER_LANG_JS = "() => (navigator.language || 'en')"


class Labels:
    """Components and the attribute each takes from STRINGS (label, value, placeholder, ...)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str, str]] = []

    def __call__(self, component: Any, key: str, attr: str = "label") -> Any:
        self.items.append((component, key, attr))
        return component

    @property
    def components(self) -> list[Any]:
        return [c for c, _, _ in self.items]

    def updates(self, lang: str) -> list[Any]:
        out = []
        for _, key, attr in self.items:
            value: Any = t(key, lang)
            if key == "cols":
                value = None
                out.append(gr.update(headers=t(key, lang).split("|")))
                continue
            out.append(gr.update(**{attr: value}))
        return out
