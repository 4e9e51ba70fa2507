"""Hotplug learns CCID chip readers: a USB device uevent with a class 0x0B interface is a
chip_reader plug; other raw USB uevents stay silent (their tty/usblp node is what is reported).
The properties are those of hardware-fixtures/umockdev/acs-acr39u-ccid.umockdev."""

from __future__ import annotations

from conftest import FIXTURES

from posdiag.drivers.discovery import load_device_table
from posdiag.drivers.hotplug import PortBook, describe


def recorded(path_suffix: str) -> dict[str, str]:
    text = (FIXTURES / "umockdev" / "acs-acr39u-ccid.umockdev").read_text()
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].endswith(path_suffix):
            return dict(line[3:].split("=", 1) for line in lines if line.startswith("E: "))
    raise AssertionError(path_suffix)


def test_ccid_usb_device_is_a_chip_reader_plug_and_unplug() -> None:
    table = load_device_table()
    props = recorded("usb1/1-7")
    book = PortBook()
    (plug,) = book.update("add", props, table)
    assert (plug.kind, plug.vid, plug.pid, plug.model) == ("chip_reader", "072f", "b100",
                                                           "ACR39U_ICC_Reader")
    assert plug.devnode == "/dev/bus/usb/001/009"
    (unplug,) = book.update("remove", props, table)
    assert (unplug.action, unplug.kind) == ("remove", "chip_reader")


def test_its_interface_and_other_usb_devices_are_not_reported() -> None:
    table = load_device_table()
    assert describe("add", recorded("1-7:1.0") | {"ID_BUS": "usb"}, table) is None
    modem_usb = {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "ID_BUS": "usb",
                 "ID_USB_INTERFACES": ":ff0000:ff0201:", "ID_VENDOR_ID": "2c7c",
                 "ID_MODEL_ID": "0125", "DEVNAME": "/dev/bus/usb/001/004"}
    assert describe("add", modem_usb, table) is None
