"""The run-state table (api/run_states.py): who may cause which change, refusals, repeats, and the
times and errors that go with a change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api import run_states
from api.errors import Conflict
from api.models import Run
from api.run_states import (
    ACTIVE_STATES,
    RUN_STATES,
    SETTLED_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Actor,
    IllegalTransition,
    allowed,
    sources,
    transition,
)

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run_in(state: str, **fields) -> Run:
    return Run(id="r1", spec={}, state=state, **fields)


def test_the_sets_partition_the_states():
    assert set(RUN_STATES) == ACTIVE_STATES | TERMINAL_STATES
    assert not ACTIVE_STATES & TERMINAL_STATES
    assert {"crashed"} == TERMINAL_STATES - SETTLED_STATES
    assert run_in("crashed").terminal and not run_in("running").terminal


def test_the_table_names_only_known_states_and_never_leaves_a_settled_one():
    for (a, b), who in TRANSITIONS.items():
        assert a in RUN_STATES and b in RUN_STATES and a != b and who
        assert a not in SETTLED_STATES, f"{a} -> {b}: a settled state is left"
    for state in SETTLED_STATES:
        for target in RUN_STATES:
            for actor in Actor:
                assert allowed(state, target, actor) == (state == target)


@pytest.mark.parametrize("current,target,actor", [
    ("queued", "running", Actor.TRAINER),  # first heartbeat or claim
    ("crashed", "running", Actor.TRAINER),  # the retried attempt's claim
    ("running", "completed", Actor.TRAINER),  # done callback
    ("queued", "failed", Actor.USER),  # submission failed
    ("running", "failed", Actor.USER),  # claim ticket used twice
    ("running", "cancelled", Actor.USER),
    ("running", "crashed", Actor.REAPER),
    ("crashed", "queued", Actor.PREFECT),  # crash-retry automation
    ("running", "queued", Actor.PREFECT),  # AwaitingRetry
    ("pending", "crashed", Actor.PREFECT),
    ("crashed", "completed", Actor.PREFECT),
    ("queued", "completed", Actor.RECONCILER),  # a run registered after it ended
])
def test_allowed_changes(current, target, actor):
    assert allowed(current, target, actor)
    run = run_in(current)
    assert transition(run, target, by=actor, when=WHEN) is True
    assert run.state == target


@pytest.mark.parametrize("current,target,actor,words", [
    ("completed", "running", Actor.PREFECT, "ended for good"),
    ("failed", "queued", Actor.RECONCILER, "ended for good"),
    ("cancelled", "completed", Actor.TRAINER, "ended for good"),
    ("queued", "completed", Actor.USER, "only prefect, reconciler, trainer may do that"),
    ("queued", "crashed", Actor.REAPER, "only prefect, reconciler may do that"),
    ("running", "crashed", Actor.TRAINER, "only prefect, reaper, reconciler may do that"),
    ("running", "pending", Actor.TRAINER, "only prefect, reconciler may do that"),
    ("crashed", "queued", Actor.TRAINER, "only prefect, reconciler may do that"),
])
def test_refused_changes_say_why_and_change_nothing(current, target, actor, words):
    run = run_in(current, error="before")
    with pytest.raises(IllegalTransition) as refused:
        transition(run, target, by=actor)
    assert isinstance(refused.value, Conflict) and refused.value.status_code == 409
    message = str(refused.value)
    assert f"run r1 cannot go from {current} to {target} by {actor.value}" in message and words in message
    assert run.state == current and run.error == "before" and run.finished is None


def test_an_unknown_state_is_a_value_error():
    with pytest.raises(ValueError, match="'sleeping' is not a run state"):
        transition(run_in("queued"), "sleeping", by=Actor.PREFECT)


def test_a_repeat_changes_nothing_for_anyone():
    for state in RUN_STATES:
        for actor in Actor:
            run = run_in(state, finished=WHEN if state in TERMINAL_STATES else None)
            assert transition(run, state, by=actor, error="ignored") is False
            assert run.state == state and run.error is None


def test_ending_sets_finished_and_error_once():
    run = run_in("running")
    transition(run, "crashed", by=Actor.REAPER, error="no heartbeat", when=WHEN)
    assert (run.finished, run.error) == (WHEN, "no heartbeat")
    run = run_in("running", finished=WHEN)
    transition(run, "failed", by=Actor.TRAINER)
    assert run.finished == WHEN  # a finish time already known stays
    run = run_in("running")
    transition(run, "completed", by=Actor.TRAINER)
    assert run.finished is not None and run.finished.tzinfo is not None and run.error is None


def test_a_retried_crash_is_active_again_without_its_end():
    run = run_in("crashed", finished=WHEN, error="process killed")
    assert transition(run, "running", by=Actor.TRAINER)
    assert run.state == "running" and run.finished is None and run.error is None


def test_sources_drive_the_callbacks_conditional_updates():
    assert sources("running", Actor.TRAINER) == {"queued", "pending", "crashed"}
    assert sources("crashed", Actor.REAPER) == {"running"}
    assert sources("running", Actor.USER) == set()
    assert list(run_states.table_rows())[0] == ("queued", "pending", ("prefect", "reconciler"))
