"""Every exit code the ``posdiag`` command line documents, in one table.

The ``--help`` texts are built from it and ``docs/cli.md`` must list exactly these rows (a test
compares them), so a code is documented once. Check results follow the monitoring-plugins
convention (0 ok, 1 warning, 2 failure, 3 unknown); problems with the command itself use the
BSD sysexits numbers, which no monitoring system reads as a check status.
"""

from __future__ import annotations

OK = 0
WARN = 1
FAIL = 2
UNKNOWN = 3
EX_USAGE = 64
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_CONFIG = 78
INTERRUPTED = 130

_USAGE = (EX_USAGE, "bad command line (unknown option, check or symptom; missing directory)")
_CONFIG = (EX_CONFIG, "bad config: 'file: key: problem' on stderr")

CODES: dict[str, tuple[tuple[int, str], ...]] = {
    "selftest": (
        (OK, "every check ok (or skipped)"),
        (WARN, "the worst check is a warning"),
        (FAIL, "a check failed"),
        (UNKNOWN, "no failure, but a check could not tell"),
        _USAGE, _CONFIG,
    ),
    "diagnose": (
        (OK, "no fault found for this symptom, or the symptom list; a warning in a check that "
             "does not bear on the symptom does not count (the JSON 'status' still shows it)"),
        (WARN, "a likely cause, backed by warnings only"),
        (FAIL, "a likely cause, backed by a failed check"),
        (UNKNOWN, "a likely cause backed by a check that could not tell, or no fault found "
                  "while a check the symptom needs could not tell"),
        (EX_SOFTWARE, "the installed symptom catalogue is broken"),
        _USAGE, _CONFIG,
    ),
    "history": (
        (OK, "the window was printed"),
        (EX_NOINPUT, "no flight log yet (the recorder has not run or is disabled)"),
        _USAGE, _CONFIG,
    ),
    "swipe-test": (
        (OK, "every track read correctly"),
        (WARN, "read, with problems"),
        (FAIL, "reader failure or no swipe in time"),
        _USAGE, _CONFIG,
    ),
    "run": (
        (OK, "stopped by SIGTERM or SIGINT"),
        (EX_CANTCREAT, "the outbox cannot be created"),
        _USAGE, _CONFIG,
    ),
    "checks": ((OK, "the list was printed"), _USAGE),
    "config check": ((OK, "the config is valid"), _USAGE, _CONFIG),
    "fleet listen": (
        (OK, "stopped by SIGINT or SIGTERM"),
        (EX_UNAVAILABLE, "broker unreachable or refused, or jsonschema (the fleet extra) missing"),
        (EX_IOERR, "the fleet database cannot be written"),
        (EX_USAGE, "bad command line (including a --db the store does not serve)"),
        _CONFIG,
    ),
    "fleet status": (
        (OK, "the fleet was printed"),
        (EX_NOINPUT, "no fleet database at --db"),
        (EX_USAGE, "bad command line (including a --db the store does not serve)"),
    ),
    "fleet command": (
        (OK, "the terminal answered ok"),
        (FAIL, "the terminal answered with an error"),
        (UNKNOWN, "no valid answer: timeout, no terminal subscribed, or an invalid reply"),
        (EX_UNAVAILABLE, "broker unreachable or refused, or jsonschema (the fleet extra) missing"),
        _USAGE, _CONFIG,
    ),
}
# Any command: Ctrl-C.
ANY = ((INTERRUPTED, "interrupted (Ctrl-C)"),)


def epilog(command: str) -> str:
    """The exit codes of ``command`` as the last paragraph of its ``--help``."""
    return "exit codes: " + "; ".join(f"{code} {what}" for code, what in CODES[command]) + "."
