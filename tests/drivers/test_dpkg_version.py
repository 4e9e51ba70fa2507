"""Debian version ordering (Policy §5.6.12), checked against a table and against dpkg itself."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posdiag.drivers.dpkg.version import DebianVersion, compare, compare_part

# (lower, higher): every pair is also checked the other way round.
LESS = [
    ("1.0~rc1", "1.0"),
    ("2.0", "1:0.1"),  # the epoch wins over everything
    ("1:99", "2:0"),
    ("1.0-1", "1.0-1+deb12u1"),
    ("2.30-1", "2.30-10"),  # digit runs compare as numbers
    ("1.2", "1.10"),
    ("1.0a", "1.0+"),  # letters sort before non-letters
    ("1.0A", "1.0a"),
    ("1.0a", "1.0.1"),
    ("1.0", "1.0a"),
    ("1.0", "1.0.1"),
    ("1.0~~", "1.0~~a"),  # Policy's own example: ~~ < ~~a < ~ < (nothing) < a
    ("1.0~~a", "1.0~"),
    ("1.0~", "1.0"),
    ("1.0~a", "1.0"),
    ("1.0~", "1.0~a"),
    ("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),  # stable security updates
    ("3.0.11-1~deb12u2", "3.0.11-1"),
    ("2.36-9+deb12u3", "2.36-9+deb12u10"),
    ("2.36-9", "2.36-9+deb12u1"),
    ("2024a-0+deb12u1", "2024b-0+deb12u1"),
    ("5.2.15-2", "5.2.15-2+b2"),  # binNMU
    ("1.0-1", "1.0+dfsg-1"),
    ("7.6-0", "7.6p2-4"),
    ("1:9.2p1-2+deb12u1", "1:9.2p1-2+deb12u2"),
    ("20230311", "20240203"),
    ("1.0-1", "1.0-1.1"),
    ("0.9", "1.0-0"),
    ("1.0-0.1", "1.0-1"),
]

EQUAL = [
    ("1.0", "1.0"),
    ("1.0", "0:1.0"),
    ("1.0", "1.0-0"),  # no revision is the same as revision 0
    ("1.00", "1.0"),  # leading zeros do not count
    ("1.01", "1.1"),
    ("1:2.30-01", "1:2.30-1"),
]


@pytest.mark.parametrize(("low", "high"), LESS)
def test_ordering_table(low: str, high: str) -> None:
    assert compare(low, high) == -1
    assert compare(high, low) == 1
    assert DebianVersion.parse(low) < DebianVersion.parse(high)
    assert DebianVersion.parse(high) > DebianVersion.parse(low)
    assert DebianVersion.parse(low) != DebianVersion.parse(high)


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_spellings_are_equal_and_hash_alike(a: str, b: str) -> None:
    va, vb = DebianVersion.parse(a), DebianVersion.parse(b)
    assert compare(a, b) == 0
    assert va == vb
    assert hash(va) == hash(vb)
    assert len({va, vb}) == 1
    assert va <= vb and va >= vb


def test_policy_tilde_example_sorts_as_documented() -> None:
    shuffled = ["1.0a", "1.0~", "1.0", "1.0~~a", "1.0~~"]
    ordered = sorted(shuffled, key=DebianVersion.parse)
    assert ordered == ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"]


@pytest.mark.parametrize(("text", "epoch", "upstream", "revision"), [
    ("1.0", 0, "1.0", ""),
    ("1:2.30-1+deb12u1", 1, "2.30", "1+deb12u1"),
    ("1.0-1-2", 0, "1.0-1", "2"),  # the revision starts after the last hyphen
    ("2:1.0.26-1", 2, "1.0.26", "1"),
    ("  3.0.11-1~deb12u2\n", 0, "3.0.11", "1~deb12u2"),  # surrounding blanks are ignored
    ("0:1.0", 0, "1.0", ""),
])
def test_parse_splits_epoch_upstream_revision(text: str, epoch: int, upstream: str,
                                              revision: str) -> None:
    v = DebianVersion.parse(text)
    assert (v.epoch, v.upstream, v.revision) == (epoch, upstream, revision)


def test_str_is_the_canonical_spelling() -> None:
    assert str(DebianVersion.parse("1:9.2p1-2+deb12u2")) == "1:9.2p1-2+deb12u2"
    assert str(DebianVersion.parse("0:1.0")) == "1.0"
    assert str(DebianVersion(0, "1.0", "1")) == "1.0-1"


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("   ", "empty"),
    ("1.0 2", "white space"),
    (":1.0", "epoch before ':' is empty"),
    ("a:1.0", "epoch 'a' is not a number"),
    ("-1:1.0", "epoch '-1' is not a number"),
    ("99999999999:1.0", "epoch is larger than"),
    ("1:", "upstream version is empty"),
    ("-1", "upstream version is empty"),
    ("1.0-", "revision after the last '-' is empty"),
    ("abc", "must start with a digit"),
    ("v1.2", "must start with a digit"),
    ("1:2:3", "contains ':'"),
    ("1_0", "contains '_'"),
    ("1.0-1_2", "revision contains '_'"),
    ("1.0-1:2", "epoch '1.0-1' is not a number"),
    ("١.0", "must start with a digit"),  # a non-ASCII digit is no digit here
    ("1.0é", "contains 'é'"),
])
def test_parse_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="is not a valid Debian version") as e:
        DebianVersion.parse(text)
    assert problem in str(e.value)
    assert repr(text) in str(e.value)


def test_compare_rejects_a_bad_string_with_value_error() -> None:
    with pytest.raises(ValueError, match="must start with a digit"):
        compare("1.0", "x")


def test_constructor_validates_and_instances_are_frozen() -> None:
    with pytest.raises(ValueError, match="'-' only when there is a revision"):
        DebianVersion(0, "1.0-1")
    with pytest.raises(ValueError, match="negative"):
        DebianVersion(-1, "1.0")
    with pytest.raises(ValueError, match="must be an integer"):
        DebianVersion("1", "1.0")  # type: ignore[arg-type]
    v = DebianVersion(0, "1.0")
    with pytest.raises(FrozenInstanceError):
        v.epoch = 1  # type: ignore[misc]


def test_comparing_with_another_type_is_not_supported() -> None:
    assert DebianVersion.parse("1.0") != "1.0"
    with pytest.raises(TypeError):
        _ = DebianVersion.parse("1.0") < "2.0"  # type: ignore[operator]


def test_compare_part_orders_kernel_releases_as_one_string() -> None:
    assert compare_part("6.1.0-18-amd64", "6.1.0-20") == -1
    assert compare_part("6.1.0-18-amd64", "6.1.0-18") == 1
    assert compare_part("6.1.0-18-amd64", "6.1.0-18-amd64") == 0
    assert compare_part("6.1.21-v8+", "6.1.21") == 1
    assert compare_part("", "0") == 0


# --------------------------------------------------------------------------------------------
# Properties, and dpkg itself as the oracle
# --------------------------------------------------------------------------------------------
_PIECES = ["0", "1", "2", "9", "10", "00", "a", "b", "z", "A", "~", ".", "+"]


@st.composite
def versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "", "0:", "1:", "2:"]))
    has_revision = draw(st.booleans())
    pieces = _PIECES + (["-"] if has_revision else [])
    upstream = draw(st.sampled_from("0123456789")) + "".join(
        draw(st.lists(st.sampled_from(pieces), max_size=6)))
    revision = ""
    if has_revision:
        revision = "-" + "".join(draw(st.lists(
            st.sampled_from(["0", "1", "9", "10", "a", "z", "~", ".", "+"]),
            min_size=1, max_size=5)))
    return epoch + upstream + revision


def _dpkg(a: str, op: str, b: str) -> bool:
    done = subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True,
                          timeout=10, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def test_dpkg_is_available_as_the_oracle() -> None:
    # The project's test machines are Debian (umockdev, mosquitto); dpkg is always there.
    assert shutil.which("dpkg"), "dpkg is needed as the ordering oracle"


@settings(max_examples=150, deadline=None)
@given(versions(), versions())
def test_ordering_matches_dpkg(a: str, b: str) -> None:
    ours = compare(a, b)
    if _dpkg(a, "lt", b):
        assert ours == -1, (a, b)
    elif _dpkg(a, "eq", b):
        assert ours == 0, (a, b)
    else:
        assert ours == 1, (a, b)


@given(versions(), versions(), versions())
def test_ordering_is_a_total_order(a: str, b: str, c: str) -> None:
    assert compare(a, b) == -compare(b, a)
    vs = sorted([DebianVersion.parse(x) for x in (a, b, c)])
    assert vs[0] <= vs[1] <= vs[2]
    assert compare(str(vs[0]), str(vs[2])) <= 0
    if compare(a, b) == 0:
        assert hash(DebianVersion.parse(a)) == hash(DebianVersion.parse(b))


@given(versions())
def test_str_round_trips(text: str) -> None:
    v = DebianVersion.parse(text)
    assert DebianVersion.parse(str(v)) == v
    assert str(DebianVersion.parse(str(v))) == str(v)


@given(st.text(max_size=30))
def test_garbage_parses_or_raises_value_error(text: str) -> None:
    try:
        v = DebianVersion.parse(text)
    except ValueError as e:
        assert "is not a valid Debian version" in str(e)
    else:
        assert compare(v, v) == 0
