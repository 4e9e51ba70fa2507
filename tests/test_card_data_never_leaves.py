"""Card data never leaves the driver (DESIGN §6, PCI DSS 3.3.1.1 / 3.4.1).

The published test cards (protocols.md §3.5) are swiped through the ID TECH simulator into the
real ``posdiag`` command, run as a subprocess with debug logging (``-vv``):

(a) ``posdiag swipe-test --json``, (b) ``posdiag swipe-test`` (text), (c) ``posdiag selftest
--json --check card_reader`` with a swipe arriving in the middle of the reader probe, and (d)
``posdiag swipe-test`` on a keyboard-mode (HID) reader under umockdev, the cards typed as key
presses in US and in German layout (the state dir then holds the swipe test's verdict file).

stdout, stderr and every file under the run's temporary directory (the configured state dir
included) are searched for each full card number, the number with separators, each raw track,
the cardholder name and the discretionary data. None may appear. (a) and (b) must show the
masked number, so the test fails if the swipe was not read at all.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from posdiag_process import Finished, PosdiagProcess, empty_procfs, write_config

from posdiag import swipe
from posdiag.drivers.msr.masking import mask_pan
from posdiag.i18n import Texts
from simulators.idtech_msr import IdTechMsrSimulator

TEST_PANS = (
    "4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
    "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
    "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
    "30569309025904", "38520000023237", "4000000000000002",
)
FORMATS = ("idtech", "uic", "magtek")
EXPIRY = f"{(date.today().year + 3) % 100:02d}12"
PROMPT = swipe.prompt(Texts("en"), 30)


@dataclass(frozen=True)
class PublishedCard:
    pan: str
    name: str
    discretionary1: str
    discretionary2: str

    @property
    def track1(self) -> str:
        return f"%B{self.pan}^{self.name}^{EXPIRY}101{self.discretionary1}?"

    @property
    def track2(self) -> str:
        return f";{self.pan}={EXPIRY}101{self.discretionary2}?"

    def secrets(self) -> list[str]:
        """Everything that must never be shown, logged or stored."""
        pan = self.pan
        groupings = [[4] * 4, [4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3]]
        with_separators = []
        for sizes in groupings:
            if sum(sizes) != len(pan):
                continue
            parts, pos = [], 0
            for size in sizes:
                parts.append(pan[pos:pos + size])
                pos += size
            with_separators += [" ".join(parts), "-".join(parts)]
        surname, given = self.name.split("/")
        return [pan, *with_separators, self.track1, self.track2, self.track1[1:-1],
                self.track2[1:-1], self.name, surname, given, self.discretionary1,
                self.discretionary2]


CARDS = [PublishedCard(pan, f"TESTER{i:02d}/LEAKCHECK", f"91{i:02d}573864", f"83{i:02d}6194")
         for i, pan in enumerate(TEST_PANS)]


def leaks(done: Finished, tmp: Path, card: PublishedCard) -> list[str]:
    """Which secrets of ``card`` appear in the output or in any file the run left behind."""
    places = {"stdout": done.stdout, "stderr": done.stderr}
    for f in tmp.rglob("*"):
        if f.is_file():
            places[str(f.relative_to(tmp))] = f.read_bytes().decode("latin-1")
    return [f"{secret!r} in {where}" for secret in card.secrets()
            for where, text in places.items() if secret in text]


def swipe_through_cli(tmp: Path, card: PublishedCard, fmt: str, *mode: str) -> Finished:
    with IdTechMsrSimulator(output_format=fmt) as sim:
        config = write_config(tmp, reply_timeout_s=2.0)  # generous: runs go in parallel
        proc = PosdiagProcess("swipe-test", "-vv", "--config", str(config), "--procfs",
                              str(empty_procfs(tmp)), "--port", sim.port, "--lang", "en", *mode)
        proc.wait_for_stderr(PROMPT)
        sim.swipe(card.track1, card.track2)
        return proc.finish()


@pytest.mark.parametrize("mode", [("--json",), ()], ids=["json", "text"])
def test_swipe_test_never_shows_card_data(tmp_path: Path, mode: tuple[str, ...]) -> None:
    """(a) and (b): every published test card, the reader output formats in turn."""
    dirs = [tmp_path / f"card{i:02d}" for i in range(len(CARDS))]
    for d in dirs:
        d.mkdir()
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda i: swipe_through_cli(dirs[i], CARDS[i],
                                                         FORMATS[i % len(FORMATS)], *mode),
                             range(len(CARDS))))
    problems = []
    for i, (card, done) in enumerate(zip(CARDS, runs, strict=True)):
        if done.returncode != 0:
            problems.append(f"card {i}: exit {done.returncode}: {done.stdout}{done.stderr}")
        if mask_pan(card.pan) not in done.stdout:
            problems.append(f"card {i}: masked number {mask_pan(card.pan)} not shown")
        problems += [f"card {i}: {leak}" for leak in leaks(done, dirs[i], card)]
    assert not problems, "\n".join(problems)


def test_the_search_finds_each_kind_of_leak(tmp_path: Path) -> None:
    card = CARDS[6]  # 15-digit Amex: separators 4-6-5
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "outbox.sqlite").write_bytes(b"\x00" + card.discretionary2.encode())
    done = Finished(0, f"card 3782 822463 10005, {card.name}", card.track1[1:-1])
    found = leaks(done, tmp_path, card)
    assert "'3782 822463 10005' in stdout" in found
    assert f"{card.name!r} in stdout" in found
    assert f"{card.track1[1:-1]!r} in stderr" in found
    assert f"{card.discretionary1!r} in stderr" in found
    assert f"{card.discretionary2!r} in state/outbox.sqlite" in found
    assert not leaks(Finished(0, mask_pan(card.pan), ""), tmp_path / "state" / "none", card)


class SwipeDuringProbe(IdTechMsrSimulator):
    """Swipes in the middle of the card_reader check's probe: right after answering the first
    command, or just before answering the second."""

    def __init__(self, card: PublishedCard, when: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.card = card
        self.when = when
        self.swipes = 0

    def _on_read(self, func_id: int) -> None:
        if self.when == "before_second_reply" and func_id == 0x22:
            self._swipe_now()
        super()._on_read(func_id)
        if self.when == "after_first_reply" and func_id == 0x1F:
            self._swipe_now()

    def _swipe_now(self) -> None:
        self.swipe(self.card.track1, self.card.track2)
        self.swipes += 1


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("when", ["after_first_reply", "before_second_reply"])
def test_selftest_with_a_swipe_mid_probe_never_shows_card_data(tmp_path: Path, fmt: str,
                                                               when: str) -> None:
    """(c) the card_reader check while a card is swiped during its probe."""
    card = CARDS[(FORMATS.index(fmt) * 2 + (when == "after_first_reply")) % len(CARDS)]
    sim = SwipeDuringProbe(card, when, output_format=fmt)
    with sim:
        config = write_config(tmp_path, port=sim.port, required=True)
        done = PosdiagProcess("selftest", "-vv", "--json", "--check", "card_reader",
                              "--config", str(config), "--procfs",
                              str(empty_procfs(tmp_path)), "--lang", "en").finish()
    assert sim.swipes == 1  # the card really was swiped while posdiag had the port
    # The driver drops the swipe's bytes: the probe still succeeds.
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"name": "card_reader"' in done.stdout and '"reason": "ok"' in done.stdout
    assert not leaks(done, tmp_path, card)


# -- the HID (keyboard-wedge) path ------------------------------------------------------------

def hid_swipe_through_cli(tmp: Path, card: PublishedCard, layout: str, *mode: str) -> Finished:
    """(d) ``posdiag swipe-test`` on the MagTek keyboard-mode reader under umockdev."""
    from hidfixtures import run_posdiag, swipe_events

    config = write_config(tmp)
    events = swipe_events(tmp.parent / f"{tmp.name}-keys", card.track1 + card.track2 + "\r",
                          layout)
    done = run_posdiag(events, "swipe-test", "-vv", "--config", str(config), "--lang", "en",
                       *mode)
    return Finished(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("mode", [("--json",), ()], ids=["json", "text"])
def test_hid_swipe_test_never_shows_card_data(tmp_path: Path, mode: tuple[str, ...]) -> None:
    """(d): the published cards typed by a keyboard-mode reader, US layout (decoded and
    parsed) and, for some, German layout (named, not parsed)."""
    picks = list(range(0, len(CARDS), 2))
    problems = []
    for i in picks:
        layout = "de" if i % 4 == 2 else "us"
        run_dir = tmp_path / f"hid{i:02d}"
        run_dir.mkdir()
        (tmp_path / f"hid{i:02d}-keys").mkdir()
        done = hid_swipe_through_cli(run_dir, CARDS[i], layout, *mode)
        want = 0 if layout == "us" else 2
        if done.returncode != want:
            problems.append(f"card {i}: exit {done.returncode}: {done.stdout}{done.stderr}")
        if layout == "us" and mask_pan(CARDS[i].pan) not in done.stdout:
            problems.append(f"card {i}: masked number not shown")
        problems += [f"card {i}: {leak}" for leak in leaks(done, run_dir, CARDS[i])]
    assert not problems, "\n".join(problems)
