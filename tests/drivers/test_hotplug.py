"""Plug and unplug: ``hotplug.describe`` on uevent properties, and ``Watcher`` on real uevents.

The real-uevent tests run ``hotplug_child.py`` under ``umockdev-wrapper`` (Debian packages
``umockdev``, ``gir1.2-umockdev-1.0``, ``python3-gi``): a umockdev testbed with the trees of
``hardware-fixtures/umockdev/`` sends add/change/remove uevents over its mock netlink, a real
``pyudev`` monitor inside ``Watcher`` receives them, and the child prints what ``on_event`` got.
The daemon test runs ``posdiag run`` the same way (``hotplug_daemon_child.py``) against a real
Mosquitto, plugs and unplugs the card reader, and reads the events the agent publishes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from broker import Broker, Subscriber

from posdiag import schemas
from posdiag.drivers.discovery import load_device_table, parse_device_table
from posdiag.drivers.hotplug import Hotplug, describe
from posdiag.service import payloads

HERE = Path(__file__).resolve().parent
UMOCKDEV = HERE.parents[1] / "hardware-fixtures" / "umockdev"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: the one python3-gi is built for

TABLE = load_device_table()
READER = {"DEVNAME": "/dev/ttyUSB0", "SUBSYSTEM": "tty", "ID_BUS": "usb", "ID_VENDOR_ID": "0acd",
          "ID_MODEL_ID": "0300", "ID_VENDOR": "ID_TECH", "ID_MODEL": "IDT1221U"}
READER_EVENT = {"devnode": "/dev/ttyUSB0", "vid": "0acd", "pid": "0300", "vendor": "ID TECH",
                "model": "IDT1221U USB to RS-232 adapter (MiniMag RS-232)",
                "kind": "card_reader", "serves": "card_reader", "transport": None}


def usb_tty(devname: str, vid: str, pid: str, vendor: str, model: str) -> dict[str, str]:
    return {"DEVNAME": devname, "SUBSYSTEM": "tty", "ID_BUS": "usb", "ID_VENDOR_ID": vid,
            "ID_MODEL_ID": pid, "ID_VENDOR": vendor, "ID_MODEL": model}


# -- describe ---------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["add", "remove"])
def test_known_reader_is_named_from_the_table(action: str) -> None:
    assert describe(action, READER, TABLE) == Hotplug(action=action, **READER_EVENT)


def test_vid_pid_in_upper_case_still_match_and_are_reported_lower_case() -> None:
    event = describe("add", dict(READER, ID_VENDOR_ID="0ACD", ID_MODEL_ID="0300"), TABLE)
    assert event is not None
    assert (event.vid, event.pid, event.kind) == ("0acd", "0300", "card_reader")


def test_bridge_says_what_is_usually_behind_it() -> None:
    props = usb_tty("/dev/ttyUSB1", "1a86", "7523", "1a86", "USB_Serial")
    assert describe("add", props, TABLE) == Hotplug(
        "add", "/dev/ttyUSB1", "1a86", "7523", "QinHeng Electronics", "CH340 serial converter",
        "bridge", "contactless")


def test_modem_is_named_by_the_table_not_its_usb_strings() -> None:
    event = describe("remove", usb_tty("/dev/ttyUSB4", "2c7c", "0125", "Android", "Android"),
                     TABLE)
    assert event is not None
    assert (event.vendor, event.model, event.kind, event.serves) == (
        "Quectel", "EC25/EG25", "cellular", "cellular")


def test_unknown_usb_device_keeps_its_usb_strings_and_no_kind() -> None:
    props = usb_tty("/dev/ttyACM0", "1209", "0001", "Generic", "Test_Board")
    assert describe("add", props, TABLE) == Hotplug(
        "add", "/dev/ttyACM0", "1209", "0001", "Generic", "Test_Board", None, None)


def test_usb_device_without_ids_is_reported_unmatched() -> None:
    props = {"DEVNAME": "/dev/ttyUSB7", "SUBSYSTEM": "tty", "ID_BUS": "usb", "ID_VENDOR_ID": "",
             "ID_MODEL": "Mystery"}
    assert describe("add", props, TABLE) == Hotplug(
        "add", "/dev/ttyUSB7", None, None, None, "Mystery", None, None)


def test_the_table_given_is_the_one_used() -> None:
    table = parse_device_table('schema = 1\n[[device]]\nvid = "1209"\npid = "0001"\n'
                               'vendor = "Lab"\nmodel = "Bench reader"\ndriver = "magtek"\n'
                               'kind = "card_reader"\n')
    assert describe("add", READER, table) == Hotplug(
        "add", "/dev/ttyUSB0", "0acd", "0300", "ID_TECH", "IDT1221U", None, None)
    event = describe("add", usb_tty("/dev/ttyACM0", "1209", "0001", "Generic", "X"), table)
    assert event is not None and (event.vendor, event.kind) == ("Lab", "card_reader")


@pytest.mark.parametrize("props", [
    {"DEVNAME": "/dev/ttyS0", "SUBSYSTEM": "tty", "MAJOR": "4", "MINOR": "64"},
    {"DEVNAME": "/dev/rfcomm0", "SUBSYSTEM": "tty", "ID_BUS": "bluetooth"},
    {"DEVNAME": "/dev/ttyAMA0", "SUBSYSTEM": "tty", "ID_VENDOR_ID": "0acd",
     "ID_MODEL_ID": "0300"},
], ids=["16550-uart", "bluetooth", "ids-but-no-usb-bus"])
def test_non_usb_tty_is_ignored(props: dict[str, str]) -> None:
    assert describe("add", props, TABLE) is None
    assert describe("remove", props, TABLE) is None


@pytest.mark.parametrize("action", ["change", "bind", "unbind", "move", "online", "", "ADD"])
def test_other_actions_are_ignored(action: str) -> None:
    assert describe(action, READER, TABLE) is None


@pytest.mark.parametrize("added", [True, False])
def test_event_payload_carries_the_device_and_passes_the_schema(added: bool) -> None:
    event = describe("add" if added else "remove", READER, TABLE)
    assert event is not None
    doc = payloads.device_event("pos-0042", 7, added, event.as_event_device())
    schemas.validate("event", doc)
    assert doc["type"] == ("device_added" if added else "device_removed")
    assert doc["device"] == {k: v for k, v in READER_EVENT.items()
                             if k not in ("serves", "transport")}


MAGTEK = {"DEVNAME": "/dev/input/event5", "SUBSYSTEM": "input", "ID_BUS": "usb",
          "ID_VENDOR_ID": "0801", "ID_MODEL_ID": "0001", "ID_VENDOR": "Mag-Tek",
          "ID_MODEL": "USB_Swipe_Reader", "ID_INPUT": "1", "ID_INPUT_KEYBOARD": "1"}


@pytest.mark.parametrize("action", ["add", "remove"])
def test_hid_card_reader_event_node_is_a_card_reader_plug(action: str) -> None:
    # The properties of hardware-fixtures/umockdev/magtek-usb-swipe-reader-kbd.umockdev.
    event = describe(action, MAGTEK, TABLE)
    assert event == Hotplug(action, "/dev/input/event5", "0801", "0001", "MagTek",
                            "Mini Swipe Reader (keyboard emulation)", "card_reader", None, "hid")


def test_hid_card_maker_keyboard_not_in_the_table_is_a_reader() -> None:
    props = dict(MAGTEK, ID_MODEL_ID="7777", ID_VENDOR_ID="0acd")
    event = describe("add", props, TABLE)
    assert event is not None and (event.kind, event.transport) == ("card_reader", "hid")
    assert describe("add", dict(props, ID_INPUT_KEYBOARD="0"), TABLE) is None


@pytest.mark.parametrize("props", [
    dict(MAGTEK, DEVNAME="/dev/input/mouse0"),  # not the event node
    {k: v for k, v in MAGTEK.items() if k != "DEVNAME"},  # the inputN parent
    dict(MAGTEK, ID_VENDOR_ID="046d", ID_MODEL_ID="c31c"),  # an ordinary keyboard
], ids=["mouse-node", "input-parent", "other-keyboard"])
def test_other_input_uevents_are_ignored(props: dict[str, str]) -> None:
    assert describe("add", props, TABLE) is None


# -- Watcher on real uevents (umockdev) ---------------------------------------------------------

def run_child() -> dict[str, Any]:
    wrapper = shutil.which("umockdev-wrapper")
    if wrapper is None:
        pytest.fail("umockdev-wrapper not found: install the Debian package 'umockdev'")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys, gi; gi.require_version('UMockdev', '1.0'); "
                              "print(*sys.version_info[:2], sep='.')"],
        capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.fail(f"{SYSTEM_PYTHON} cannot load umockdev's GObject bindings: install the "
                    f"Debian packages 'gir1.2-umockdev-1.0' and 'python3-gi'\n{probe.stderr}")
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if probe.stdout.strip() != ours:
        # The child takes pyudev and the editable posdiag from this virtualenv's site-packages.
        pytest.fail(f"{SYSTEM_PYTHON} is Python {probe.stdout.strip()}, the virtualenv {ours}")
    done = subprocess.run(
        [wrapper, SYSTEM_PYTHON, str(HERE / "hotplug_child.py"), sysconfig.get_paths()["purelib"],
         str(UMOCKDEV)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def watched() -> dict[str, Any]:
    return run_child()


def plugs(watched: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action"], e["devnode"]) for e in watched["events"]]


def test_tty_plugs_arrive_in_order_and_filtered_uevents_do_not(watched: dict[str, Any]) -> None:
    # Sent: ttyS0 add (not USB), usb 1-1 add (subsystem not watched), the ports below, then
    # ttyUSB0 change, lp0 remove, ttyUSB0 remove.
    # The modem's four ports are one USB device: one plug, reported with its first port.
    ttys = [p for p in plugs(watched) if p[1] != "/dev/usb/lp0"]
    assert ttys == [("add", "/dev/ttyUSB0"), ("add", "/dev/ttyUSB1"), ("add", "/dev/ttyUSB2"),
                    ("add", "/dev/ttyACM0"), ("remove", "/dev/ttyUSB0")]


def test_plugged_devices_are_described_from_the_table(watched: dict[str, Any]) -> None:
    by_node = {e["devnode"]: e for e in watched["events"] if e["action"] == "add"}
    assert by_node["/dev/ttyUSB0"] == dict(READER_EVENT, action="add")
    assert by_node["/dev/ttyUSB1"] == {
        "action": "add", "devnode": "/dev/ttyUSB1", "vid": "1a86", "pid": "7523",
        "vendor": "QinHeng Electronics", "model": "CH340 serial converter", "kind": "bridge",
        "serves": "contactless", "transport": None}
    assert {k: by_node["/dev/ttyUSB2"][k] for k in ("vid", "pid", "vendor", "model", "kind")} \
        == {"vid": "2c7c", "pid": "0125", "vendor": "Quectel", "model": "EC25/EG25",
            "kind": "cellular"}
    assert not {"/dev/ttyUSB3", "/dev/ttyUSB4", "/dev/ttyUSB5"} & set(by_node)
    assert by_node["/dev/ttyACM0"] == {
        "action": "add", "devnode": "/dev/ttyACM0", "vid": "1209", "pid": "0001",
        "vendor": "Generic", "model": "Test_Board", "kind": None, "serves": None,
        "transport": None}


def test_unplug_is_described_after_its_sysfs_is_gone(watched: dict[str, Any]) -> None:
    assert watched["sysfs_gone"]
    removed = [e for e in watched["events"] if e["action"] == "remove"
               and e["devnode"] == "/dev/ttyUSB0"]
    assert removed == [dict(READER_EVENT, action="remove")]


def test_unplug_drops_the_shared_device_list_at_once(watched: dict[str, Any]) -> None:
    # The second find() came within the cache's lifetime: only forget_devices() in the watcher
    # can have made it see the reader gone.
    assert watched["after_s"] < watched["cache_ttl_s"]
    assert (watched["readers_before"], watched["readers_after"]) == (["/dev/ttyUSB0"], [])


def test_watcher_stops_its_thread(watched: dict[str, Any]) -> None:
    assert watched["watch_threads_left"] == []


def test_events_make_valid_device_event_payloads(watched: dict[str, Any]) -> None:
    for seq, event in enumerate(watched["events"], start=1):
        hotplug = Hotplug(**event)
        schemas.validate("event", payloads.device_event(
            "pos-0042", seq, hotplug.action == "add", hotplug.as_event_device()))


def test_usb_printer_plug_and_unplug_are_reported(watched: dict[str, Any]) -> None:
    # udev gives /dev/usb/lp0 (subsystem usbmisc) no ID_BUS or ID_VENDOR_ID: those live on the
    # parent USB device, and on unplug its sysfs is gone.
    printer = [e for e in watched["events"] if e["devnode"] == "/dev/usb/lp0"]
    assert [e["action"] for e in printer] == ["add", "remove"]
    for event in printer:
        assert {k: event[k] for k in ("vid", "pid", "vendor", "kind", "serves")} == {
            "vid": "04b8", "pid": "0202", "vendor": "Seiko Epson", "kind": "printer",
            "serves": "printer"}


# -- the daemon on real uevents (umockdev, Mosquitto) -------------------------------------------

TERMINAL = "T-HOTPLUG"
OTHER_CHECKS = ("power", "system", "network", "cellular", "payment_host", "clock", "software",
                "contactless", "printer")


def daemon_config(tmp: Path, port: int) -> Path:
    state = tmp / "state"
    state.mkdir()
    disabled = "".join(f"[checks.{name}]\nenabled = false\n" for name in OTHER_CHECKS)
    config = tmp / "posdiag.toml"
    # An hour between scheduled runs: a card_reader result within seconds of a uevent can only
    # come from the re-run the hotplug event starts.
    config.write_text(f"""
[terminal]
id = "{TERMINAL}"
[paths]
state_dir = "{state}"
[mqtt]
host = "127.0.0.1"
port = {port}
tls = false
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[outbox]
path = "{state}/outbox.sqlite"
[daemon]
heartbeat_s = 3600
report_s = 3600
check_interval_s = 3600
jitter_percent = 0
event_holdoff_s = 0
publish_rate_per_s = 200
[checks.card_reader]
reply_timeout_s = 0.1
{disabled}""")
    return config


def test_daemon_publishes_plug_and_unplug_and_rechecks_at_once(tmp_path: Path) -> None:
    wrapper = shutil.which("umockdev-wrapper")
    assert wrapper is not None, "install the Debian package 'umockdev'"
    topic = f"posdiag/v1/{TERMINAL}/event"

    def events(messages: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in messages if m.topic == topic]

    def has(kind: str, **fields: Any) -> Any:
        return lambda ms: any(d["type"] == kind and all(d.get(k) == v for k, v in fields.items())
                              for d in events(ms))

    with Broker(tmp_path) as broker, Subscriber(broker, topic) as sub:
        log = (tmp_path / "child.log").open("w")
        child = subprocess.Popen(
            [wrapper, SYSTEM_PYTHON, str(HERE / "hotplug_daemon_child.py"),
             sysconfig.get_paths()["purelib"], str(UMOCKDEV), str(daemon_config(tmp_path,
                                                                                broker.port))],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True)
        assert child.stdin is not None
        try:
            sub.wait_until(has("agent_started"), timeout_s=20)
            child.stdin.write("plug\n")
            child.stdin.flush()
            sub.wait_until(has("status_changed", check="card_reader", to="fail"), timeout_s=10)
            child.stdin.write("unplug\n")
            child.stdin.flush()
            messages = sub.wait_until(has("status_changed", check="card_reader", to="skipped"),
                                      timeout_s=10)
        finally:
            child.send_signal(signal.SIGTERM)
            rc = child.wait(timeout=10)
            log.close()
    output = (tmp_path / "child.log").read_text(errors="replace")
    assert rc == 0, output
    docs = events(messages)
    for doc in docs:
        schemas.validate("event", doc)
    device = {"kind": "card_reader", "vendor": "ID TECH",
              "model": "IDT1221U USB to RS-232 adapter (MiniMag RS-232)", "vid": "0acd",
              "pid": "0300", "devnode": "/dev/ttyUSB0"}
    story = [(d["type"], d.get("device") or (d.get("from"), d.get("to"), d.get("reason")))
             for d in docs]
    assert story == [
        ("agent_started", (None, None, None)),
        ("device_added", device),
        ("status_changed", ("skipped", "fail", "timeout")),
        ("device_removed", device),
        ("status_changed", ("fail", "skipped", "no_device")),
    ], output


# -- PortBook: one plug per USB device, removals described from what was known ---------------------


def _tty(devnode: str, vid: str = "2c7c", pid: str = "0125", serial: str = "EC25X") -> dict:
    return {"DEVNAME": devnode, "ID_BUS": "usb", "ID_VENDOR_ID": vid, "ID_MODEL_ID": pid,
            "ID_SERIAL_SHORT": serial}


def test_portbook_reports_a_multi_port_device_once_each_way() -> None:
    from posdiag.drivers.discovery import load_device_table
    from posdiag.drivers.hotplug import PortBook

    table, book = load_device_table(), PortBook()
    ports = [f"/dev/ttyUSB{i}" for i in range(2, 6)]
    added = [e for p in ports for e in book.update("add", _tty(p), table)]
    assert [(e.action, e.devnode, e.kind) for e in added] == [("add", "/dev/ttyUSB2", "cellular")]
    removed = []
    for p in ports:
        # sysfs is gone on removal: udev's remove uevent may carry nothing but the node
        removed += book.update("remove", {"DEVNAME": p}, table)
    assert [(e.action, e.devnode, e.kind) for e in removed] == [
        ("remove", "/dev/ttyUSB2", "cellular")]


def test_portbook_describes_the_removal_of_a_device_known_from_the_start() -> None:
    from posdiag.drivers.discovery import load_device_table
    from posdiag.drivers.hotplug import Hotplug, PortBook

    table, book = load_device_table(), PortBook()
    printer = Hotplug("add", "/dev/usb/lp0", "04b8", "0202", "Seiko Epson", "TM", "printer", None)
    book.seed("/dev/usb/lp0", "04b8:0202:", printer)
    (gone,) = book.update("remove", {"DEVNAME": "/dev/usb/lp0", "SUBSYSTEM": "usbmisc"}, table)
    assert (gone.action, gone.kind, gone.vendor) == ("remove", "printer", "Seiko Epson")
    assert book.update("remove", {"DEVNAME": "/dev/usb/lp0"}, table) == []  # unknown, no ids


def test_portbook_two_identical_devices_with_serials_are_two_plugs() -> None:
    from posdiag.drivers.discovery import load_device_table
    from posdiag.drivers.hotplug import PortBook

    table, book = load_device_table(), PortBook()
    a = book.update("add", _tty("/dev/ttyUSB0", "0acd", "2010", "A1"), table)
    b = book.update("add", _tty("/dev/ttyUSB1", "0acd", "2010", "B2"), table)
    assert len(a) == len(b) == 1
