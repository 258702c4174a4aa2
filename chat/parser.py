"""``parse(message, history)``: the one entry point. Picks the LLM path when one is configured
(falling back to the offline parser when it fails), and the offline parser otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chat import offline
from chat.assemble import assemble
from chat.llm_settings import LLMSettings
from chat.replies import say
from chat.result import Context, ParseResult


def parse(
    message: str,
    history: Sequence[Any] | None = None,
    *,
    previous: Mapping[str, Any] | Any | None = None,
    datasets: Mapping[str, Any] | None = None,
    storage_url: str | None = None,
    use_llm: bool | None = None,
    llm_settings: LLMSettings | None = None,
) -> ParseResult:
    """Read one message of a conversation.

    ``history``: the earlier turns, oldest first. Each is a ParseResult, a mapping or object with
    ``spec`` (the API's chat messages), or a plain string / ``{"role": "user", "content": ...}``
    without a spec (replayed through the offline parser). ``previous`` (a spec dict or TrainSpec)
    wins over ``history``. ``datasets`` (name -> DatasetRecord) defaults to the storage registry.
    ``use_llm``: None = when VTP_LLM_BASE_URL or VTP_LLM_MODEL is set.
    """
    ctx = make_context(history, previous, datasets, storage_url)
    settings = llm_settings if llm_settings is not None else (LLMSettings() if use_llm is not False else None)
    if use_llm is None:
        use_llm = settings is not None and settings.configured
    if not use_llm or settings is None:
        return assemble(offline.extract(message, ctx), ctx)
    from chat import llm

    outcome = llm.extract(message, ctx, settings)
    if outcome.extraction is not None:
        result = assemble(outcome.extraction, ctx)
    else:
        ex = offline.extract(message, ctx)
        ex.notes.insert(0, ("llm_fallback", {"error": outcome.error}))
        result = assemble(ex, ctx)
        if outcome.disagreements:  # the LLM kept reading a field otherwise: say both readings and ask
            asks = [say(result.language, "ask_llm_disagrees", key=field, mine=_shown(mine), theirs=_shown(theirs))
                    for field, (mine, theirs) in outcome.disagreements.items()]
            result.question = " ".join([*asks, result.question or ""]).strip()
            result.ready = False
            result.reply = "\n".join(filter(None, [result.reply, *asks]))
    result.llm_calls, result.llm_error = outcome.calls, outcome.error
    return result


def _shown(value: Any) -> str:
    return "-" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def make_context(history: Sequence[Any] | None, previous: Any, datasets: Mapping[str, Any] | None,
                 storage_url: str | None) -> Context:
    registry_error = None
    if storage_url is None or datasets is None:
        from core.settings import get_settings

        settings = get_settings()
        storage_url = storage_url or settings.storage_url
        if datasets is None:
            datasets, registry_error = _registered(settings)
    ctx = Context(datasets=dict(datasets), storage_url=storage_url, registry_error=registry_error)
    ctx.previous = spec_of(previous) if previous is not None else previous_from_history(history or (), ctx)
    return ctx


def _registered(settings: Any) -> tuple[dict[str, Any], str | None]:
    from core.errors import VtpError
    from tasks.dataset_store import list_datasets
    from tasks.storage import Storage

    try:
        return list_datasets(Storage(settings=settings)), None
    except (VtpError, OSError, ValueError) as e:
        return {}, str(e)[:200]


def spec_of(item: Any) -> dict[str, Any] | None:
    """A spec dict from a ParseResult, a TrainSpec, a mapping, or None."""
    if item is None:
        return None
    if isinstance(item, ParseResult):
        return dict(item.spec) if item.spec else None
    if hasattr(item, "model_dump") and hasattr(item, "dataset"):  # a TrainSpec
        return {k: v for k, v in item.model_dump(exclude_defaults=True).items() if v is not None}
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if v is not None} or None
    return None


def previous_from_history(history: Sequence[Any], ctx: Context) -> dict[str, Any] | None:
    """The session's last spec: the newest turn carrying one, or the replay of user turns without."""
    previous: dict[str, Any] | None = None
    for turn in history:
        spec, text, role = _turn_parts(turn)
        if spec is not None:
            previous = spec
        elif text and role == "user":
            replay_ctx = Context(datasets=ctx.datasets, storage_url=ctx.storage_url, previous=previous,
                                 registry_error=ctx.registry_error)
            result = assemble(offline.extract(text, replay_ctx), replay_ctx)
            if result.spec is not None:
                previous = result.spec
    return previous


def _turn_parts(turn: Any) -> tuple[dict[str, Any] | None, str | None, str]:
    if isinstance(turn, str):
        return None, turn, "user"
    if isinstance(turn, ParseResult):
        return spec_of(turn), None, "assistant"
    if isinstance(turn, Mapping):
        return spec_of(turn.get("spec")), turn.get("content"), str(turn.get("role") or "user")
    return spec_of(getattr(turn, "spec", None)), getattr(turn, "content", None), str(getattr(turn, "role", "user"))
