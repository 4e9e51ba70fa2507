"""Every documented exit code: docs/cli.md, each --help and the code say the same, and each code
is produced by a real run (here, or in the test named in COVERED_ELSEWHERE)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from posdiag_process import PosdiagProcess, empty_procfs, write_config

from posdiag import swipe
from posdiag.exit_codes import ANY, CODES, epilog
from posdiag.i18n import Texts
from simulators.idtech_msr import IdTechMsrSimulator

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "hardware-fixtures"
ROOTS = ["--procfs", str(FIX / "procfs/healthy-terminal"),
         "--rootfs", str(FIX / "rootfs/healthy-terminal")]
HEALTHY = ["--sysfs", str(FIX / "sysfs/healthy-terminal"), *ROOTS]
LOW_BATTERY = ["--sysfs", str(FIX / "sysfs/battery-discharging-low"), *ROOTS]
# The clock check reads this machine's kernel clock (adjtimex), which no fixture can redirect:
# left on, the codes below would depend on whether this machine runs a time daemon.
QUIET = """
[checks.clock]
enabled = false
[checks.contactless]
enabled = false
[checks.printer]
enabled = false
[checks.card_reader]
enabled = false
"""

# Rows a test elsewhere produces in a real run (file::function).
COVERED_ELSEWHERE = {
    ("history", 0): "tests/recorder/test_history_cli.py::test_table_sparklines_and_missing_minutes",
    ("history", 66): "tests/recorder/test_history_cli.py::test_no_log_and_bad_options",
    ("history", 64): "tests/recorder/test_history_cli.py::test_no_log_and_bad_options",
    ("history", 78): "tests/recorder/test_history_cli.py::test_no_log_and_bad_options",
    ("swipe-test", 0): "tests/test_swipe_test_cli.py::test_good_swipe_json",
    ("swipe-test", 1): "tests/test_swipe_test_cli.py::test_bad_lrc_is_reported_and_exits_1",
    ("swipe-test", 2): "tests/test_swipe_test_cli.py::test_no_swipe_within_the_timeout_exits_2",
    ("swipe-test", 64): "tests/test_swipe_test_cli.py::test_bad_timeout_is_a_usage_error",
    ("swipe-test", 78): "tests/test_swipe_test_cli.py::test_bad_config_is_exit_78",
    ("run", 0): "tests/daemon/test_daemon.py::test_presence_reports_heartbeats_and_sd_notify",
    ("fleet listen", 0): "tests/fleet/test_fleet.py::test_listen_runs_until_sigterm_and_stores",
    ("fleet listen", 69): "tests/fleet/test_fleet.py::"
                          "test_listen_exits_69_when_the_broker_is_unreachable",
    ("fleet listen", 74): "tests/core/test_exit_codes.py::test_fleet_listen_database_failure",
    ("fleet listen", 64): "tests/fleet/test_db_location.py::"
                          "test_cli_refuses_a_postgresql_url_in_one_line_and_creates_nothing",
    ("fleet listen", 78): "tests/core/test_exit_codes.py::test_fleet_config_error_is_78",
    ("fleet status", 0): "tests/fleet/test_db_location.py::test_cli_status_reads_a_sqlite_url",
    ("fleet status", 66): "tests/core/test_exit_codes.py::test_fleet_status_without_database",
    ("fleet status", 64): "tests/fleet/test_db_location.py::"
                          "test_cli_refuses_a_postgresql_url_in_one_line_and_creates_nothing",
    ("fleet command", 0): "tests/fleet/test_fleet.py::"
                          "test_config_file_mqtt_section_gives_the_broker_defaults",
    ("fleet command", 2): "tests/fleet/test_fleet.py::test_command_error_reply_exits_2",
    ("fleet command", 3): "tests/fleet/test_fleet.py::test_command_without_reply_exits_3",
    ("fleet command", 69): "tests/fleet/test_fleet.py::"
                           "test_bad_command_usage_and_unreachable_broker",
    ("fleet command", 64): "tests/fleet/test_fleet.py::"
                           "test_bad_command_usage_and_unreachable_broker",
    ("fleet command", 78): "tests/fleet/test_fleet.py::"
                           "test_config_file_mqtt_section_gives_the_broker_defaults",
}


def posdiag(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    e = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=120)


def conf(tmp_path: Path, text: str = QUIET, name: str = "posdiag.toml") -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def documented() -> list[tuple[str, int, str]]:
    rows = []
    for line in (REPO / "docs/cli.md").read_text().splitlines():
        m = re.fullmatch(r"\| (`[^`]+`|any) \| (\d+) \| (.+) \|", line)
        if m:
            rows.append((m.group(1).strip("`"), int(m.group(2)), m.group(3)))
    return rows


def test_docs_table_is_the_code_table():
    expected = [(cmd, code, what) for cmd, codes in CODES.items() for code, what in codes]
    expected += [("any", code, what) for code, what in ANY]
    assert documented() == expected


@pytest.mark.parametrize("command", list(CODES))
def test_help_prints_the_codes_of_its_command(command):
    words = command.split()
    if words[:2] == ["fleet", "command"]:
        words += ["T-1", "ping"]
    p = posdiag(*words, "--help")
    assert p.returncode == 0, p.stderr
    assert " ".join(epilog(command).split()) in " ".join(p.stdout.split())


def test_readme_does_not_contradict_the_table():
    readme = (REPO / "README.md").read_text()
    assert "docs/cli.md" in readme
    assert "Exit codes (selftest, diagnose)" not in readme  # they differ: see docs/cli.md


def test_every_documented_code_is_produced_by_a_test():
    here = {name for name in globals() if name.startswith("test_")}
    missing = []
    for command, code, _ in documented():
        if (command, code) in PRODUCED_HERE:
            assert PRODUCED_HERE[(command, code)] in here
            continue
        where = COVERED_ELSEWHERE.get((command, code))
        if where is None:
            missing.append((command, code))
            continue
        path, function = where.split("::")
        assert re.search(rf"^def {function}\(", (REPO / path).read_text(), re.M), where
    assert missing == []


# -- selftest ---------------------------------------------------------------------------------
@pytest.mark.parametrize("check, roots, extra, code", [
    ("power", HEALTHY, "", 0),
    ("power", LOW_BATTERY, "", 1),
    ("printer", HEALTHY, '[checks.printer]\nport = "/nonexistent/lp0"\n', 2),
    ("card_reader", HEALTHY, '[checks.card_reader]\nport = "/dev/null"\n', 3),
])
def test_selftest_status_codes(tmp_path, check, roots, extra, code):
    p = posdiag("selftest", "--json", "--check", check, "--config", conf(tmp_path, extra), *roots)
    assert p.returncode == code, p.stderr


def test_selftest_usage_and_config(tmp_path):
    assert posdiag("selftest", "--check", "nonsense", *HEALTHY).returncode == 64
    assert posdiag("selftest", "--config", conf(tmp_path, "[nope]\n"), *HEALTHY).returncode == 78


# -- diagnose ---------------------------------------------------------------------------------
def test_diagnose_no_fault_is_0_even_with_a_warning_elsewhere(tmp_path):
    assert posdiag("diagnose").returncode == 0  # the symptom list
    p = posdiag("diagnose", "power", "--json", "--config", conf(tmp_path), *HEALTHY)
    assert p.returncode == 0, p.stderr
    # As found: "status": "warn" with "exit_code": 0. The status is the worst check run; the
    # exit code is about the symptom. A failed network with no bearing on it: still 0.
    import json

    p = posdiag("diagnose", "terminal-status-abnormal", "--json", "--config", conf(tmp_path),
                *LOW_BATTERY)
    doc = json.loads(p.stdout)
    assert (p.returncode, doc["exit_code"], doc["verdict"]) == (0, 0, "no_fault_found")
    assert doc["status"] != "ok"


@pytest.mark.parametrize("symptom, roots, extra, code", [
    ("power", LOW_BATTERY, QUIET, 1),
    ("printer", HEALTHY, '[checks.printer]\nport = "/nonexistent/lp0"\n', 2),
    ("card-read-failure", HEALTHY,
     '[checks.card_reader]\nport = "/dev/null"\n[checks.contactless]\nenabled = false\n', 3),
])
def test_diagnose_codes(tmp_path, symptom, roots, extra, code):
    import json

    p = posdiag("diagnose", symptom, "--json", "--config", conf(tmp_path, extra), *roots)
    assert p.returncode == code, p.stderr
    assert json.loads(p.stdout)["exit_code"] == code


def test_diagnose_usage_config_and_broken_catalogue(tmp_path):
    assert posdiag("diagnose", "no-such-symptom", *HEALTHY).returncode == 64
    assert posdiag("diagnose", "power", "--config", conf(tmp_path, "[nope]\n")).returncode == 78
    # A real installed copy of the package whose symptom catalogue is damaged.
    site = tmp_path / "site"
    shutil.copytree(REPO / "agent", site / "posdiag")
    shutil.copytree(REPO / "drivers", site / "posdiag/drivers")
    (site / "posdiag/diagnosis/symptoms.toml").write_text("[symptoms.power]\nchecks = 3\n")
    p = posdiag("diagnose", "power", *HEALTHY, env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert p.returncode == 70, p.stderr
    assert "symptom catalogue is broken" in p.stderr and "Traceback" not in p.stderr


# -- the other terminal commands ------------------------------------------------------------
def test_checks_and_config_check(tmp_path):
    assert posdiag("checks").returncode == 0
    assert posdiag("checks", "--no-such-option").returncode == 64
    assert posdiag("config", "check", "--config", conf(tmp_path)).returncode == 0
    assert posdiag("config", "check", "--sysfs", "/nonexistent/x").returncode == 64
    assert posdiag("config", "check", "--config", conf(tmp_path, "[nope]\n")).returncode == 78


def test_run_usage_config_and_outbox_that_cannot_be_created(tmp_path):
    assert posdiag("run", "--sysfs", "/nonexistent/x").returncode == 64
    assert posdiag("run", "--config", conf(tmp_path, "[nope]\n")).returncode == 78
    (tmp_path / "a-file").write_text("")
    text = (f'[outbox]\npath = "{tmp_path}/a-file/outbox.sqlite"\n'
            '[mqtt]\nhost = "127.0.0.1"\nport = 1\ntls = false\n')
    p = posdiag("run", "--config", conf(tmp_path, text))
    assert p.returncode == 73 and "cannot open the outbox" in p.stderr


def test_fleet_config_error_is_78(tmp_path):
    p = posdiag("fleet", "listen", "--db", str(tmp_path / "f.sqlite"), "--config",
                conf(tmp_path, "[mqtt]\nport = 0\n"))
    assert p.returncode == 78 and not (tmp_path / "f.sqlite").exists()


def test_fleet_listen_database_failure(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, and it stays as it is\n" * 100)
    p = posdiag("fleet", "listen", "--db", str(notes), "--no-tls")
    assert p.returncode == 74 and "Traceback" not in p.stderr, p.stderr
    assert notes.read_text() == "not a database, and it stays as it is\n" * 100


def test_fleet_status_without_database(tmp_path):
    p = posdiag("fleet", "status", "--db", str(tmp_path / "none.sqlite"))
    assert p.returncode == 66 and "no fleet database here" in p.stderr


def test_ctrl_c_is_130(tmp_path):
    with IdTechMsrSimulator() as sim:
        proc = PosdiagProcess("swipe-test", "--config", str(write_config(tmp_path)),
                              "--procfs", str(empty_procfs(tmp_path)), "--lang", "en",
                              "--port", sim.port, "--timeout", "600")
        proc.wait_for_stderr(swipe.prompt(Texts("en"), 600.0))
        proc._proc.send_signal(signal.SIGINT)
        done = proc.finish()
    assert done.returncode == 130 and "interrupted" in done.stderr
    assert "Traceback" not in done.stderr


PRODUCED_HERE = {
    **{("selftest", c): "test_selftest_status_codes" for c in (0, 1, 2, 3)},
    ("selftest", 64): "test_selftest_usage_and_config",
    ("selftest", 78): "test_selftest_usage_and_config",
    ("diagnose", 0): "test_diagnose_no_fault_is_0_even_with_a_warning_elsewhere",
    **{("diagnose", c): "test_diagnose_codes" for c in (1, 2, 3)},
    **{("diagnose", c): "test_diagnose_usage_config_and_broken_catalogue" for c in (64, 70, 78)},
    ("checks", 0): "test_checks_and_config_check",
    ("checks", 64): "test_checks_and_config_check",
    **{("config check", c): "test_checks_and_config_check" for c in (0, 64, 78)},
    **{("run", c): "test_run_usage_config_and_outbox_that_cannot_be_created" for c in (64, 73, 78)},
    ("any", 130): "test_ctrl_c_is_130",
}
