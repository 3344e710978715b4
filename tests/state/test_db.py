from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fogctl.errors import StateError
from fogctl.state.db import Database

WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from fogctl.state.db import Database

    db_path, writer, count, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    db = Database(Path(db_path))
    db.migrate("test", ["CREATE TABLE rows (id TEXT PRIMARY KEY, writer INT, payload BLOB);"])
    with open(log, "a", buffering=1) as out:
        i = 0
        while count < 0 or i < count:
            rid = f"{writer}-{i}"
            with db.transaction() as conn:
                conn.execute("INSERT INTO rows VALUES (?, ?, ?)", (rid, writer, os.urandom(4096)))
            out.write(rid + "\\n")  # logged only after COMMIT returned
            i += 1
    """
)


def test_wal_mode_and_core_schema(tmp_path: Path) -> None:
    with Database(tmp_path / "s.db") as db:
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
        assert db.query("PRAGMA user_version")[0][0] >= 1
        assert db.query("PRAGMA busy_timeout")[0][0] >= 1000


def test_domain_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    steps = ["CREATE TABLE a (x INT);", "ALTER TABLE a ADD COLUMN y INT; CREATE TABLE b (z INT);"]
    with Database(tmp_path / "s.db") as db:
        assert db.migrate("jobs", steps[:1]) == 1
        assert db.migrate("jobs", steps) == 2
        assert db.migrate("jobs", steps) == 2
        assert db.migrate("other", ["CREATE TABLE c (x INT);"]) == 1
        db.execute("INSERT INTO a (x, y) VALUES (1, 2)")
        assert db.domain_version("jobs") == 2


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    with Database(tmp_path / "s.db") as db:
        with pytest.raises(sqlite3.OperationalError):
            db.migrate("bad", ["CREATE TABLE t (x INT); CREATE TABLE t (x INT);"])
        assert db.domain_version("bad") == 0
        assert not db.query("SELECT name FROM sqlite_master WHERE name = 't'")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with Database(tmp_path / "s.db") as db:
        db.migrate("jobs", ["CREATE TABLE a (x INT);", "CREATE TABLE b (x INT);"])
    with Database(tmp_path / "s.db") as db, pytest.raises(StateError, match="newer"):
        db.migrate("jobs", ["CREATE TABLE a (x INT);"])


def test_garbage_file_is_a_clear_state_error(tmp_path: Path) -> None:
    bad = tmp_path / "s.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="unusable database"):
        Database(bad)


@pytest.mark.slow
def test_eight_writers_and_one_sigkill_lose_nothing_committed(tmp_path: Path) -> None:
    db_path = tmp_path / "s.db"
    Database(db_path).close()
    procs, logs = [], []
    for w in range(8):
        log = tmp_path / f"w{w}.log"
        log.touch()
        logs.append(log)
        count = -1 if w == 0 else 150  # writer 0 runs until it is killed
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(db_path), str(w), str(count), str(log)],
                stderr=subprocess.PIPE,
            )
        )
    victim = procs[0]
    deadline = time.monotonic() + 60
    while len(logs[0].read_text().splitlines()) < 30:
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        assert time.monotonic() < deadline, "writer 0 made no progress"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    for p in procs[1:]:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {row[0] for row in conn.execute("SELECT id FROM rows")}
    for w, log in enumerate(logs):
        committed = set(log.read_text().split())
        assert committed <= stored, f"writer {w} lost {len(committed - stored)} committed rows"
        if w:
            assert len(committed) == 150
    # The killed writer may have committed one row it had not logged yet, no more.
    victim_rows = {r for r in stored if r.startswith("0-")}
    assert 0 <= len(victim_rows) - len(set(logs[0].read_text().split())) <= 1
    assert len(stored) == 7 * 150 + len(victim_rows)
