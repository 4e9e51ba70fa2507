"""``--db``: a file path or a sqlite:/// URL; any other URL is refused before anything is made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from posdiag.fleet.store import Location, Store, open_store, parse_location


def posdiag(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60, env=dict(os.environ))


@pytest.mark.parametrize("text, path", [
    ("fleet.sqlite", "fleet.sqlite"),
    ("/var/lib/posdiag/fleet.sqlite", "/var/lib/posdiag/fleet.sqlite"),
    ("./a:b.sqlite", "a:b.sqlite"),
    ("sqlite:///var/lib/fleet.sqlite", "/var/lib/fleet.sqlite"),
    ("SQLite:///tmp/with%20space.db", "/tmp/with space.db"),
])
def test_paths_and_sqlite_urls(text, path):
    loc = parse_location(text)
    assert loc == Location("sqlite", Path(path), text)


@pytest.mark.parametrize("text, says", [
    ("postgresql://fleet@db.example/fleet", "does not serve 'postgresql' URLs"),
    ("postgres://db/fleet", "does not serve 'postgres' URLs"),
    ("mysql://db/fleet", "does not serve 'mysql' URLs"),
    ("file:///tmp/x", "does not serve 'file' URLs"),
    ("sqlite://host/fleet.db", "names no host ('host')"),
    ("sqlite:fleet.db", "sqlite:///ABSOLUTE/PATH"),
    ("sqlite:///", "names no database file"),
    ("sqlite:///tmp/x.db?mode=ro", "takes no '?' options"),
    ("", "empty"),
])
def test_refused_locations_say_what_is_supported(text, says):
    with pytest.raises(ValueError) as e:
        parse_location(text)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_password_in_a_refused_url_is_not_repeated():
    with pytest.raises(ValueError) as e:
        parse_location("postgresql://fleet:s3cret@db.example:5432/fleet")
    assert "s3cret" not in str(e.value) and "fleet:***@db.example:5432" in str(e.value)


def test_open_store_opens_the_sqlite_file(tmp_path):
    with open_store(f"sqlite://{tmp_path}/f.sqlite") as store:
        assert isinstance(store, Store) and store.path == tmp_path / "f.sqlite"
    assert (tmp_path / "f.sqlite").is_file()


@pytest.mark.parametrize("action", [["listen", "--no-tls"], ["status"]])
def test_cli_refuses_a_postgresql_url_in_one_line_and_creates_nothing(tmp_path, action):
    # As found: a folder named 'postgresql:' appeared in the current directory.
    p = posdiag(tmp_path, "fleet", action[0], "--db", "postgresql://db.example/fleet",
                *action[1:])
    assert p.returncode == 64, p.stderr
    assert p.stderr.strip().splitlines() == [
        "posdiag: --db postgresql://db.example/fleet: the fleet store does not serve "
        "'postgresql' URLs; give a file path or sqlite:///ABSOLUTE/PATH (a path with a colon "
        "in its first part: start it with ./)"]
    assert list(tmp_path.iterdir()) == []


def test_cli_status_reads_a_sqlite_url(tmp_path):
    Store(tmp_path / "fleet.sqlite").close()
    p = posdiag(tmp_path, "fleet", "status", "--db", f"sqlite://{tmp_path}/fleet.sqlite")
    assert p.returncode == 0, p.stderr
    assert "no terminal has been seen yet" in p.stdout


def test_listen_that_cannot_reach_the_broker_leaves_no_database(tmp_path):
    db = tmp_path / "new" / "dir" / "fleet.sqlite"
    p = posdiag(tmp_path, "fleet", "listen", "--db", str(db), "--host", "127.0.0.1", "--port",
                "1", "--no-tls")
    assert p.returncode == 69 and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []
    # A database that was there before stays, of course.
    Store(tmp_path / "kept.sqlite").close()
    p = posdiag(tmp_path, "fleet", "listen", "--db", str(tmp_path / "kept.sqlite"), "--host",
                "127.0.0.1", "--port", "1", "--no-tls")
    assert p.returncode == 69 and (tmp_path / "kept.sqlite").is_file()
