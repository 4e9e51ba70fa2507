"""udev discovery against umockdev device trees, and the VID:PID table.

The umockdev tests run the discovery code in a child process started by ``umockdev-run``
(Debian package ``umockdev``), which gives libudev, /sys and /dev the fixture devices; the
child prints what it found as JSON and the assertions run here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from posdiag.drivers.discovery import (
    DRIVERS,
    DeviceEntry,
    DeviceTableError,
    DiscoveredDevice,
    find,
    list_devices,
    load_device_table,
    parse_device_table,
)

UMOCKDEV = Path(__file__).resolve().parents[2] / "hardware-fixtures" / "umockdev"
HOST = "usb-host-xhci.umockdev"

CHILD = """
import dataclasses, json, sys
from posdiag.drivers import discovery

def dump(devices):
    return [dict(dataclasses.asdict(d), driver=d.driver, kind=d.kind, port=d.port,
                 is_at_port=d.is_at_port) for d in devices]

result = {"all": dump(discovery.list_devices())}
for kind in ("card_reader", "contactless", "cellular", "printer"):
    result[kind] = [d.devnode for d in discovery.find(kind)]
result["contactless_exact"] = [d.devnode for d in discovery.find("contactless",
                                                                  include_bridges=False)]
extra = sys.argv[1] if len(sys.argv) > 1 else ""
if extra == "open":
    from posdiag.drivers.transport import open_port
    reader = discovery.find("card_reader")[0]
    with open_port(reader.port, baudrate=9600, timeout_s=0.2) as port:
        port.write(bytes.fromhex("02521f034c"))
        result["read"] = port.read(5).hex()
if extra == "power":
    import pyudev, psutil
    ctx = pyudev.Context()
    result["supplies"] = {d.sys_name: {k: d.attributes.asstring(k) for k in ("type", "online")
                                       if k in d.attributes.available_attributes}
                          for d in ctx.list_devices(subsystem="power_supply")}
    battery = psutil.sensors_battery()
    result["battery"] = [battery.percent, battery.secsleft, battery.power_plugged]
print(json.dumps(result))
"""


def under_umockdev(*fixtures: str, extra: str = "") -> dict[str, Any]:
    tool = shutil.which("umockdev-run")
    if tool is None:
        pytest.fail("umockdev-run not found: install the Debian package 'umockdev'")
    args = [tool]
    for name in fixtures:
        args += ["-d", str(UMOCKDEV / name)]
    args += ["--", sys.executable, "-c", CHILD, extra]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def only(devices: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(devices) == 1, devices
    return devices[0]


# -- each fixture device under umockdev ---------------------------------------------------------


def test_idtech_reader_behind_its_usb_serial_cable() -> None:
    found = under_umockdev(HOST, "idtech-minimag-idt1221u.umockdev")
    reader = only(found["all"])
    assert (reader["vid"], reader["pid"]) == ("0acd", "0300")
    assert reader["vendor"] == "ID TECH"
    assert reader["model"] == "IDT1221U USB to RS-232 adapter (MiniMag RS-232)"
    assert reader["serial"] == "ID0A4B71"
    assert reader["devnode"] == "/dev/ttyUSB0"
    assert reader["by_id"] == "/dev/serial/by-id/usb-ID_TECH_IDT1221U_ID0A4B71-if00-port0"
    assert reader["port"] == reader["by_id"]
    assert reader["interface_number"] == 0
    assert reader["kernel_driver"] == "ftdi_sio"
    assert (reader["driver"], reader["kind"]) == ("idtech", "card_reader")
    assert reader["modemmanager_ignored"] is True
    assert found["card_reader"] == ["/dev/ttyUSB0"]
    assert found["contactless"] == found["cellular"] == found["printer"] == []


def test_pn532_board_is_a_bridge_candidate_even_without_the_host_controller() -> None:
    found = under_umockdev("pn532-ch340.umockdev")  # no root hub loaded: parents are implied
    bridge = only(found["all"])
    assert (bridge["vid"], bridge["pid"]) == ("1a86", "7523")
    assert bridge["vendor"] == "QinHeng Electronics"
    assert bridge["model"] == "CH340 serial converter"
    assert bridge["usb_product"] == "USB Serial" and bridge["usb_manufacturer"] is None
    assert bridge["serial"] is None  # CH340 has no serial number descriptor
    assert bridge["devnode"] == "/dev/ttyUSB1"
    assert bridge["by_id"] == "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
    assert bridge["kernel_driver"] == "ch341"
    assert (bridge["driver"], bridge["kind"]) == ("pn532", "bridge")
    assert bridge["modemmanager_ignored"] is False
    assert found["contactless"] == ["/dev/ttyUSB1"]
    assert found["contactless_exact"] == []
    assert found["card_reader"] == []


def test_quectel_ec25_exposes_four_ports_and_one_at_port() -> None:
    found = under_umockdev(HOST, "quectel-ec25.umockdev")
    ports = found["all"]
    assert [p["devnode"] for p in ports] == [f"/dev/ttyUSB{n}" for n in range(2, 6)]
    assert [p["interface_number"] for p in ports] == [0, 1, 2, 3]
    assert {(p["vid"], p["pid"], p["driver"], p["kind"]) for p in ports} == {
        ("2c7c", "0125", "at_modem", "cellular")}
    # The USB strings say "Android"; the table names the modem.
    assert {(p["vendor"], p["model"], p["usb_manufacturer"]) for p in ports} == {
        ("Quectel", "EC25/EG25", "Android")}
    assert all(p["serial"] is None and p["kernel_driver"] == "option" for p in ports)
    assert [p["is_at_port"] for p in ports] == [False, False, True, False]
    at_port = ports[2]
    assert at_port["by_id"] == "/dev/serial/by-id/usb-Android_Android-if02-port0"
    assert found["cellular"] == ["/dev/ttyUSB4"]  # never the DIAG port on interface 0


def test_epson_receipt_printer_on_usblp() -> None:
    found = under_umockdev(HOST, "epson-tm-usblp.umockdev")
    printer = only(found["all"])
    assert (printer["vid"], printer["pid"]) == ("04b8", "0202")
    assert printer["vendor"] == "Seiko Epson"
    assert printer["model"] == "TM series receipt printer (M129C/TM-T70)"
    assert printer["usb_product"] == "TM-T70"
    assert printer["serial"] == "J7RF012345"
    assert printer["devnode"] == "/dev/usb/lp0"
    assert printer["subsystem"] == "usbmisc"
    assert printer["by_id"] is None and printer["port"] == "/dev/usb/lp0"
    assert printer["kernel_driver"] == "usblp"
    assert (printer["driver"], printer["kind"]) == ("escpos", "printer")
    assert found["printer"] == ["/dev/usb/lp0"]


def test_battery_and_mains_read_like_the_kernel_abi() -> None:
    found = under_umockdev("power-acpi-battery-mains.umockdev", extra="power")
    assert found["all"] == []  # power supplies are not ports
    assert found["supplies"] == {"BAT0": {"type": "Battery"},
                                 "AC": {"type": "Mains", "online": "0"}}
    # psutil reads the same tree: 22.8 Wh of 40 Wh, 7.6 W drawn, AC offline.
    assert found["battery"] == [57.0, 10800, False]


def test_whole_terminal_find_by_kind_and_open_the_reader() -> None:
    found = under_umockdev(*sorted(p.name for p in UMOCKDEV.glob("*.umockdev")), extra="open")
    assert [d["devnode"] for d in found["all"]] == [
        "/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB2", "/dev/ttyUSB3", "/dev/ttyUSB4",
        "/dev/ttyUSB5", "/dev/usb/lp0"]
    assert found["card_reader"] == ["/dev/ttyUSB0"]
    assert found["contactless"] == ["/dev/ttyUSB1"]
    assert found["cellular"] == ["/dev/ttyUSB4"]
    assert found["printer"] == ["/dev/usb/lp0"]
    # The by-id path of the found reader opens; nothing answers, so the read times out empty.
    assert found["read"] == ""


# -- the table ----------------------------------------------------------------------------------


def test_shipped_table_loads_from_package_data() -> None:
    table = load_device_table()
    assert len(table.entries) >= 20
    ec25 = table.lookup("2C7C", "0125")
    assert ec25 is not None and ec25.at_interface == 2 and ec25.driver == "at_modem"
    assert table.lookup("ffff", "0000") is None
    kinds = {(e.vid, e.pid): e.kind for e in table.entries}
    assert kinds[("1a86", "7523")] == kinds[("10c4", "ea60")] == "bridge"
    assert kinds[("0403", "6001")] == kinds[("067b", "2303")] == "bridge"
    assert kinds[("04b8", "0202")] == "printer"
    assert {e.vid for e in table.entries if e.kind == "card_reader"} == {"0acd", "0801"}
    assert all(e.at_interface == 2 for e in table.entries if e.vid == "2c7c")


ROW = 'vid = "0acd"\npid = "0300"\nvendor = "ID TECH"\nmodel = "x"\ndriver = "idtech"\n' \
      'kind = "card_reader"\n'


@pytest.mark.parametrize(("text", "message"), [
    ("schema = 1\n[[device]]\n" + ROW + "colour = 'red'\n", "device #1: unknown key(s) colour"),
    ("schema = 1\n[[device]]\n" + ROW.replace('"0acd"', '"ACD"'), "vid must be 4 lower-case"),
    ("schema = 1\n[[device]]\n" + ROW.replace('model = "x"\n', ""), "device #1"),
    ("schema = 1\n[[device]]\n" + ROW + "[[device]]\n" + ROW, "duplicate entry 0acd:0300"),
    ("schema = 1\n[[device]]\n" + ROW.replace('"card_reader"', '"printer"'), "serves"),
    ("schema = 1\n[[device]]\n" + ROW + "at_interface = 2\n", "at_interface"),
    ("schema = 1\n[[device]]\n" + ROW.replace('"idtech"', '"nfc"'), "driver must be one of"),
    ("schema = 2\n", "schema: expected 1"),
    ("schema = 1\nextra = 3\n", "unknown key(s) extra"),
    ("schema = [", "not valid TOML"),
])
def test_malformed_tables_are_rejected_with_the_place(text: str, message: str) -> None:
    with pytest.raises(DeviceTableError, match=r"^custom\.toml: .*" + re.escape(message)):
        parse_device_table(text, name="custom.toml")


def test_table_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DeviceTableError, match="cannot read"):
        load_device_table(tmp_path / "missing.toml")
    path = tmp_path / "devices.toml"
    path.write_text("schema = 1\n[[device]]\n" + ROW)
    assert load_device_table(path).lookup("0acd", "0300") is not None


def test_entry_and_device_validation() -> None:
    assert DRIVERS["pn532"] == "contactless"
    bridge = DeviceEntry("1a86", "7523", "QinHeng", "CH340", "pn532", "bridge")
    assert bridge.serves == "contactless"
    with pytest.raises(ValueError):
        DeviceEntry("1a86", "7523", "QinHeng", "CH340", "pn532", "bridge", transport="usb")
    with pytest.raises(ValueError):
        DeviceEntry("2c7c", "0125", "Quectel", "EC25", "at_modem", "cellular")
    with pytest.raises(ValueError):
        DiscoveredDevice("0ACD", "0300", None, None, None, "/dev/ttyUSB0", "tty", None, None,
                         None, None, None, "/sys/x", False, None)
    with pytest.raises(ValueError):
        DiscoveredDevice("0acd", "0300", None, None, None, "ttyUSB0", "tty", None, None,
                         None, None, None, "/sys/x", False, None)
    with pytest.raises(ValueError):
        find("bridge", context=FakeContext([]))


# -- list_devices with a stand-in context: devices that vanish mid-scan ----------------------------


class FakeAttributes:
    def __init__(self, values: dict[str, str], broken: bool = False) -> None:
        self.values, self.broken = values, broken

    def asstring(self, name: str) -> str:
        if self.broken:
            raise OSError(19, "No such device")
        return self.values[name]


class FakeDevice:
    def __init__(self, sys_name: str, node: str | None, attrs: dict[str, str],
                 props: dict[str, str], parent: FakeDevice | None = None,
                 broken: bool = False) -> None:
        self.sys_name, self.device_node, self.sys_path = sys_name, node, f"/sys/fake/{sys_name}"
        self.attributes = FakeAttributes(attrs, broken)
        self.properties, self.device_links, self.driver = props, [], None
        self._parent = parent

    def find_parent(self, subsystem: str, device_type: str) -> FakeDevice | None:
        return self._parent if device_type == "usb_device" else None


class FakeContext:
    def __init__(self, ttys: list[FakeDevice]) -> None:
        self.ttys = ttys

    def list_devices(self, subsystem: str) -> list[FakeDevice]:
        return self.ttys if subsystem == "tty" else []


def test_vanishing_and_non_usb_ports_are_skipped() -> None:
    alive = FakeDevice("1-5", None, {"idVendor": "10c4", "idProduct": "ea60",
                                     "serial": "0001"}, {})
    gone = FakeDevice("1-6", None, {}, {}, broken=True)
    ttys = [FakeDevice("ttyUSB7", "/dev/ttyUSB7", {}, {"ID_USB_INTERFACE_NUM": "00"}, alive),
            FakeDevice("ttyUSB8", "/dev/ttyUSB8", {}, {}, gone),
            FakeDevice("ttyS0", "/dev/ttyS0", {}, {})]
    devices = list_devices(FakeContext(ttys))
    assert [(d.devnode, d.vid, d.pid, d.serial, d.interface_number, d.kind) for d in devices] \
        == [("/dev/ttyUSB7", "10c4", "ea60", "0001", 0, "bridge")]
    assert devices[0].vendor == "Silicon Labs" and devices[0].port == "/dev/ttyUSB7"
    assert find("cellular", context=FakeContext(ttys)) == []
