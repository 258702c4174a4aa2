"""``GET /api/compare?runs=A&runs=B``: runs side by side, with a verdict (api.compare)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import compare
from api.deps import SessionDep, SettingsDep
from api.errors import ApiError
from api.schemas import ErrorOut

router = APIRouter(prefix="/api/compare", tags=["runs"])


class ComparisonRow(BaseModel):
    label: str
    values: list[str] = Field(description="One shown value per run, in the order of `runs`.")


class ComparisonOut(BaseModel):
    runs: list[str] = Field(description="The runs' ids, in the order asked.")
    metric: str | None = Field(description="The main metric they share (a trainer key, e.g. metrics/mAP50-95(B)); "
                                           "null when they are measured differently.")
    winner: str | None = Field(description="The id of the better run, or null when none can be named (the "
                                           "verdict says why: different datasets or metrics, unfinished runs, a tie).")
    rows: list[ComparisonRow]
    verdict: list[str] = Field(description="Sentences in the asked language.")
    markdown: str = Field(description="The table and the verdict, as the chat shows them.")
    details: dict[str, Any] | None = Field(default=None, description="With details=true, what a comparison view "
                                           "plots (api.compare.details): curves (main metric per epoch), per_class "
                                           "(one per-class metric of every run), plots (artifact paths of confusion "
                                           "matrices and PR curves), exports (each run's checked exports).")


@router.get("", response_model=ComparisonOut, summary="Compare runs side by side",
            responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut, "description": "A run is unknown."}})
def compare_runs(session: SessionDep,
                 runs: Annotated[list[str], Query(min_length=2, max_length=compare.MAX_RUNS,
                                                  description="Run ids, id prefixes (8+ characters) or names.")],
                 settings: SettingsDep,
                 lang: Annotated[Literal["en", "ko"], Query(description="Language of the labels and verdict.")] = "en",
                 details: Annotated[bool, Query(description="Add what a comparison view plots.")] = False,
                 ) -> dict[str, Any]:
    """Which run is better on their shared main metric, named only when the numbers mean the same
    thing (same metric, same dataset, both completed). Values are fractions in 0..1, higher is better."""
    found = [compare.find_run(session, ref[:120], lang) for ref in runs]
    if len({r.id for r in found}) < len(found):
        raise ApiError("the same run is named twice: name two different runs")
    out = compare.compare(session, found, lang).to_dict()
    if details:
        out["details"] = compare.details(session, found, settings)
    return out
