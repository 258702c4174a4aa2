"""One turn of a chat: the person's message → chat.parse (LLM or offline) → a reply, the spec so
far, and — once the person confirms — a run.

A run is never started without a confirmation: the spec card, with the assumptions made, is
shown first — for a first request and for an edit, a retry or a "continue" after a run
("epochs만 100으로 다시", "retry that run", "이어서 2 에폭 더") alike. It starts when the person
confirms (``confirm: true`` or "응, 시작해" / "yes, go"). "Compare the last two" / "어느 게 더 나아?"
answers with the conversation's last two runs side by side (api.compare); "onnx랑 openvino로 export해줘"
exports the conversation's last finished run and checks each export (tasks.export). Every turn is stored: the person's
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
