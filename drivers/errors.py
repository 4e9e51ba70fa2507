"""The drivers' exception tree. Checks map these to reason codes in one place."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a driver raises; carries the device it concerns."""

    def __init__(self, message: str, *, device: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.device = device

    def __str__(self) -> str:
        return f"{self.device}: {self.message}" if self.device else self.message


class DeviceNotFound(DriverError):
    """The device (or its port) does not exist."""


class DeviceBusy(DriverError):
    """Another process holds the port."""

    def __init__(self, message: str, *, device: str | None = None,
                 holder_pid: int | None = None, holder_name: str | None = None) -> None:
        super().__init__(message, device=device)
        self.holder_pid = holder_pid
        self.holder_name = holder_name


class DeviceTimeout(DriverError):
    """The device did not answer in time."""

    def __init__(self, message: str, *, device: str | None = None,
                 timeout_s: float | None = None) -> None:
        super().__init__(message, device=device)
        self.timeout_s = timeout_s


class ProtocolError(DriverError):
    """The device answered, but the bytes break the protocol (framing, checksum, NAK, error frame).

    ``kind`` is a short machine word: ``checksum``, ``nak``, ``error_frame``, ``framing``,
    ``unexpected`` ... so a check can tell them apart without parsing the message.
    """

    def __init__(self, message: str, *, device: str | None = None, kind: str = "framing") -> None:
        super().__init__(message, device=device)
        self.kind = kind


class PermissionDenied(DriverError):
    """The port exists but this user may not open it."""

    def __init__(self, message: str, *, device: str | None = None,
                 group: str | None = None) -> None:
        super().__init__(message, device=device)
        self.group = group


class NotSupported(DriverError):
    """The device does not implement the requested operation."""
