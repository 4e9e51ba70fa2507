"""The backend side of posdiag: a reference consumer for fleet backend teams.

- ``Consumer`` subscribes to every terminal (optionally as an MQTT 5 shared-subscription group),
  validates each payload against the shipped JSON Schemas and stores it in a ``Store``.
- ``Store`` (SQLite) keeps presence, the latest report and heartbeat, history, seq gaps and
  rejected payloads, and answers "how is the fleet?" (``terminals()``).
- ``Commander`` / ``send_command`` send a command and wait for the terminal's reply.

Needs ``jsonschema`` (the ``fleet`` extra) to validate; the agent itself does not.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): ``posdiag --help`` builds the fleet sub-parser through
# ``posdiag.fleet.cli`` and must not pay for paho, sqlite and jsonschema on every start.
_WHERE = {
    "Command": "command", "Commander": "command", "send_command": "command",
    "BrokerSettings": "connection",
    "Consumer": "consumer", "topic_filters": "consumer",
    "BadReply": "errors", "BrokerUnavailable": "errors", "CommandTimeout": "errors",
    "CommandUndelivered": "errors", "FleetError": "errors", "StorageError": "errors",
    "Failing": "store", "Gap": "store", "Outcome": "store", "Recorded": "store",
    "Retention": "store", "Store": "store", "TerminalView": "store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'posdiag.fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(f"posdiag.fleet.{module}"), name)


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
