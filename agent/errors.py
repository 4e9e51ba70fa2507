"""The agent's exception tree: short, with structured fields, turned into messages at the edge."""

from __future__ import annotations


class PosdiagError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(PosdiagError):
    """A config file is missing, unreadable, not TOML, or holds a bad key or value.

    Printed as ``file: key: problem`` and mapped to exit code 78 (EX_CONFIG).
    """

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


class UsageError(PosdiagError):
    """The command line asks for something that does not exist (an unknown check, say)."""


class CommandRejected(PosdiagError):
    """A command that will not run; ``code`` is one of reply.json's error codes, unless
    ``answerable`` is false: then no reply can be sent and ``code`` only names the case."""

    def __init__(self, code: str, message: str, *, answerable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.answerable = answerable
