"""``posdiag swipe-test`` and ``posdiag selftest --check hid_card_reader`` on a keyboard-mode
MagTek reader under umockdev (udev discovery, EVIOCGNAME/EVIOCGRAB and the evdev read all go
through umockdev's emulation; see tests/drivers/test_hid_reader.py for the one seam)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hidfixtures import BY_ID, NODE, no_events, run_posdiag, swipe_events
from posdiag_process import write_config

from posdiag import schemas
from posdiag.i18n import Texts

EN = Texts("en")
TRACK1 = "%B4111111111111111^SWIPE/TEST^49121010000000000000?"
TRACK2 = ";4111111111111111=49121015550000000?"


def swipe_doc(tmp: Path, events: Path | None, *args: str) -> tuple[int, dict]:
    config = write_config(tmp)
    done = run_posdiag(events, "swipe-test", "--config", str(config), "--lang", "en", "--json",
                       *args)
    doc = json.loads(done.stdout)
    schemas.validate("swipe_test", doc)
    return done.returncode, doc


def check_result(tmp: Path, *, reader: bool = True, env: dict[str, str] | None = None,
                 **hid: object) -> dict:
    config = write_config(tmp)
    if hid:
        extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in hid.items())
        config.write_text(config.read_text() + f"[checks.hid_card_reader]\n{extra}\n")
    done = run_posdiag(None, "selftest", "--json", "--check", "hid_card_reader", "--config",
                       str(config), "--lang", "en", reader=reader, env=env)
    if env is not None:
        tmp.joinpath("stderr.txt").write_text(done.stderr)
    (result,) = json.loads(done.stdout)["checks"]
    return result


def test_good_swipe_on_the_hid_reader(tmp_path: Path) -> None:
    code, doc = swipe_doc(tmp_path, swipe_events(tmp_path, TRACK1 + TRACK2 + "\r"))
    assert code == 0, doc
    assert doc["outcome"] == "ok" and doc["transport"] == "hid"
    assert doc["keyboard_layout"] == "us" and doc["port"] == BY_ID
    assert doc["masked_pan"] == "411111******1111" and doc["tracks_agree"] is True
    assert doc["reader_firmware"] == "1.00"
    assert [t["ok"] for t in doc["tracks"]] == [True, True, None]


def test_alt_ascii_reader_reads_too(tmp_path: Path) -> None:
    events = swipe_events(tmp_path, TRACK2 + "\r", alt_ascii=True)
    code, doc = swipe_doc(tmp_path, events, "--port", NODE)
    assert code == 0 and doc["masked_pan"] == "411111******1111"


def test_reader_in_german_layout_says_so(tmp_path: Path) -> None:
    code, doc = swipe_doc(tmp_path, swipe_events(tmp_path, TRACK1 + TRACK2 + "\r", "de"))
    assert code == 2
    assert doc["outcome"] == "reader_error" and doc["reason"] == "hid_layout_mismatch"
    assert doc["keyboard_layout"] == "de" and doc["masked_pan"] is None
    assert doc["hints"] == ["hid_card_reader.set_us_layout"]
    assert "German" in doc["summary"]


def test_french_layout_in_text_mode_in_chinese(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = run_posdiag(swipe_events(tmp_path, TRACK2 + "\r", "fr"), "swipe-test", "--config",
                       str(config), "--lang", "zh_CN")
    assert done.returncode == 2
    zh = Texts("zh_CN")
    assert zh.reason("hid_layout_mismatch") in done.stdout
    assert zh.hint("hid_card_reader.set_us_layout") in done.stdout
    assert "French" in done.stdout


def test_no_swipe_in_time(tmp_path: Path) -> None:
    code, doc = swipe_doc(tmp_path, no_events(tmp_path), "--timeout", "1")
    assert code == 2 and doc["outcome"] == "no_swipe" and doc["transport"] == "hid"


def test_no_reader_at_all(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = run_posdiag(None, "swipe-test", "--config", str(config), "--json", "--port",
                       "/dev/input/event7", reader=False)
    doc = json.loads(done.stdout)
    assert done.returncode == 2 and doc["reason"] == "no_device"


def test_check_reports_presence_and_descriptors(tmp_path: Path) -> None:
    # umockdev logs every open of an emulated node: the periodic check must not open the
    # reader (it would read, or lock out, the merchant's swipes).
    result = check_result(tmp_path, env={**os.environ, "UMOCKDEV_DEBUG": "ioctl"})
    assert NODE not in (tmp_path / "stderr.txt").read_text()
    assert result["status"] == "ok", result
    m = result["metrics"]
    assert (m["usb_vid"], m["usb_pid"], m["firmware_version"]) == ("0801", "0001", "1.00")
    assert m["device_vendor"] == "MagTek" and m["port"] == BY_ID
    assert m["input_name"] == "Mag-Tek USB Swipe Reader" and m["usb_serial"] is None
    assert "0801:0001" in result["summary"] and "firmware 1.00" in result["summary"]


def test_check_without_a_reader(tmp_path: Path) -> None:
    assert check_result(tmp_path, reader=False)["status"] == "skipped"
    required = check_result(tmp_path, reader=False, required=True)
    assert (required["status"], required["reason"]) == ("fail", "no_device")
    assert required["hints"] == ["hid_card_reader.check_connection"]


def test_check_remembers_the_layout_the_swipe_test_found(tmp_path: Path) -> None:
    swipe_doc(tmp_path, swipe_events(tmp_path, TRACK2 + "\r", "de"))
    result = check_result(tmp_path)
    assert (result["status"], result["reason"]) == ("warn", "hid_layout_mismatch")
    assert result["metrics"]["keyboard_layout"] == "de"
    # Set right and tested again: the warning goes.
    swipe_doc(tmp_path, swipe_events(tmp_path, TRACK2 + "\r", "us", name="again.events"))
    assert check_result(tmp_path)["status"] == "ok"


def test_diagnosis_names_the_wrong_layout_after_a_swipe_test(tmp_path: Path) -> None:
    """Card read failure (刷卡失败) on a terminal whose HID reader types German: the swipe
    test found it, the diagnosis (which never reads keys) ranks it first from the check's
    evidence."""
    swipe_doc(tmp_path, swipe_events(tmp_path, TRACK1 + TRACK2 + "\r", "de"))
    config = tmp_path / "posdiag.toml"
    # The symptom by id: umockdev-run's own option parser rejects non-ASCII arguments.
    done = run_posdiag(None, "diagnose", "card-read-failure", "--json", "--config",
                       str(config), "--lang", "zh_CN")
    assert done.stdout, done.stderr
    doc = json.loads(done.stdout)
    schemas.validate("diagnosis", doc)
    assert doc["most_likely"]["id"] == "hid_reader_layout", doc["causes"]
    evidence = doc["causes"][0]["evidence"][0]
    assert evidence["metrics"]["keyboard_layout"] == "de"
