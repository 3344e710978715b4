"""The shared SQLite database: WAL mode, busy timeout, per-domain migrations.

Several fogctl processes use one database at once (a timer-started harvest, a running
node, an interactive command). Rules:

* WAL journal, ``synchronous=FULL``: a committed transaction survives a crash of the
  process or the machine; readers never block the writer.
* A busy timeout, so concurrent writers wait instead of failing.
* Writes go through :meth:`Database.transaction`, which takes the write lock up front
  (``BEGIN IMMEDIATE``) so a read-then-write cannot deadlock on lock upgrade.
* The core schema version is ``PRAGMA user_version``. Each domain (jobs, dht, mesh...)
  owns an ordered list of migration steps and its applied count is kept in the
  ``schema_migrations`` table, so domains add tables independently and in any order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fogctl.errors import StateError

Step = str | Callable[[sqlite3.Connection], None]

BUSY_TIMEOUT_MS = 30_000

# Core schema: index i holds the step that takes user_version from i to i + 1.
_CORE: tuple[str, ...] = (
    """
    CREATE TABLE schema_migrations (
        domain  TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE kv (
        key     TEXT PRIMARY KEY,
        value   TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
)


class Database:
    """One connection to the state database. Not shared across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"{path}: cannot switch the database to WAL mode ({mode})")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._migrate_core()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: unusable database: {exc}") from None

    # -- transactions ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StateError(f"{self.path}: cannot lock the database: {exc}") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- migrations ----------------------------------------------------------------

    def _migrate_core(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_CORE):
            raise StateError(
                f"{self.path}: database schema {version} is newer than this fogctl "
                f"understands ({len(_CORE)}); upgrade fogctl"
            )
        if version == len(_CORE):
            return
        with self.transaction() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, len(_CORE)):
                conn.execute(_CORE[i])
                conn.execute(f"PRAGMA user_version = {i + 1}")

    def domain_version(self, domain: str) -> int:
        row = self.conn.execute(
            "SELECT version FROM schema_migrations WHERE domain = ?", (domain,)
        ).fetchone()
        return int(row[0]) if row else 0

    def migrate(self, domain: str, steps: Sequence[Step]) -> int:
        """Apply ``domain``'s pending migration ``steps`` (in order, atomically); new version."""
        current = self.domain_version(domain)
        if current > len(steps):
            raise StateError(
                f"{self.path}: the {domain} schema ({current}) is newer than this fogctl "
                f"understands ({len(steps)}); upgrade fogctl"
            )
        if current == len(steps):
            return current
        with self.transaction() as conn:
            current = self.domain_version(domain)
            for step in steps[current:]:
                if callable(step):
                    step(conn)
                else:
                    for statement in _split_sql(step):
                        conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(domain, version) VALUES (?, ?) "
                "ON CONFLICT(domain) DO UPDATE SET version = excluded.version",
                (domain, len(steps)),
            )
        return len(steps)


def _split_sql(script: str) -> list[str]:
    """Split a script into complete statements (executescript would COMMIT our transaction)."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(script):
        if ch == ";" and sqlite3.complete_statement(script[start : i + 1]):
            out.append(script[start : i + 1])
            start = i + 1
    if script[start:].strip():
        out.append(script[start:])
    return [s for s in out if s.strip()]
