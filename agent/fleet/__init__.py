"""The backend side of posdiag: a reference consumer for fleet backend teams.

- ``Consumer`` subscribes to every terminal (optionally as an MQTT 5 shared-subscription group),
  validates each payload against the shipped JSON Schemas and stores it in a ``Store``.
- ``Store`` (SQLite) keeps presence, the latest report and heartbeat, history, seq gaps and
  rejected payloads, and answers "how is the fleet?" (``terminals()``).
- ``Commander`` / ``send_command`` send a command and wait for the terminal's reply.

Needs ``jsonschema`` (the ``fleet`` extra) to validate; the agent itself does not.
"""

from __future__ import annotations

from posdiag.fleet.command import Command, Commander, send_command
from posdiag.fleet.connection import BrokerSettings
from posdiag.fleet.consumer import Consumer, topic_filters
from posdiag.fleet.errors import (
    BadReply,
    BrokerUnavailable,
    CommandTimeout,
    CommandUndelivered,
    FleetError,
    StorageError,
)
from posdiag.fleet.store import Failing, Gap, Outcome, Recorded, Retention, Store, TerminalView

__all__ = [
    "BadReply",
    "BrokerSettings",
    "BrokerUnavailable",
    "Command",
    "CommandTimeout",
    "CommandUndelivered",
    "Commander",
    "Consumer",
    "Failing",
    "FleetError",
    "Gap",
    "Outcome",
    "Recorded",
    "Retention",
    "StorageError",
    "Store",
    "TerminalView",
    "send_command",
    "topic_filters",
]
