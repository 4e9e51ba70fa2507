"""What can go wrong on the backend side, each with the message the CLI prints."""

from __future__ import annotations

from posdiag.errors import PosdiagError


class FleetError(PosdiagError):
    """Base of the fleet consumer's errors."""


class BrokerUnavailable(FleetError):
    """The broker cannot be reached, refused the connection, or refused a subscription."""


class StorageError(FleetError):
    """The fleet database cannot be written; the consumer stops rather than acknowledge a
    message it did not keep (the broker redelivers it to a persistent session)."""


class CommandUndelivered(FleetError):
    """The broker refused the command (PUBACK reason >= 0x80) or no terminal is subscribed."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


class CommandTimeout(FleetError):
    def __init__(self, terminal_id: str, verb: str, timeout_s: float) -> None:
        super().__init__(f"{terminal_id}: no reply to {verb!r} within {timeout_s:g} s")
        self.terminal_id = terminal_id
        self.verb = verb
        self.timeout_s = timeout_s


class BadReply(FleetError):
    """A reply arrived with our Correlation Data but is not a valid ``posdiag.reply/1`` for the
    command we sent."""

    def __init__(self, problem: str, payload: bytes) -> None:
        super().__init__(f"invalid reply: {problem}")
        self.problem = problem
        self.payload = payload
