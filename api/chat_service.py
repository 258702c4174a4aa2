"""One turn of a chat: the person's message → chat.parse (LLM or offline) → a reply, the spec so
far, and — once the person confirms — a run.

A run is never started without a confirmation: the spec card, with the assumptions made, is
shown first — for a first request and for an edit, a retry or a "continue" after a run
("epochs만 100으로 다시", "retry that run", "이어서 2 에폭 더") alike. It starts when the person
confirms (``confirm: true`` or "응, 시작해" / "yes, go"). "Compare the last two" / "어느 게 더 나아?"
answers with the conversation's last two runs side by side (api.compare); "onnx랑 openvino로 export해줘"
exports the conversation's last finished run and checks each export (tasks.export); "이 모델 production으로
올려줘" promotes it to the model registry (api.registry). Every turn is stored: the person's
message, the assistant's reply with the spec, and a system message naming each run started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import runs_service
from api.errors import ApiError, NotFound
from api.models import ChatMessage, ChatSession, Run
from core.errors import VtpError
from core.settings import Settings
from tasks.dataset_store import list_datasets
from tasks.storage import Storage

RUN_PREFIX = "run "
STARTED = {"ko": "학습을 시작했습니다: 실행 {name} (`{id}`; {model}, {dataset}, {epochs} 에폭).",
           "en": "Started run {name} (`{id}`; {model} on {dataset}, {epochs} epochs)."}
NOT_STARTED = {"ko": "시작하지 못했습니다: {error}", "en": "Could not start it: {error}"}
CANCELLED = {"ko": "실행 {id}을(를) 취소했습니다.", "en": "Cancelled run {id}."}


@dataclass
class Turn:
    session_id: str
    reply: str
    result: Any  # chat.ParseResult
    datasets: list[str]
    run: Run | None = None
    notes: list[str] = field(default_factory=list)


def get_chat(session: Session, *, session_id: str) -> ChatSession:
    chat = session.get(ChatSession, session_id)
    if chat is None:
        raise NotFound(f"no chat session {session_id}: leave session_id out to start a new one")
    return chat


def _session_runs(chat: ChatSession, session: Session) -> list[Run]:
    """The runs this conversation started, oldest first."""
    runs = []
    for message in chat.messages:
        if message.role == "system" and message.content.startswith(RUN_PREFIX):
            run = session.get(Run, message.content[len(RUN_PREFIX):].split()[0])
            if run is not None:
                runs.append(run)
    return runs


def _last_run(chat: ChatSession, session: Session) -> Run | None:
    runs = _session_runs(chat, session)
    return runs[-1] if runs else None


def _comparison(session: Session, chat: ChatSession, refs: list[str], lang: str) -> str:
    """The reply to "compare the last two" / "compare A and B": the runs named, else this
    conversation's last two, filled up from the newest runs in the ledger when it has fewer."""
    from api import compare

    if refs:
        try:
            runs = [compare.find_run(session, ref, lang) for ref in refs]
        except ApiError as e:
            return str(e)
        if len(runs) == 1:  # "compare 3f2a9c1e with the last one"
            last = next((r for r in reversed(_session_runs(chat, session)) if r.id != runs[0].id), None)
            runs = [*runs, last] if last is not None else runs
    else:
        runs = _session_runs(chat, session)[-2:]
    note = ""
    if len(runs) < 2 and not refs:
        own = len(runs)
        newest = session.scalars(select(Run).order_by(Run.created.desc()).limit(4))
        runs = [*runs, *(r for r in newest if r.id not in {x.id for x in runs})][:2]
        runs.sort(key=lambda r: r.created)
        if len(runs) == 2:
            note = compare.say(lang, "from_ledger", n=own)
    if len(runs) < 2:
        return compare.need_two(runs, lang)
    text = compare.compare(session, runs, lang).markdown
    return f"{note}\n\n{text}" if note else text


EXPORT_TEXT = {
    "ko": {"which": "어떤 형식으로 내보낼까요? {formats} 중에서 골라 주세요 (예: \"onnx랑 openvino로 export해줘\").",
           "none": "내보낼 끝난 실행이 이 대화에 없습니다: 먼저 학습을 끝내거나, 실행 id를 적어 주세요 (예: \"export 3f2a9c1e to onnx\").",
           "head": "실행 {name} (`{id}`)을(를) 내보내고 PyTorch와 비교했습니다 (검증 이미지, 이 머신의 CPU 지연 시간):",
           "failed": "내보내지 못했습니다: {error}"},
    "en": {"which": "Which formats should I export to? Choose from {formats} (e.g. \"export to onnx and openvino\").",
           "none": "This conversation has no finished run to export: finish a training first, or name the run "
                   "(e.g. \"export 3f2a9c1e to onnx\").",
           "head": "Exported run {name} (`{id}`) and checked each export against PyTorch (validation images; latency "
                   "on this machine's CPU):",
           "failed": "Could not export it: {error}"},
}


def _export(session: Session, chat: ChatSession, refs: list[str], formats: list[str], lang: str,
            settings: Settings) -> str:
    """The reply to "onnx랑 openvino로 export해줘": the run named, else this conversation's last
    finished one, exported to ``formats`` and checked (tasks.export), one line per format."""
    from api import compare
    from core import frameworks
    from tasks.export import describe_row, export_runs

    text = EXPORT_TEXT[lang]
    if refs:
        try:
            run = compare.find_run(session, refs[0], lang)
        except ApiError as e:
            return str(e)
    else:
        run = next((r for r in reversed(_session_runs(chat, session)) if r.state == "completed"), None)
    if run is None:
        return text["none"]
    offered = frameworks.capabilities(run.spec.get("framework", "")).export if run.spec.get("framework") in \
        frameworks.frameworks() else ()
    if not formats:
        return text["which"].format(formats=", ".join(offered) or "onnx")
    try:
        result = export_runs(run.id, formats, settings=settings)
    except VtpError as e:
        return text["failed"].format(error=str(e))
    rows = "\n".join(f"- {describe_row(r)}" for r in result["rows"])
    return f"{text['head'].format(name=run.name, id=run.id[:8])}\n\n{rows}"


PROMOTE_TEXT = {
    "ko": {"none": "등록할 끝난 실행이 이 대화에 없습니다: 먼저 학습을 끝내거나, 실행 id나 이름을 적어 주세요 "
                   "(예: \"yolo11n-shapes-detect-3 production으로 올려줘\").",
           "head": "실행 {run} (`{id}`)을(를) **{name} v{version}**(으)로 등록했습니다{aliases}: {what}.",
           "aliases": " (별칭 {aliases})", "checkpoint": "PyTorch 체크포인트", "export": "PyTorch 체크포인트와 {path} ({fmt}) 내보내기",
           "metric": "{metric} {value:.4f} ({dataset} 검증 분할, 학습이 끝날 때 측정).",
           "named": "이름을 정하지 않아 모델과 데이터셋 이름을 땄습니다: 다른 이름은 \"forklift-detector라는 이름으로\"처럼 적어 주세요.",
           "best": "이 대화의 끝난 실행 {n}개 중 {metric}이(가) 가장 높은 실행입니다.",
           "many": "내보내기는 하나만 함께 등록할 수 있습니다 ({formats}): 하나를 골라 다시 말해 주세요.",
           "failed": "등록하지 못했습니다: {error}"},
    "en": {"none": "This conversation has no finished run to promote: finish a training first, or name the run "
                   "(e.g. \"promote yolo11n-shapes-detect-3 to production\").",
           "head": "Promoted run {run} (`{id}`) to **{name} v{version}**{aliases}: {what}.",
           "aliases": " (aliases {aliases})", "checkpoint": "its PyTorch checkpoint",
           "export": "its PyTorch checkpoint and its {fmt} export {path}",
           "metric": "{metric} {value:.4f} (on {dataset}'s validation split, measured when training ended).",
           "named": "No name was given, so it is named after its model and dataset: say \"as forklift-detector\" for another.",
           "best": "It is the highest {metric} of this conversation's {n} finished runs.",
           "many": "Only one export can ship with a version ({formats}): say which one.",
           "failed": "Could not promote it: {error}"},
}


def _promote(session: Session, chat: ChatSession, result: Any, settings: Settings) -> str:
    """The reply to "이 모델 production으로 올려줘": the run named, else this conversation's best (when
    asked) or last finished one, promoted to the registry (api.registry) under the name and aliases said."""
    from api import compare, registry
    from core.metric_names import metric_name

    lang = result.language
    text = PROMOTE_TEXT[lang]
    if len(result.formats) > 1:
        return text["many"].format(formats=", ".join(result.formats))
    notes = []
    if result.runs:
        try:
            run = compare.find_run(session, result.runs[0], lang)
        except ApiError as e:
            return str(e)
    else:
        done = [r for r in _session_runs(chat, session) if r.state == "completed"]
        run = done[-1] if done else None
        if result.best and len(done) > 1:
            from tasks.export import main_metric

            metric = main_metric(run.spec or {}) if run else None
            scored = [r for r in done if metric and isinstance((r.final_metrics or {}).get(metric), int | float)]
            if scored:
                run = max(scored, key=lambda r: r.final_metrics[metric])
                notes.append(text["best"].format(metric=metric_name(metric), n=len(done)))
    if run is None:
        return text["none"]
    try:
        version, warnings = registry.promote(session, settings, run, result.registry_name, result.aliases,
                                             result.formats[0] if result.formats else None)
    except ApiError as e:
        session.rollback()
        return text["failed"].format(error=str(e))
    record = version.record
    aliases = text["aliases"].format(aliases=", ".join(result.aliases)) if result.aliases else ""
    export = record.get("export")
    what = text["export"].format(fmt=export["format"], path=export["path"]) if export else text["checkpoint"]
    lines = [text["head"].format(run=run.name or run.id[:8], id=run.id[:8], name=version.model.name,
                                 version=version.version, aliases=aliases, what=what)]
    main = record.get("main_metric") or {}
    if main.get("value") is not None:
        dataset = (record.get("dataset") or {}).get("ref") or (record.get("spec") or {}).get("dataset")
        lines.append(text["metric"].format(metric=metric_name(main["name"]), value=main["value"], dataset=dataset))
    if not result.registry_name:
        lines.append(text["named"])
    return "\n\n".join([*lines, *notes, *warnings])


def _pending_spec(chat: ChatSession) -> dict[str, Any] | None:
    for message in reversed(chat.messages):
        if message.spec:
            return dict(message.spec)
    return None


def chat_turn(session: Session, *, settings: Settings, session_id: str | None, message: str,
              confirm: bool = False) -> Turn:
    from chat import parse

    chat = get_chat(session, session_id=session_id) if session_id else ChatSession(title=message[:200])
    if not session_id:  # None or "": a new conversation
        session.add(chat)
        session.flush()
    storage = Storage(settings=settings)
    registry = list_datasets(storage)
    history = [m for m in chat.messages if m.role in ("user", "assistant")]
    previous = _pending_spec(chat)
    text = message.strip() or ("yes, go" if confirm else "")
    result = parse(text, history, previous=previous, datasets=registry, storage_url=settings.storage_url)
    session.add(ChatMessage(session_id=chat.id, role="user", content=message or "(confirm)"))
    last_run = _last_run(chat, session)
    if result.intent == "resume" and result.ready and last_run is not None and last_run.state == "completed":
        # "이어서 50 에폭 더": the spec shown for confirmation starts from that run's final weights
        result.spec = {**(result.spec or {}), "extends": last_run.id}
    lang = result.language
    lines = [result.reply] if result.reply else []
    run = None
    if result.intent == "compare":
        lines.append(_comparison(session, chat, result.runs, lang))
    elif result.intent == "export":
        lines.append(_export(session, chat, result.runs, result.formats, lang, settings))
    elif result.intent == "promote":
        lines.append(_promote(session, chat, result, settings))
    elif result.intent == "cancel" and last_run is not None and not last_run.terminal:
        runs_service.cancel_run(session, run=last_run, settings=settings)
        lines.append(CANCELLED[lang].format(id=last_run.id[:8]))
    elif result.ready and _should_start(result, confirm=confirm):
        spec_data = dict(result.spec or {})
        try:
            run = runs_service.start_run(session, settings=settings, spec_data=spec_data).run
        except (VtpError, ApiError) as e:
            lines.append(NOT_STARTED[lang].format(error=getattr(e, "message", None) or str(e)))
        else:
            lines.append(STARTED[lang].format(id=run.id[:8], name=run.name, model=run.spec.get("model"),
                                              dataset=run.spec.get("dataset"), epochs=run.spec.get("epochs")))
    reply = "\n\n".join(lines)
    session.add(ChatMessage(session_id=chat.id, role="assistant", content=reply, spec=result.spec))
    if run is not None:
        session.add(ChatMessage(session_id=chat.id, role="system", content=f"{RUN_PREFIX}{run.id}", spec=run.spec))
    session.commit()
    return Turn(session_id=chat.id, reply=reply, result=result, datasets=sorted(registry), run=run)


def _should_start(result: Any, *, confirm: bool) -> bool:
    """Only a confirmation starts a run: the Start button (``confirm``) or a message that is one
    ("응, 시작해", "yes, go"). An edit, a retry or a "continue" after a run shows the new spec
    and asks first, like the first request (issue 14: an edit used to start at once)."""
    return confirm or result.intent == "confirm"


def messages(session: Session, *, session_id: str) -> list[ChatMessage]:
    get_chat(session, session_id=session_id)
    query = select(ChatMessage).where(ChatMessage.session_id == session_id).order_by(ChatMessage.id)
    return list(session.scalars(query))


__all__ = ["Turn", "chat_turn", "messages"]
