"""The chip_reader check against a real pcscd with the vpcd virtual reader and recorded cards
(hardware-fixtures/pcsc/), through the real config builder and runner. pcscd's three ways of
being unavailable are built for real: no binary under the root, no process and no socket, a
stale socket that refuses connections."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, run_check
from pcscd import READER

from posdiag.checks.chip_reader import SPEC
from posdiag.results import CheckResult, Status


def check(**cfg: Any) -> CheckResult:
    cfg.setdefault("readers", [READER])
    cfg.setdefault("required", True)
    return run_check(SPEC, **cfg)


def test_unionpay_debit_card_found_by_aid_after_a_pse_without_directory(vpcd) -> None:
    card = vpcd("unionpay-debit")
    r = check()
    assert r.status is Status.OK, r
    m = r.metrics
    assert m["card_present"] is True and m["card_protocols"] == "T=0"
    assert m["card_tck_ok"] is None  # T=0 only: no TCK due
    assert (m["pse"], m["ppse"]) == ("ok", "absent")
    assert (m["application_aid"], m["application_brand"], m["application_label"]) == (
        "A0000003330101", "UnionPay", "UnionPay Debit")
    assert "UnionPay application" in r.summary
    # SELECT only: never READ RECORD (INS B2) or anything else that reads card records.
    assert card.commands and all(c[1] in (0xA4, 0xC0) for c in card.commands)


def test_visa_credit_follows_61xx_and_6cxx(vpcd) -> None:
    card = vpcd("visa-credit")
    r = check()
    assert r.status is Status.OK, r
    assert r.metrics["card_protocols"] == "T=1" and r.metrics["card_tck_ok"] is True
    assert r.metrics["application_brand"] == "Visa"
    assert bytes.fromhex("00C000001E") in card.commands  # GET RESPONSE after 61 1E
    assert any(c.startswith(bytes.fromhex("00A404000E325041592E")) and c[-1] == 0x32
               for c in card.commands)  # PPSE resent with Le = 32 after 6C 32


def test_no_pse_but_ppse(vpcd) -> None:
    vpcd("mastercard-ppse-only")
    r = check()
    assert r.status is Status.OK, r
    assert (r.metrics["pse"], r.metrics["ppse"]) == ("absent", "ok")
    assert r.metrics["application_brand"] == "Mastercard"


@pytest.mark.parametrize(("card", "reason", "hint"), [
    ("blocked-card", "card_blocked", "chip_reader.card_blocked"),
    ("blocked-application", "card_app_blocked", "chip_reader.card_blocked"),
    ("mute-card", "card_mute", "chip_reader.card_faulty"),
    ("bad-tck", "card_atr_invalid", "chip_reader.clean_contacts"),
    ("silent-after-atr", "card_not_answering", "chip_reader.card_faulty"),
])
def test_card_problems_are_card_reasons_not_reader_reasons(vpcd, card: str, reason: str,
                                                           hint: str) -> None:
    vpcd(card)
    r = check(apdu_timeout_s=0.5)
    assert (r.status, r.reason) == (Status.FAIL, reason), r
    assert hint in r.hints
    assert r.metrics["reader"] == READER and r.metrics["card_present"] is True


def test_blocked_card_gets_nothing_after_the_first_select(vpcd) -> None:
    card = vpcd("blocked-card")
    r = check()
    assert r.reason == "card_blocked", r
    assert len(card.commands) == 1 and card.commands[0][1] == 0xA4


def test_reader_without_card_is_ok(pcscd, vpcd) -> None:
    r = check()
    assert r.status is Status.OK, r
    assert r.metrics["card_present"] is False
    assert r.metrics["pcscd_socket"] == "ok" and r.metrics["readers_matched"] == 1
    assert "no card" in r.summary


def test_configured_reader_missing_is_no_device(pcscd) -> None:
    r = check(readers=["ACS ACR39U*"])
    assert (r.status, r.reason) == (Status.FAIL, "no_device"), r
    assert "Virtual PCD 00 00" in r.summary  # says what pcscd does list


def test_pn532_behind_ccid_runs_the_pn532_self_tests(vpcd) -> None:
    card = vpcd("acr122u-pn532")
    r = check(nfc_readers=[READER])
    assert r.status is Status.OK, r
    assert r.metrics["pn532_firmware_ic"] == "0x32"
    assert r.metrics["pn532_firmware_version"] == "1.6"
    assert all(r.metrics[f"pn532_self_test_{t}_ok"] for t in ("line", "rom", "ram", "antenna"))
    assert all(c[:4] == bytes.fromhex("FF000000") and c[5] == 0xD4 for c in card.commands)


def test_pn532_behind_ccid_antenna_fault(vpcd) -> None:
    vpcd("acr122u-pn532-antenna-fault")
    r = check(nfc_readers=[READER])
    assert (r.status, r.reason) == (Status.FAIL, "antenna_fault"), r
    assert "contactless.check_antenna" in r.hints


def test_exclusive_lock_of_another_application_is_reported_not_broken(vpcd) -> None:
    """Another process connects exclusively (as a payment application mid-transaction)."""
    vpcd("unionpay-debit")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = check()
        assert (r.status, r.reason) == (Status.WARN, "reader_in_use"), r
        assert f"pid {holder.pid}" in r.summary  # the holder named: it has libpcsclite mapped
        assert "application_aid" not in r.metrics  # nothing was sent to the card
    finally:
        holder.terminate()
        holder.wait(5)


HOLDER = f"""
import sys, time
from smartcard.scard import *
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
hr, h, p = SCardConnect(ctx, {READER!r}, SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_T0)
assert hr == 0, SCardGetErrorMessage(hr)
print("held", flush=True)
time.sleep(60)
"""


# -- pcscd unavailable: three reasons, three remedies --------------------------------------------

def _root(tmp: Path, *, binary: bool) -> Path:
    root = tmp / "root"
    (root / "usr/sbin").mkdir(parents=True)
    if binary:
        (root / "usr/sbin/pcscd").write_text("")
    return root


def _procfs(tmp: Path, *, pcscd_pid: int | None) -> Path:
    proc = tmp / "proc"
    proc.mkdir()
    if pcscd_pid:
        (proc / str(pcscd_pid)).mkdir()
        (proc / str(pcscd_pid) / "comm").write_text("pcscd\n")
    return proc


def test_pcscd_not_installed(tmp_path: Path) -> None:
    r = check(rootfs=_root(tmp_path, binary=False), procfs=_procfs(tmp_path, pcscd_pid=None),
              socket=str(tmp_path / "none.comm"))
    assert (r.status, r.reason) == (Status.FAIL, "pcscd_not_installed"), r
    assert r.hints == ("chip_reader.install_pcscd",)


def test_pcscd_not_running(tmp_path: Path) -> None:
    r = check(rootfs=_root(tmp_path, binary=True), procfs=_procfs(tmp_path, pcscd_pid=None),
              socket=str(tmp_path / "none.comm"))
    assert (r.status, r.reason) == (Status.FAIL, "pcscd_not_running"), r
    assert r.hints == ("chip_reader.start_pcscd",)
    assert r.metrics["pcscd_socket"] == "missing"


def stale_socket(tmp: Path) -> str:
    path = str(tmp / "stale.comm")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays; nothing listens: connect() is refused
    return path


def test_pcscd_socket_refused(tmp_path: Path) -> None:
    r = check(rootfs=_root(tmp_path, binary=True), procfs=_procfs(tmp_path, pcscd_pid=4242),
              socket=stale_socket(tmp_path))
    assert (r.status, r.reason) == (Status.FAIL, "pcscd_unreachable"), r
    assert r.hints == ("chip_reader.restart_pcscd",)
    assert r.metrics["pcscd_socket"] == "refused"


def test_no_pcscd_and_nothing_required_is_a_skip(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=_root(tmp_path, binary=False),
                  procfs=_procfs(tmp_path, pcscd_pid=None), socket=str(tmp_path / "none.comm"))
    assert (r.status, r.reason) == (Status.SKIPPED, "pcscd_not_installed"), r


# -- a CCID reader udev knows but pcscd does not list (umockdev) ----------------------------------

CHILD = "import sys; from posdiag.cli import main; sys.exit(main(sys.argv[1:]))"


def test_ccid_reader_on_usb_missing_from_pcscd(tmp_path: Path, pcscd: str) -> None:
    tool = shutil.which("umockdev-run")
    if tool is None:
        pytest.fail("umockdev-run not found: install the Debian package 'umockdev'")
    config = tmp_path / "posdiag.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n'
                      f'[outbox]\npath = "{tmp_path}/o.sqlite"\n')
    umockdev = FIXTURES / "umockdev"
    done = subprocess.run(
        [tool, "-d", str(umockdev / "usb-host-xhci.umockdev"),
         "-d", str(umockdev / "acs-acr39u-ccid.umockdev"), "--", sys.executable, "-c", CHILD,
         "selftest", "--json", "--check", "chip_reader", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, NO_COLOR="1"))
    (r,) = json.loads(done.stdout)["checks"]
    assert (r["status"], r["reason"]) == ("fail", "reader_no_driver"), r
    assert "ACR39U ICC Reader (072f:b100)" in r["summary"]
    assert "chip_reader.replug_restart_pcscd" in r["hints"]
    assert r["metrics"]["ccid_usb_readers"] == 1


def test_a_zombie_pcscd_is_not_running(tmp_path: Path) -> None:
    proc = _procfs(tmp_path, pcscd_pid=4242)
    (proc / "4242" / "stat").write_text("4242 (pcscd) Z 1 4242 4242 0 -1 4194572 0 0 0\n")
    r = check(rootfs=_root(tmp_path, binary=True), procfs=proc, socket=stale_socket(tmp_path))
    assert (r.status, r.reason) == (Status.FAIL, "pcscd_not_running"), r
    assert r.metrics["pcscd_running"] is False
