"""The scenario suite: each folder's simulated terminal, diagnosed for every symptom it lists.

A scenario passes when the top cause is the expected one ("no_fault": nothing above the
threshold). Each diagnosis is also held to the output contracts: the JSON validates against
``posdiag.diagnosis/1`` and every warning or failing check result carries hints with texts in
both languages. ``bench/diagnosis_accuracy.py`` runs the same suite and prints the accuracy.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from scenario_terminal import (
    NO_FAULT,
    SIMULATORS,
    Outcome,
    Pki,
    Scenario,
    load_all,
    make_pki,
    run_cases,
)

from posdiag import schemas
from posdiag.diagnosis import Diagnosis, document, load_catalogue
from posdiag.i18n import LANGS, Texts, catalog
from posdiag.results import Status

SCENARIOS = load_all()
CASES = [pytest.param(s, symptom, id=f"{s.name}:{symptom}",
                      marks=[pytest.mark.root] if s.root else [])
         for s in SCENARIOS for symptom in s.expect]

# Faults the issue names; each must be modelled by a scenario.
REQUIRED = ("healthy-terminal", "reader-unplugged", "nfc-antenna-fault", "reader-bad-lrc",
            "printer-out-of-paper", "battery-critical-on-battery", "no-default-route",
            "dns-broken", "host-port-closed", "host-certificate-expired",
            "clock-10-minutes-off", "reader-firmware-below-baseline",
            "data-partition-readonly", "no-sim", "weak-signal")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("scenario-pki"))


def explain(d: Diagnosis) -> str:
    ranked = [(c.id, c.score) for c in d.likely] + [(c.id, c.score) for c in d.unlikely]
    problems = [f"{r.name}: {r.status} {r.reason}: {r.summary}" for r in d.results
                if r.status is not Status.OK]
    return f"ranked {ranked}; results {problems}"


def test_the_suite_is_large_enough_and_models_every_named_fault() -> None:
    names = {s.name for s in SCENARIOS}
    assert len(SCENARIOS) >= 30
    assert not set(REQUIRED) - names


def test_healthy_terminals_are_asked_every_symptom() -> None:
    every = set(load_catalogue().symptoms)
    for name in ("healthy-terminal", "healthy-cellular-terminal"):
        scn = next(s for s in SCENARIOS if s.name == name)
        assert set(scn.expect) == every
        assert set(scn.expect.values()) == {NO_FAULT}


@pytest.mark.parametrize("scn", SCENARIOS, ids=lambda s: s.name)
def test_expectations_name_known_symptoms_and_relevant_causes(scn: Scenario) -> None:
    cat = load_catalogue()
    for symptom, cause in scn.expect.items():
        assert symptom in cat.symptoms, symptom
        assert cause == NO_FAULT or cause in cat.symptoms[symptom].causes, (symptom, cause)
    assert set(scn.devices) <= set(SIMULATORS)


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, pki: Pki,
             tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Future[Outcome]]:
    """Run every selected case at once, concurrently; each test then judges its own."""
    selected = [(item.callspec.params["scn"], item.callspec.params["symptom"])
                for item in request.session.items
                if getattr(item, "originalname", "") == "test_top_cause"]
    return run_cases(selected, pki, tmp_path_factory.mktemp("scenarios"))


@pytest.mark.parametrize(("scn", "symptom"), CASES)
def test_top_cause(scn: Scenario, symptom: str,
                   outcomes: dict[tuple[str, str], Future[Outcome]]) -> None:
    outcome = outcomes[(scn.name, symptom)].result()  # re-raises what went wrong in the case
    d = outcome.diagnosis
    assert outcome.top == outcome.expected, explain(d)
    assert (d.exit_code == 0) == (outcome.top == NO_FAULT and not d.inconclusive)

    for r in d.results:
        if r.status in (Status.WARN, Status.FAIL):
            assert r.hints, f"{r.name} {r.status} {r.reason} carries no hint"
        for h in r.hints:
            for lang in LANGS:
                assert h in catalog(lang)["hint"], (lang, h)
    for lang in LANGS:
        doc = document(d, Texts(lang), terminal_id=outcome.terminal_id, boot_id=None)
        schemas.validate("diagnosis", doc)
