"""``POST /api/chat`` (one turn: reply, spec so far, and the run once confirmed) and
``GET /api/chat/{session_id}`` (the conversation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import chat_service
from api.deps import SessionDep, SettingsDep
from api.schemas import ApiIn, ErrorOut, RunOut

router = APIRouter(prefix="/api/chat", tags=["chat"])


class ChatIn(ApiIn):
    session_id: str | None = Field(default=None, description="Leave out to start a conversation.")
    message: str = Field(default="", max_length=4000, description="What the person typed (Korean or English).")
    confirm: bool = Field(default=False, description="Start the spec shown last (the Start button).")


class ChatOut(BaseModel):
    session_id: str
    reply: str = Field(description="What to show the person, in their language.")
    language: str
    intent: str
    spec: dict[str, Any] | None = Field(description="Every field known so far, inferred ones included.")
    missing: list[str]
    question: str | None
    notes: list[str] = Field(description="Assumptions made (shown before anything runs) and refusals.")
    unplaced: list[str] = Field(default_factory=list, description="Words of the message the parser could not "
                                "place, as written (the reply and the spec card list them; nothing was guessed).")
    errors: list[str]
    ready: bool = Field(description="The spec can be started as it stands.")
    effective_spec: dict[str, Any] | None = Field(
        default=None, description="When ready: the spec exactly as a run would get it, defaults filled in "
                                  "(what the spec card shows, so no field reads '—' while a default applies).")
    datasets: list[str] = Field(description="Registered datasets, for quick choices.")
    run: RunOut | None = Field(description="The run this turn started, if any.")
    source: str = Field(description="offline or llm: which parser read the message.")


class ChatMessageOut(BaseModel):
    role: str
    content: str
    spec: dict[str, Any] | None
    created: datetime


class ChatHistoryOut(BaseModel):
    session_id: str
    messages: list[ChatMessageOut]


@router.post("", response_model=ChatOut, summary="Say something to vtp",
             responses={404: {"model": ErrorOut, "description": "Unknown session_id."}})
async def chat(body: ChatIn, session: SessionDep, settings: SettingsDep) -> ChatOut:
    """The message is data only: it is parsed into a spec, never run, fetched or opened. A run starts
    only once the person confirms."""
    turn = await run_in_threadpool(chat_service.chat_turn, session, settings=settings, session_id=body.session_id,
                                   message=body.message, confirm=body.confirm)
    r = turn.result
    return ChatOut(session_id=turn.session_id, reply=turn.reply, language=r.language, intent=r.intent, spec=r.spec,
                   missing=r.missing, question=r.question, notes=r.notes, unplaced=r.unplaced, errors=r.errors, ready=r.ready,
                   datasets=turn.datasets, run=RunOut.model_validate(turn.run) if turn.run else None, source=r.source,
                   effective_spec=effective(r.spec) if r.ready else None)


def effective(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """``spec`` validated as a run would be (core.spec.parse_spec), as JSON values; None when it
    does not validate (the reply's errors say why)."""
    from core.errors import SpecError
    from core.spec import parse_spec

    try:
        return parse_spec(dict(spec or {})).model_dump(mode="json")
    except SpecError:
        return None


@router.get("/{session_id}", response_model=ChatHistoryOut, summary="A conversation so far",
            responses={404: {"model": ErrorOut}})
def history(session_id: str, session: SessionDep) -> ChatHistoryOut:
    rows = chat_service.messages(session, session_id=session_id)
    return ChatHistoryOut(session_id=session_id, messages=[ChatMessageOut.model_validate(m, from_attributes=True)
                                                           for m in rows])
