"""The callback registry: events fan out, heartbeats and stop polls throttle themselves."""

from __future__ import annotations

import pytest

from core.contracts import Callbacks


def test_events_fan_out_and_epochs_are_recorded():
    cb = Callbacks()
    seen = []
    cb.add("on_epoch_end", lambda **kw: seen.append(("a", kw["epoch"])))
    cb.add("on_epoch_end", lambda **kw: seen.append(("b", kw["metrics"])))
    cb.epoch_end(1, 3, {"loss": 0.5, "name": "not a number"})
    assert seen == [("a", 1), ("b", {"loss": 0.5})]
    assert cb.epochs[0]["epoch"] == 1 and cb.epochs[0]["metrics"] == {"loss": 0.5}


def test_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown callback event"):
        Callbacks().add("on_epoch_ended", print)


def test_heartbeats_throttle_unless_forced():
    cb = Callbacks(heartbeat_every_s=3600)
    beats = []
    cb.add("on_heartbeat", lambda: beats.append(1))
    for _ in range(100):
        cb.heartbeat()
    assert len(beats) == 1
    cb.heartbeat(force=True)
    assert len(beats) == 2


def test_stop_checks_are_polled_sparingly_and_stick():
    cb = Callbacks(stop_poll_every_s=3600)
    calls = []
    answer = [False]
    cb.add_stop_check(lambda: calls.append(1) or answer[0])
    assert not any(cb.should_stop() for _ in range(50))
    assert len(calls) == 1
    answer[0] = True
    assert cb.should_stop(force=True)
    answer[0] = False
    assert cb.should_stop(), "a stop request is never taken back"
