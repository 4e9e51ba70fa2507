"""``posdiag swipe-test``: the real command in a subprocess against the ID TECH simulator, plus
the rendering and JSON document on their own."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from posdiag_process import Finished, PosdiagProcess, empty_procfs, write_config

from posdiag import schemas, swipe
from posdiag.drivers.msr.tracks import analyse_swipe
from posdiag.i18n import Texts, catalog
from posdiag.results import CheckResult, Status
from simulators.idtech_msr import IdTechMsrSimulator

EN = Texts("en")
PAN = "4111111111111111"  # protocols.md §3.5
MASKED = "411111******1111"
FUTURE = f"{(date.today().year + 3) % 100:02d}12"
PAST = "1901"


def track1(pan: str = PAN, yymm: str = FUTURE) -> str:
    return f"%B{pan}^SWIPE/TEST^{yymm}1010000000000000?"


def track2(pan: str = PAN, yymm: str = FUTURE) -> str:
    return f";{pan}={yymm}1015550000000?"


def swipe_test(tmp_path: Path, sim: IdTechMsrSimulator | None,
               action: Callable[[IdTechMsrSimulator], object] | None, *args: str,
               port: str | None = None, **cfg: object) -> Finished:
    """Run the command; once it prompts, ``action(sim)`` swipes (or does nothing)."""
    config = write_config(tmp_path, **cfg)
    target = port or (sim.port if sim is not None else None)
    port_args = ["--port", target] if target else []
    proc = PosdiagProcess("swipe-test", "--config", str(config), "--procfs",
                          str(empty_procfs(tmp_path)), "--lang", "en", *port_args, *args)
    if action is not None and sim is not None:
        proc.wait_for_stderr(swipe.prompt(EN, _timeout(args)))
        action(sim)
    return proc.finish()


def _timeout(args: tuple[str, ...]) -> float:
    return float(args[args.index("--timeout") + 1]) if "--timeout" in args else 30.0


def as_document(done: Finished) -> dict:
    doc = json.loads(done.stdout)  # exactly one JSON document
    schemas.validate("swipe_test", doc)
    return doc


# -- swipes ------------------------------------------------------------------------------------

def test_good_swipe_json(tmp_path: Path) -> None:
    with IdTechMsrSimulator() as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(), track2()), "--json")
    assert done.returncode == 0, done.stderr
    doc = as_document(done)
    assert doc["outcome"] == "ok" and doc["problems"] == []
    assert doc["masked_pan"] == MASKED and doc["luhn_ok"] is True and doc["expiry"] == "valid"
    assert doc["tracks_agree"] is True and doc["reader_firmware"] == "2.3.1"
    assert doc["port"] == sim.port and doc["terminal_id"] == "T-SWIPE"
    t1, t2, t3 = doc["tracks"]
    assert t1 == {"track": 1, "present": True, "structure_ok": True, "lrc_ok": None,
                  "luhn_ok": True, "expiry": "valid", "length": len(track1()), "problem": None,
                  "ok": True}
    assert t2["ok"] is True and t2["length"] == len(track2())
    assert t3["present"] is False and t3["ok"] is None
    assert 0 <= doc["wait_s"] < 10
    assert swipe.prompt(EN, 30) in done.stderr  # the prompt is on stderr, not in the JSON


def test_good_swipe_text(tmp_path: Path) -> None:
    with IdTechMsrSimulator(output_format="uic") as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(), track2()))
    assert done.returncode == 0, done.stderr
    assert MASKED in done.stdout
    assert EN.ui("swipe_all_ok") in done.stdout
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()
            if line[:1] in "123"}
    # UIC carries the LRC: checked here, and good.
    assert rows["1"][1:5] == [EN.ui("swipe_yes"), EN.ui("swipe_ok"), EN.ui("swipe_ok"),
                              EN.ui("swipe_ok")]
    assert rows["3"][1:] == [EN.ui("swipe_no")]


def test_bad_lrc_is_reported_and_exits_1(tmp_path: Path) -> None:
    with IdTechMsrSimulator(output_format="uic") as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(), track2(), bad_lrc={2}),
                          "--json")
    assert done.returncode == 1, done.stderr
    doc = as_document(done)
    assert doc["outcome"] == "problems" and doc["problems"] == ["track2_lrc"]
    assert doc["tracks"][1]["lrc_ok"] is False and doc["tracks"][1]["ok"] is False
    assert doc["tracks"][0]["lrc_ok"] is True


def test_bad_lrc_in_text_mode(tmp_path: Path) -> None:
    with IdTechMsrSimulator(output_format="uic") as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(), track2(), bad_lrc={2}))
    assert done.returncode == 1
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("2 "))
    assert row[3] == EN.ui("swipe_bad")  # the LRC column of track 2
    assert f"{EN.ui('swipe_lrc')} {EN.ui('swipe_bad')}" in done.stdout


def test_track_the_reader_could_not_read(tmp_path: Path) -> None:
    # In ID TECH format a damaged track comes as "SS E ES" (no LRC on the wire).
    with IdTechMsrSimulator() as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(), track2(), bad_lrc={1}),
                          "--json")
    assert done.returncode == 1
    doc = as_document(done)
    assert doc["problems"] == ["track1_structure"]
    assert doc["tracks"][0]["problem"] == "reader_error"
    assert doc["masked_pan"] == MASKED  # track 2 still read


def test_expired_card_exits_1(tmp_path: Path) -> None:
    with IdTechMsrSimulator(output_format="magtek") as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.swipe(track1(yymm=PAST), track2(yymm=PAST)),
                          "--json")
    assert done.returncode == 1, done.stderr
    doc = as_document(done)
    assert doc["problems"] == ["track1_expired", "track2_expired"]
    assert doc["expiry"] == "expired" and doc["masked_pan"] == MASKED


# -- no swipe, reader failures -----------------------------------------------------------------

def test_no_swipe_within_the_timeout_exits_2(tmp_path: Path) -> None:
    with IdTechMsrSimulator() as sim:
        done = swipe_test(tmp_path, sim, lambda s: None, "--json", "--timeout", "0.4")
    assert done.returncode == 2
    doc = as_document(done)
    assert doc["outcome"] == "no_swipe" and doc["tracks"] == [] and doc["masked_pan"] is None
    assert doc["timeout_s"] == 0.4


def test_reading_disabled_exits_2_without_prompting(tmp_path: Path) -> None:
    with IdTechMsrSimulator(reading_enabled=False) as sim:
        done = swipe_test(tmp_path, sim, None, "--json")
    assert done.returncode == 2
    doc = as_document(done)
    assert (doc["outcome"], doc["reason"]) == ("reader_error", "msr_disabled")
    assert doc["hints"] == ["card_reader.enable_reading"]
    assert swipe.prompt(EN, 30) not in done.stderr


def test_silent_reader_exits_2(tmp_path: Path) -> None:
    with IdTechMsrSimulator(silent=True) as sim:
        done = swipe_test(tmp_path, sim, None, reply_timeout_s=0.2)
    assert done.returncode == 2
    assert "did not answer within 0.2 s" in done.stdout
    assert EN.hint("card_reader.check_connection") in done.stdout


def test_reader_unplugged_while_waiting_exits_2(tmp_path: Path) -> None:
    with IdTechMsrSimulator() as sim:
        done = swipe_test(tmp_path, sim, lambda s: s.unplug(), "--json")
    assert done.returncode == 2
    doc = as_document(done)
    assert (doc["outcome"], doc["reason"]) == ("reader_error", "no_device")
    assert doc["hints"] == ["card_reader.check_connection"]


def test_absent_port_exits_2(tmp_path: Path) -> None:
    done = swipe_test(tmp_path, None, None, "--json", port=str(tmp_path / "ttyUSB9"))
    assert done.returncode == 2
    doc = as_document(done)
    assert (doc["outcome"], doc["reason"]) == ("reader_error", "no_device")


def test_port_from_the_config(tmp_path: Path) -> None:
    with IdTechMsrSimulator() as sim:
        config = write_config(tmp_path, port=sim.port)
        proc = PosdiagProcess("swipe-test", "--config", str(config), "--procfs",
                              str(empty_procfs(tmp_path)), "--lang", "en", "--json")
        proc.wait_for_stderr(swipe.prompt(EN, 30))
        sim.swipe(None, track2())
        done = proc.finish()
    assert done.returncode == 0
    assert as_document(done)["port"] == sim.port


# -- usage and config errors -------------------------------------------------------------------

@pytest.mark.parametrize("timeout", ["0", "nan", "601", "soon"])
def test_bad_timeout_is_a_usage_error(tmp_path: Path, timeout: str) -> None:
    done = swipe_test(tmp_path, None, None, "--timeout", timeout, port="/dev/null")
    assert done.returncode == 64
    assert done.stdout == ""


def test_bad_config_is_exit_78(tmp_path: Path) -> None:
    done = swipe_test(tmp_path, None, None, port="/dev/null", baudrate=1234)
    assert done.returncode == 78
    assert "checks.card_reader.baudrate" in done.stderr and "Traceback" not in done.stderr


# -- rendering and the JSON document without a reader ------------------------------------------

def outcome_for(raw: bytes) -> swipe.SwipeOutcome:
    result = analyse_swipe(raw, read_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
                           today=date(2030, 1, 2))
    kind = "problems" if swipe.swipe_problems(result) else "ok"
    return swipe.SwipeOutcome(kind, 30.0, "/dev/ttyUSB0", "2.3.1", result, 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("t1", "t2", "problems"), [
    (track1(yymm="3112"), track2(yymm="3112"), ()),
    (None, track2("4111111111111112", yymm="3112"), ("track2_luhn",)),
    (track1(yymm=PAST), None, ("track1_expired",)),
    (track1(yymm="3113"), None, ("track1_expiry_invalid",)),
    (track1("4242424242424242", "3112"), track2(yymm="3112"), ("tracks_disagree",)),
    (track1(yymm="3112")[:-1], None, ("track1_structure",)),
])
def test_problem_codes_and_exit_codes(t1: str | None, t2: str | None,
                                      problems: tuple[str, ...]) -> None:
    o = outcome_for("".join(f"{t}\r" for t in (t1, t2) if t).encode())
    assert o.problems == problems
    assert (o.outcome, o.exit_code) == (("problems", 1) if problems else ("ok", 0))


def test_a_swipe_with_no_track_is_a_problem() -> None:
    noise = outcome_for(b"garbage\r")
    assert (noise.outcome, noise.problems, noise.exit_code) == ("problems", ("no_track",), 1)


def test_problems_are_described_in_the_result_line() -> None:
    o = outcome_for(f"{track1('4242424242424242', PAST)}\r{track2('4111111111111112')}\r"
                    .encode())
    result = next(line for line in swipe.render_text(o, EN).splitlines()
                  if line.startswith(EN.ui("swipe_result")))
    assert EN.ui("swipe_with_problems") in result
    assert f"{EN.ui('swipe_track')} 2: {EN.ui('swipe_luhn')} {EN.ui('swipe_bad')}" in result
    assert f"{EN.ui('swipe_track')} 1: {EN.ui('swipe_expiry_expired')}" in result


def test_no_swipe_text() -> None:
    o = swipe.SwipeOutcome("no_swipe", 0.3, "/dev/ttyUSB0", "2.3.1", wait_s=0.3)
    assert EN.ui("swipe_none").format(seconds="0.3") in swipe.render_text(o, EN)
    assert o.exit_code == 2


def test_every_outcome_validates_against_the_schema() -> None:
    failure = CheckResult("card_reader", Status.FAIL, "timeout", "card reader did not answer",
                          hints=("card_reader.check_connection",))
    outcomes = [
        outcome_for(f"{track1(yymm='3112')}\r{track2(yymm='3112')}\r".encode()),
        outcome_for(b"%E?\r;E?\r"),
        outcome_for(b";4111\r"),
        swipe.SwipeOutcome("no_swipe", 0.5, "/dev/ttyUSB0", None, wait_s=0.5),
        swipe.SwipeOutcome("reader_error", 30.0, None, failure=failure),
    ]
    for o in outcomes:
        doc = swipe.document(o, "T-1")
        schemas.validate("swipe_test", doc)
        assert json.loads(json.dumps(doc)) == doc
    assert swipe.document(outcomes[0], "T-1")["read_at"] == "2030-01-02T03:04:05Z"


def test_outcome_consistency_is_enforced() -> None:
    with pytest.raises(ValueError):
        swipe.SwipeOutcome("ok", 30.0)
    with pytest.raises(ValueError):
        swipe.SwipeOutcome("no_swipe", 30.0, failure=CheckResult("card_reader", Status.FAIL,
                                                                 "timeout", "x"))


def test_chinese_rendering_uses_the_chinese_catalog() -> None:
    zh = Texts("zh_CN")
    text = swipe.render_text(outcome_for(f"{track2(yymm='3112')}\r".encode()), zh)
    assert text.splitlines()[0].startswith(zh.ui("swipe_title"))
    assert zh.ui("swipe_all_ok") in text and MASKED in text
    assert zh.ui("swipe_track") in text.splitlines()[1]


def test_every_swipe_text_is_in_both_catalogs() -> None:
    for lang in ("en", "zh_CN"):
        missing = [k for k in swipe.UI_KEYS if k not in catalog(lang)["ui"]]
        assert not missing, f"{lang}: [ui] lacks {missing}"

