"""A whole demo terminal on one machine: broker, simulated hardware, the agent, the backend view.

Started by ``make demo``. Everything is real except the hardware: a TLS Mosquitto on a loopback
port, the four device simulators on ptys speaking their protocols, sysfs/procfs/rootfs fixture
trees, a local TLS "payment host" with a certificate from a throwaway CA, ``posdiag run`` as
systemd would run it, and ``posdiag fleet`` as a backend. Midway the printer runs out of paper,
so the backend sees an event. Everything started here is stopped at the end (and on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests")]

from broker import Broker  # noqa: E402  (test helpers: a real Mosquitto, real certificates)
from pcscd import READER, PcscdUnavailable, reader_state, running_pcscd  # noqa: E402
from tlsfixtures import CertificateAuthority, LocalServer  # noqa: E402

from simulators.escpos_printer import EscPosPrinterSimulator  # noqa: E402
from simulators.idtech_msr import IdTechMsrSimulator  # noqa: E402
from simulators.modem import ModemSimulator  # noqa: E402
from simulators.pn532 import Pn532Simulator  # noqa: E402
from simulators.vpcd_card import Personality, VpcdCard  # noqa: E402

TERMINAL = "T-DEMO-0001"
POSDIAG = [sys.executable, "-m", "posdiag"]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSDIAG, *args], capture_output=True, text=True, check=check,
                          timeout=60)


def wait_ready(notify: socket.socket, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            if b"READY=1" in notify.recv(4096):
                return
    raise SystemExit("the agent did not report READY=1")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="posdiag-demo-") as d, contextlib.ExitStack() as stack:
        tmp = Path(d)
        say("broker: Mosquitto with TLS on a loopback port")
        ca = CertificateAuthority("posdiag demo CA")
        broker = stack.enter_context(Broker(tmp, tls=ca))
        ca_file = broker.ca_file
        print(f"mqtts://127.0.0.1:{broker.port} (CA {ca_file})")

        say("hardware: card reader, contactless reader, printer and modem simulators on ptys, "
            "a chip reader on pcscd + vpcd")
        reader = stack.enter_context(IdTechMsrSimulator())
        nfc = stack.enter_context(Pn532Simulator())
        printer = stack.enter_context(EscPosPrinterSimulator(faults={"paper_near_end"}))
        modem = stack.enter_context(ModemSimulator())
        for name, sim in (("card reader", reader), ("contactless", nfc), ("printer", printer),
                          ("modem", modem)):
            print(f"{name:12} {sim.port}")
        chip = _chip_reader(stack)
        host = stack.enter_context(LocalServer("tls", ca.issue("127.0.0.1")))
        print(f"payment host https://127.0.0.1:{host.port}")

        state = tmp / "state"
        cfg = tmp / "posdiag.toml"
        cfg.write_text(f"""
[terminal]
id = "{TERMINAL}"
[paths]
state_dir = "{state}"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
ca_file = "{ca_file}"
keepalive_s = 30
[outbox]
path = "{state}/outbox.sqlite"
[daemon]
heartbeat_s = 5
report_s = 15
check_interval_s = 3
event_holdoff_s = 0
[[checks.payment_host.targets]]
name = "acquirer"
host = "127.0.0.1"
port = {host.port}
ca_file = "{ca_file}"
[checks.card_reader]
port = "{reader.port}"
required = true
[checks.contactless]
port = "{nfc.port}"
required = true
[checks.printer]
port = "{printer.port}"
required = true
[checks.cellular]
port = "{modem.port}"
required = true
""" + chip)
        roots = ["--sysfs", str(HERE / "sysfs/healthy-terminal"),
                 "--procfs", str(HERE / "procfs/healthy-terminal"),
                 "--rootfs", str(HERE / "rootfs/healthy-terminal")]
        broker_flags = ["--host", "127.0.0.1", "--port", str(broker.port), "--ca-file",
                        str(ca_file)]
        db = str(tmp / "fleet.sqlite")

        say("backend: posdiag fleet listen")
        fleet = subprocess.Popen([*POSDIAG, "fleet", "listen", "--db", db, *broker_flags],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(_stop, fleet)

        say(f"terminal: posdiag run as {TERMINAL} (Type=notify, watchdog on)")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp / "notify.sock"))
        notify.settimeout(0.5)
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp / "notify.sock"), WATCHDOG_USEC="10000000")
        agent = subprocess.Popen([*POSDIAG, "run", "--config", str(cfg), *roots], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(_stop, agent)
        wait_ready(notify)
        print("agent is READY")
        time.sleep(6)

        say("what the backend sees: posdiag fleet status")
        print(run("fleet", "status", "--db", db).stdout)

        say(f"remote self-test: posdiag fleet command {TERMINAL} selftest")
        reply = run("fleet", "command", TERMINAL, "selftest", *broker_flags)
        _print_report(reply.stdout or reply.stderr)

        say("the printer runs out of paper …")
        printer.faults = frozenset({"paper_out"})
        time.sleep(8)
        print(run("fleet", "status", "--db", db).stdout)

        # What is printed is what runs: the merchant's word for the symptom, typed as is.
        diagnose = ["fleet", "command", TERMINAL, "diagnose", "打印机", "--lang", "zh_CN"]
        say(f"remote diagnosis in Chinese: posdiag {' '.join(diagnose)}")
        reply = run(*diagnose, *broker_flags)
        _print_diagnosis(reply.stdout or reply.stderr)

        say("latest report the backend stored (schema posdiag.report/1, validated on arrival)")
        from posdiag.fleet import Store

        store = Store(Path(db), create=False)
        try:
            report = store.latest(TERMINAL, "report") or {}
        finally:
            store.close()
        head = {k: report.get(k) for k in ("schema", "terminal_id", "seq", "generated_at",
                                           "valid_until", "status")}
        print(json.dumps(head, ensure_ascii=False, indent=2))
        # The fleet table above is built from heartbeats and events; the stored report is the last
        # full one, which can be older: say by how much, so nobody mistakes it for "now".
        print(f"  (report seq {report.get('seq')}, generated {_age(report.get('generated_at'))}; "
              "newer heartbeats and events are in the fleet table above)")
        _print_report(json.dumps({"result": report}))

        say("stopping: the agent publishes 'offline' and exits")
        _stop(agent)
        time.sleep(1)
        print(run("fleet", "status", "--db", db).stdout)
    say("demo finished; everything it started is stopped")
    return 0


def _chip_reader(stack: contextlib.ExitStack) -> str:
    """pcscd with the vpcd virtual reader and a UnionPay debit card in it, when installed (the
    Makefile's debs): the chip reader is then one of the terminal's devices."""
    try:
        stack.enter_context(running_pcscd())
    except PcscdUnavailable as e:
        print(f"chip reader  none ({e})")
        return ""
    card = stack.enter_context(VpcdCard(Personality.load("unionpay-debit")))
    try:
        reader_state(present=True)
    except PcscdUnavailable:
        print("chip reader  pcscd did not see the card; left out")
        card.remove()
        return ""
    print(f"chip reader  {READER} (pcscd + vpcd), UnionPay debit card inserted")
    return f'''[checks.chip_reader]
readers = ["{READER}"]
required = true
'''


def _print_report(text: str) -> None:
    try:
        doc = json.loads(text)
    except ValueError:
        print(text)
        return
    result = doc.get("result", {})
    for c in result.get("checks", []):
        # The whole summary, never cut: a long one continues on the next line, indented.
        lead = f"  {c['name']:14} {c['status']:8} {c['reason']:20} "
        print(lead + _wrapped(c["summary"], len(lead)))
    print(f"  overall: {result.get('status')}")


def _print_diagnosis(text: str) -> None:
    """The remote diagnosis as a technician reads it: every cause, its evidence and its steps."""
    try:
        result = json.loads(text).get("result", {})
    except ValueError:
        print(text)
        return
    if not isinstance(result, dict) or "symptom" not in result:
        print(text)
        return
    symptom = result["symptom"]
    print(f"  {symptom.get('name')} ({symptom.get('id')}): {result.get('verdict')}")
    for cause in result.get("causes", []):
        print(f"  {cause['rank']}. {cause['title']}  ({cause['id']}, score {cause['score']})")
        for e in cause.get("evidence", []):
            line = f"{e['check']}: {e['status']}, {e.get('reason_title') or e['reason']} — "
            print("       " + line + _wrapped(e["summary"], 7 + len(line)))
        for step in cause.get("steps", []):
            print(f"     {step['n']}) " + _wrapped(step["text"], 9))
    for step in result.get("no_fault_steps", []) or []:
        print(f"  - {_wrapped(step['text'], 4)}")


def _wrapped(text: str, indent: int) -> str:
    """``text`` wrapped to the terminal width after ``indent`` columns, nothing dropped."""
    import shutil
    import textwrap

    cols = max(40, shutil.get_terminal_size((100, 24)).columns - indent)
    return ("\n" + " " * indent).join(textwrap.wrap(text, cols) or [""])


def _age(stamp: object) -> str:
    from datetime import UTC, datetime

    try:
        then = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return "at an unknown time"
    seconds = max(0, round((datetime.now(UTC) - then).total_seconds()))
    return f"{seconds} s ago ({stamp})"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
