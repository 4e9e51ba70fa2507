"""The card reader and contactless checks, end to end on a pty, against simulators that speak a
recorded device (hardware-fixtures/serial/, issue 10): the reader's swipe output and the PN532's
frames byte for byte, through the real config builder and runner."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import run_check

from posdiag.checks import card_reader, contactless
from posdiag.results import Status
from simulators import idtech_msr, pn532
from simulators.idtech_msr import IdTechMsrSimulator
from simulators.pn532 import Pn532Simulator

# recording → tracks the reader could not read ("" for a good swipe)
MSR_UNREADABLE = {
    "idtech-minimag-rs232/idtech-format-country-code-59": "",
    "idtech-minimag-rs232/idtech-format-no-separator": "",
    "idtech-minimag-rs232/idtech-format-three-tracks": "",
    "idtech-minimag-rs232/idtech-format-track1-error": "1",
    "idtech-minimag-rs232/idtech-format-two-tracks": "",
    "idtech-minimag-rs232/uic-format-lrc": "",
    "magtek-mt211-rs232-revB/three-tracks": "",
    "magtek-mt211-rs232-revB/track1-blank-track3-error": "3",
    "magtek-mt211-rs232-revB/track2-error": "2",
    "magtek-port-powered-insertion/withdrawal-good": "",
    "magtek-port-powered-insertion/withdrawal-track1-error": "1",
}
PROBE_COMMANDS = 2  # Review Settings, firmware version


def test_every_reader_recording_has_an_expected_verdict() -> None:
    assert sorted(MSR_UNREADABLE) == idtech_msr.personality_names()


def _swipe_after_probe(sim: IdTechMsrSimulator) -> threading.Thread:
    def swipe() -> None:
        end = time.monotonic() + 5.0
        while len(sim.commands) < PROBE_COMMANDS and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.1)  # the check is waiting for the swipe by now
        sim.swipe_recorded()

    thread = threading.Thread(target=swipe, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name", sorted(MSR_UNREADABLE))
def test_card_reader_check_reads_the_recorded_swipe(name: str) -> None:
    with IdTechMsrSimulator(personality=name) as sim:
        thread = _swipe_after_probe(sim)
        r = run_check(card_reader.SPEC, port=sim.port, required=True, swipe_wait_s=1.5)
        thread.join()
    assert r.metrics["output_format"] == idtech_msr.recorded_format(name)
    assert r.metrics["swipe_tracks_read"] >= 1
    bad = MSR_UNREADABLE[name]
    if bad:
        assert (r.status, r.reason) == (Status.WARN, "msr_track_unreadable")
        assert r.metrics["unreadable_tracks"] == bad
        assert f"track {bad}" in r.summary
    else:
        assert (r.status, r.reason) == (Status.OK, "ok"), r.summary
        assert r.metrics["unreadable_tracks"] is None
    # Verdicts only: no track data in what the check reports.
    assert "4111111111111111" not in repr(r) and "5555555555554444" not in repr(r)


def test_card_reader_check_without_swipe_wait_takes_no_swipe() -> None:
    with IdTechMsrSimulator(personality="magtek-mt211-rs232-revB/track2-error") as sim:
        r = run_check(card_reader.SPEC, port=sim.port, required=True)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert "swipe_tracks_read" not in r.metrics


def test_no_swipe_in_the_wait_is_ok() -> None:
    with IdTechMsrSimulator(personality="magtek-mt211-rs232-revB/track2-error") as sim:
        r = run_check(card_reader.SPEC, port=sim.port, required=True, swipe_wait_s=0.2)
    assert (r.status, r.reason) == (Status.OK, "ok")


# -- PN532 -------------------------------------------------------------------------------------

def _chip_check(name: str, **cfg: object):
    with Pn532Simulator(personality=name) as sim:
        r = run_check(contactless.SPEC, port=sim.port, required=True, ack_timeout_s=0.5, **cfg)
    return sim, r


def test_every_pn532_recording_is_listed() -> None:
    assert pn532.personality_names() == ["nxp-pn532-v1.6/error-frame-antenna-test",
                                         "nxp-pn532-v1.6/no-tag", "nxp-pn532-v1.6/tag-present"]


def test_recorded_pn532_with_a_tag() -> None:
    sim, r = _chip_check("nxp-pn532-v1.6/tag-present", card_scan=True)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert (r.metrics["firmware_ic"], r.metrics["firmware_version"]) == ("0x32", "1.6")
    assert r.metrics["card_present"] is True
    # Every command of the probe was answered from the recording, none by the model.
    assert sim.replayed == list(sim.personality.answers) == sim.commands


def test_recorded_pn532_without_a_tag() -> None:
    sim, r = _chip_check("nxp-pn532-v1.6/no-tag", card_scan=True)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["card_present"] is False
    assert sim.replayed == sim.commands


def test_recorded_pn532_error_frame_is_a_protocol_error_after_the_firmware() -> None:
    sim, r = _chip_check("nxp-pn532-v1.6/error-frame-antenna-test")
    assert (r.status, r.reason) == (Status.FAIL, "protocol_error")
    assert r.metrics["protocol_error_kind"] == "error_frame"
    assert r.metrics["firmware_version"] == "1.6"
    assert r.metrics["self_test_ram_ok"] is True
    assert sim.replayed == sim.commands


def test_unknown_personality_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="tag-present"):
        Pn532Simulator(personality="nxp-pn532-v1.6/nope")


# -- by name from the command line -------------------------------------------------------------

def test_serve_lists_and_serves_a_personality_by_name() -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[2] / "hardware-fixtures"
    env = {**os.environ, "PYTHONPATH": f"{fixtures}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = subprocess.run([sys.executable, "-m", "simulators.serve", "pn532", "--list"],
                            capture_output=True, text=True, env=env, timeout=30, check=True)
    assert "nxp-pn532-v1.6/tag-present" in listed.stdout.split()
    unknown = subprocess.run([sys.executable, "-m", "simulators.serve", "pn532",
                              "--personality", "nope/none"],
                             capture_output=True, text=True, env=env, timeout=30)
    assert unknown.returncode == 2 and "--list" in unknown.stderr
    proc = subprocess.Popen([sys.executable, "-m", "simulators.serve", "pn532", "--personality",
                             "nxp-pn532-v1.6/no-tag"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        r = run_check(contactless.SPEC, port=port, required=True, ack_timeout_s=0.5,
                      card_scan=True)
        assert (r.status, r.reason) == (Status.OK, "ok")
        assert r.metrics["card_present"] is False
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_a_swipe_with_no_readable_track_names_that() -> None:
    with IdTechMsrSimulator(personality="idtech-minimag-rs232/idtech-format-two-tracks") as sim:
        def noise() -> None:
            while len(sim.commands) < PROBE_COMMANDS:
                time.sleep(0.01)
            time.sleep(0.1)
            sim.send(b"\x7f\x7f\r")  # a swipe too fast or crooked: bytes, but no track

        thread = threading.Thread(target=noise, daemon=True)
        thread.start()
        r = run_check(card_reader.SPEC, port=sim.port, required=True, swipe_wait_s=1.5)
        thread.join()
    assert (r.status, r.reason) == (Status.WARN, "msr_track_unreadable")
    assert r.metrics["swipe_tracks_read"] == 0
    assert "no track" in r.summary
