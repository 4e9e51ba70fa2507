"""Command parsing (``service.commands``) and the refusal tally (``service.tally``), no broker."""

from __future__ import annotations

import logging

import pytest

from posdiag.service.commands import CommandRejected, parse, shown, topic_name_problem
from posdiag.service.tally import Tally


@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "+", "#", "", "a\0b", "x" * 65536])
def test_a_response_topic_that_is_no_topic_name_is_refused_as_unanswerable(topic: str) -> None:
    with pytest.raises(CommandRejected) as e:
        parse("ping", b"", response_topic=topic)
    assert e.value.code == "bad_response_topic" and e.value.answerable is False
    assert topic_name_problem(topic) in e.value.message


def test_a_usable_response_topic_and_none_are_fine() -> None:
    cmd = parse("ping", b"", response_topic="posdiag/v1/T-1/reply/回复", ticket=7)
    assert cmd.response_topic == "posdiag/v1/T-1/reply/回复" and cmd.ticket == 7
    assert parse("ping", b"").response_topic is None


def test_unanswerable_beats_every_other_problem() -> None:
    with pytest.raises(CommandRejected) as e:
        parse("reboot", b"\xff" * 10_000, response_topic="r/+")
    assert e.value.code == "bad_response_topic"


def test_other_refusals_can_be_answered() -> None:
    with pytest.raises(CommandRejected) as e:
        parse("reboot", b"", response_topic="r/1")
    assert e.value.code == "unknown_verb" and e.value.answerable


@pytest.mark.parametrize(("verb", "text"), [
    ("重启", "'重启'"),
    ("reboot now", "'reboot now'"),
    ("x" * 41, f"'{'x' * 40}…'"),
    ("a\0b", "'a\\x00b'"),
    ("zero\u200bwidth", "'zero\\u200bwidth'"),
    ("back\\slash", "'back\\\\slash'"),  # a literal backslash cannot pose as an escape
])
def test_unknown_verbs_are_shown_readably_and_safely(verb: str, text: str) -> None:
    with pytest.raises(CommandRejected) as e:
        parse(verb, b"")
    assert e.value.message.startswith(f"unknown command {text}; allowed: diagnose, history, ping")
    assert e.value.message.isprintable()


def test_shown_escapes_controls_and_cuts_long_text() -> None:
    assert shown("a\nb\tc") == "a\\nb\\tc"
    assert shown("é" * 50, 3) == "ééé…"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tally_says_the_first_then_one_summary_per_interval(caplog) -> None:
    clock = Clock()
    tally = Tally(logging.getLogger("t"), "commands refused", interval_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, "t"):
        for i in range(1000):
            tally.add("busy" if i % 10 else "bad_payload", f"detail {i}")
            clock.now += 0.01
        tally.flush()  # not an interval yet: nothing
        assert [r.getMessage() for r in caplog.records] == ["detail 0"]
        clock.now += 60
        tally.flush()
        tally.flush()  # said already
        tally.add("busy", "detail after")  # within the new interval: counted
        tally.flush(force=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["detail 0",
                     "999 more commands refused in the last 70 s: bad_payload 99, busy 900",
                     "1 more commands refused in the last 0 s: busy 1"]
    assert tally.totals() == {"bad_payload": 100, "busy": 901}


def test_tally_after_a_quiet_interval_says_the_detail_again(caplog) -> None:
    clock = Clock()
    tally = Tally(logging.getLogger("t"), "x", interval_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, "t"):
        tally.add("a", "first")
        clock.now += 61
        tally.add("a", "second")
    assert [r.getMessage() for r in caplog.records] == ["first", "second"]


def test_tally_rejects_a_nonsense_interval() -> None:
    with pytest.raises(ValueError):
        Tally(logging.getLogger("t"), "x", interval_s=0)
