"""`vtp parse TEXT`: print what vtp understood, as one JSON object per request.

Plain functions, registered as a command in cli/main.py:

    @app.command("parse")
    def parse_cmd(text: Annotated[str | None, typer.Argument()] = None,
                  full: Annotated[bool, typer.Option("--full")] = False,
                  conversation: Annotated[bool, typer.Option("--conversation")] = False) -> None:
        raise typer.Exit(parse_command(text, sys.stdin, full=full, conversation=conversation))
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from chat.parser import make_context, parse
from chat.result import ParseResult


def render(result: ParseResult, full: bool = False) -> str:
    data: dict[str, Any] = result.model_dump() if full else result.summary()
    return json.dumps(data, ensure_ascii=False)


def parse_command(text: str | None, stdin: IO[str] | None = None, *, full: bool = False, conversation: bool = False,
                  out: IO[str] | None = None) -> int:
    """Parse TEXT, or one request per line of ``stdin`` when TEXT is None; print one JSON object each.

    ``conversation``: lines are turns of one conversation (each sees the spec of the ones before).
    Returns the exit code: 0.
    """
    out = out or sys.stdout
    if text is not None:
        print(render(parse(text), full), file=out, flush=True)
        return 0
    stdin = stdin or sys.stdin
    ctx = make_context(None, None, None, None)  # the registry is read once for the whole stream
    previous: dict[str, Any] | None = None
    for line in stdin:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        result = parse(line, previous=previous if conversation else None, datasets=ctx.datasets,
                       storage_url=ctx.storage_url)
        if conversation and result.spec is not None and result.intent != "cancel":
            previous = result.spec
        print(render(result, full), file=out, flush=True)
    return 0
