"""The one owner of a run's state: the states, which transitions exist, who may cause each, and
the one function that applies them.

States::

    queued ──► pending ──► running ──► completed | failed | cancelled
       │          │           │
       └──────────┴───────────┴──► crashed ──► queued | pending | running (Prefect retries it)
                                      └──────► completed | failed | cancelled

Sets (one name each):

* ``ACTIVE_STATES`` (queued, pending, running): the run is waiting or executing.
* ``TERMINAL_STATES`` (completed, failed, cancelled, crashed): the run is not executing; its
  ``finished`` time is set. A crashed run may still come back: vtp's crash-retry automation in
  Prefect runs it again, and its next attempt turns it running.
* ``SETTLED_STATES`` (completed, failed, cancelled): terminal for good; no transition leaves them
  and the trainer callbacks of a settled run are refused.

Who causes a transition (:class:`Actor`): the API on a person's request (``user``: cancel, a failed
submission, a claim ticket used twice), the trainer's callbacks (``trainer``: heartbeat, claim,
done), the mirror of Prefect's flow-run state (``prefect``), the stale-run reaper (``reaper``) and
the ledger (``reconciler``: runs started outside the API, adopted from Prefect or registered by
``POST /api/runs/register``).

:func:`transition` applies one change to a :class:`api.models.Run` (not committed): it refuses an
illegal one with :class:`IllegalTransition` (a 409), does nothing for a repeat (same state), and keeps
``finished`` and ``error`` consistent with the state. The callbacks' single-statement UPDATEs take
their conditions from the same table (:func:`sources`, :func:`to_running_sql`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from api.errors import Conflict

if TYPE_CHECKING:
    from api.models import Run

RUN_STATES: tuple[str, ...] = ("queued", "pending", "running", "completed", "failed", "cancelled", "crashed")
ACTIVE_STATES: frozenset[str] = frozenset({"queued", "pending", "running"})
SETTLED_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
TERMINAL_STATES: frozenset[str] = SETTLED_STATES | {"crashed"}


class Actor(StrEnum):
    """Who causes a state change."""

    USER = "user"  # the API acting on a person's request (cancel, submission failed, ticket misused)
    TRAINER = "trainer"  # the run's own callbacks (claim, heartbeat, metrics, done)
    PREFECT = "prefect"  # the mirror of the Prefect flow run's state
    REAPER = "reaper"  # the stale-run monitor (no heartbeat for VTP_STALE_AFTER_S)
    RECONCILER = "reconciler"  # the ledger: runs adopted from Prefect or registered by their flow


U, T, P, R, L = Actor.USER, Actor.TRAINER, Actor.PREFECT, Actor.REAPER, Actor.RECONCILER

# (from, to) -> who may cause it. Anything not listed is illegal.
TRANSITIONS: dict[tuple[str, str], frozenset[Actor]] = {
    # waiting and starting
    ("queued", "pending"): frozenset({P, L}),
    ("pending", "queued"): frozenset({P, L}),  # Prefect reschedules (AwaitingRetry) before running
    ("queued", "running"): frozenset({T, P, L}),
    ("pending", "running"): frozenset({T, P, L}),
    ("running", "queued"): frozenset({P, L}),  # a flow-level retry: AwaitingRetry is Scheduled
    ("running", "pending"): frozenset({P, L}),
    # ending
    **{(a, "completed"): frozenset({T, P, L}) for a in ("queued", "pending", "running", "crashed")},
    **{(a, "failed"): frozenset({U, T, P, L}) for a in ("queued", "pending", "running", "crashed")},
    **{(a, "cancelled"): frozenset({U, T, P, L}) for a in ("queued", "pending", "running", "crashed")},
    ("queued", "crashed"): frozenset({P, L}),
    ("pending", "crashed"): frozenset({P, L}),
    ("running", "crashed"): frozenset({P, R, L}),
    # a crashed run retried by Prefect's crash-retry automation
    ("crashed", "queued"): frozenset({P, L}),
    ("crashed", "pending"): frozenset({P, L}),
    ("crashed", "running"): frozenset({T, P, L}),
}


class IllegalTransition(Conflict):
    """A state change the table does not allow (HTTP 409)."""

    def __init__(self, run_id: str, current: str, target: str, by: Actor):
        allowed = sorted(a.value for a in TRANSITIONS.get((current, target), ()))
        why = (f"only {', '.join(allowed)} may do that" if allowed
               else "no one may: " + ("the run has ended for good" if current in SETTLED_STATES
                                      else f"{current} never becomes {target}"))
        super().__init__(f"run {run_id} cannot go from {current} to {target} by {by.value}: {why}",
                         run_id=run_id)
        self.current, self.target, self.by = current, target, by


def allowed(current: str, target: str, by: Actor) -> bool:
    """Whether ``by`` may move a run from ``current`` to ``target`` (a repeat counts as allowed)."""
    if target not in RUN_STATES:
        raise ValueError(f"{target!r} is not a run state; the states are {', '.join(RUN_STATES)}")
    return current == target or Actor(by) in TRANSITIONS.get((current, target), ())


def sources(target: str, by: Actor) -> frozenset[str]:
    """The states ``by`` may move a run to ``target`` from (for conditional UPDATE statements)."""
    return frozenset(a for (a, b), who in TRANSITIONS.items() if b == target and Actor(by) in who)


def transition(run: Run, target: str, *, by: Actor, error: str | None = None, when: datetime | None = None) -> bool:
    """Move ``run`` to ``target``; True when its state changed, False for a repeat (nothing changes).

    Entering a terminal state sets ``finished`` (``when``, default now, unless already set) and
    ``error`` (when given); leaving crashed for an active state (a retry) clears both. Not committed.

    Raises:
        IllegalTransition: the table does not let ``by`` make this change (409, names who may).
        ValueError: ``target`` is not a run state.
    """
    current = run.state or "queued"
    if not allowed(current, target, by):
        raise IllegalTransition(run.id, current, target, Actor(by))
    if current == target:
        return False
    run.state = target
    if target in TERMINAL_STATES:
        run.finished = run.finished or when or datetime.now(UTC)
        if error is not None:
            run.error = error
    elif current in TERMINAL_STATES:  # crashed -> active: Prefect runs it again
        run.finished, run.error = None, None
    return True


def to_running_sql(by: Actor, state_column: Any) -> Any:
    """A SQL CASE giving ``running`` where ``by`` may start the run, else the state unchanged (for
    the single-statement UPDATEs of the trainer's callbacks)."""
    from sqlalchemy import case

    return case((state_column.in_(sorted(sources("running", by))), "running"), else_=state_column)


def table_rows() -> Iterable[tuple[str, str, tuple[str, ...]]]:
    """The table as (from, to, actors) rows, ordered by state (for docs and tests)."""
    order = {s: i for i, s in enumerate(RUN_STATES)}
    for (a, b), who in sorted(TRANSITIONS.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])):
        yield a, b, tuple(sorted(w.value for w in who))
