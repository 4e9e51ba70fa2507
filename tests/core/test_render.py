"""The technician's view on a real terminal (a pty): live lines, colour, NO_COLOR."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from posdiag.i18n import Texts
from posdiag.render import Renderer, clip, pad, width
from posdiag.results import CheckResult, Status

FIX = Path(__file__).resolve().parents[2] / "hardware-fixtures"
ROOTS = ["--sysfs", str(FIX / "sysfs/healthy-terminal"),
         "--procfs", str(FIX / "procfs/healthy-terminal"),
         "--rootfs", str(FIX / "rootfs/healthy-terminal")]


def run_in_pty(*args: str, env_extra: dict[str, str]) -> str:
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LANG", "LC_ALL")}
    env.update(TERM="xterm", **env_extra)
    p = subprocess.Popen([sys.executable, "-m", "posdiag", *args], stdin=slave, stdout=slave,
                         stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=10)
    os.close(master)
    return out.decode("utf-8", "replace")


def test_live_lines_then_table_in_colour(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    out = run_in_pty("selftest", "--config", str(cfg), "--check", "power", "--check", "system",
                     *ROOTS, env_extra={})
    assert "\033[32m" in out  # green OK
    live = out.index("✔")
    table = out.index("Check ")
    assert live < table  # progress lines come before the summary table
    assert out.count("power") >= 2  # once live, once in the table


def test_no_color_on_a_terminal(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    out = run_in_pty("selftest", "--config", str(cfg), "--check", "power", *ROOTS,
                     env_extra={"NO_COLOR": "1"})
    assert "\033[" not in out
    assert "✔" in out  # still live, just without colour


def test_hints_are_numbered_and_localised():
    r = CheckResult("power", Status.FAIL, "battery_critical", "battery 3 %",
                    hints=("power.connect_charger", "power.replace_battery"))
    r2 = CheckResult("system", Status.WARN, "disk_low", "disk 8 % free",
                     hints=("system.free_disk_space", "power.connect_charger"))
    for lang, needle in (("en", "Connect the terminal"), ("zh_CN", "充电器")):
        buf = io.StringIO()
        Renderer(Texts(lang), buf, colour=False).table([r, r2], Status.FAIL)
        text = buf.getvalue()
        assert " 1. [power]" in text and " 3. [system]" in text
        assert " 4. " not in text  # a hint shared by two checks is listed once
        assert needle in text


def test_cjk_width_padding():
    assert width("总体") == 4
    assert width(pad("状态", 8)) == 8
    assert width(clip("支付主机无法连接" * 5, 20)) <= 20
