"""The persistent bundle store: metadata in ``state.db`` (domain ``mesh``), bytes in blobs.

Crash safety: a bundle of up to :data:`INLINE_MAX` bytes is stored inside its row,
so it is durable exactly when the row's transaction commits (SQLite WAL,
``synchronous=FULL``). A larger bundle's bytes go to a content-addressed blob (temp
file, fsync, rename) *before* its row is committed, so a committed row always has its
bytes; a crash in between leaves only an orphan blob, which :meth:`BundleStore.gc`
removes. Removing a bundle deletes its row first, then (after the commit) its blob.

Group commit: :meth:`BundleStore.batch` runs everything inside it -- every bundle a
convergence layer read from one socket read, every acknowledgement processed --
in one transaction (each operation in its own savepoint, so one failing bundle does
not undo the others), so a burst costs one fsync instead of several per bundle. The
caller acknowledges the bundles (TCPCL XFER_ACK) only after :meth:`batch` returns:
nothing is acknowledged before it is durable.

Quota and drop policy (``mesh.store_quota``, bytes; bundles for this node's inbox are
not counted): when a new bundle does not fit, the store evicts, in order,

1. expired bundles,
2. relayed bundles that expire soonest,
3. (only for a bundle sent from this node) its own older bundles, soonest expiry first,

but a relayed newcomer never displaces a live bundle this node originated, nor one
that outlives it: then the newcomer is refused instead (status-report reason 4,
"depleted storage"). A bundle this node originates may displace any relayed one.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from fogctl.mesh.bundle import Bundle, decode_bundle
from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.records import BundleRecord
from fogctl.state import State

__all__ = ["INLINE_MAX", "MIGRATIONS", "AddResult", "BundleStore"]

#: bundles (and inbox messages) up to this size live in their database row (SQLite's
#: "Internal Versus External BLOBs" measurements put the break-even near 100 KiB);
#: larger ones in blob files
INLINE_MAX = 128 * 1024

MIGRATIONS: list[str] = [
    """
    CREATE TABLE mesh_bundles (
        id           TEXT PRIMARY KEY,
        source       TEXT NOT NULL,
        destination  TEXT NOT NULL,
        creation     INTEGER NOT NULL,
        sequence     INTEGER NOT NULL,
        frag_offset  INTEGER,
        size         INTEGER NOT NULL,
        received_at  INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        blob         TEXT NOT NULL,
        origin       TEXT NOT NULL,
        copies       INTEGER NOT NULL DEFAULT 1,
        hop_count    INTEGER,
        hop_limit    INTEGER
    );
    CREATE INDEX mesh_bundles_expiry ON mesh_bundles(expires_at);
    CREATE TABLE mesh_seen (
        id      TEXT PRIMARY KEY,
        at      INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE TABLE mesh_inbox (
        id           TEXT PRIMARY KEY,
        sender       TEXT NOT NULL,
        received_at  INTEGER NOT NULL,
        blob         TEXT NOT NULL,
        size         INTEGER NOT NULL,
        encrypted    INTEGER NOT NULL,
        read         INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mesh_peers (
        node      TEXT PRIMARY KEY,
        address   TEXT NOT NULL,
        cl        TEXT NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE mesh_keys (
        node      TEXT PRIMARY KEY,
        bundle    BLOB NOT NULL,
        trusted   INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mesh_sessions (
        peer      TEXT PRIMARY KEY,
        state     BLOB NOT NULL
    );
    CREATE TABLE mesh_kv (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    """,
    # small bundles and messages inline (``blob`` keeps their digest; no file exists)
    """
    ALTER TABLE mesh_bundles ADD COLUMN data BLOB;
    ALTER TABLE mesh_inbox ADD COLUMN data BLOB;
    """,
    # TCPCL TLS key pins (trust on first use), see fogctl.mesh.tls
    """
    CREATE TABLE mesh_tls_pins (
        node       TEXT PRIMARY KEY,
        spki       TEXT NOT NULL,
        first_seen REAL NOT NULL
    );
    """,
]


@dataclass(frozen=True, slots=True)
class AddResult:
    stored: bool
    id: str
    evicted: tuple[str, ...] = field(default_factory=tuple)
    reason: str | None = None  # why not stored: "duplicate", "seen", "expired", "quota"


class BundleStore:
    """Bundles waiting for a contact, persisted in the state directory."""

    def __init__(self, state: State, *, quota_bytes: int = 256 * 1024 * 1024) -> None:
        self.state = state
        self.db = state.db
        self.db.migrate("mesh", MIGRATIONS)
        self.quota = quota_bytes
        self._batch = 0  # > 0 inside batch()
        self._savepoint = 0
        self._unlink_later: list[str] = []

    # -- transactions -----------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: everything inside is one transaction, committed on exit."""
        if self._batch:
            yield
            return
        with self.db.transaction():
            self._batch += 1
            try:
                yield
            finally:
                self._batch -= 1
        self._flush_unlinks()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, or a savepoint inside :meth:`batch`."""
        if not self._batch:
            with self.db.transaction() as conn:
                yield conn
            self._flush_unlinks()
            return
        conn = self.db.conn
        self._savepoint += 1
        name = f"mesh_sp{self._savepoint}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")

    def put_bytes(self, data: bytes) -> tuple[str, bytes | None]:
        """(digest, inline bytes or None): large data is written (durably) to a blob
        now; small data is returned to be stored in the row."""
        if len(data) <= INLINE_MAX:
            return hashlib.sha256(data).hexdigest(), data
        return self.state.blobs.put(data), None

    def get_bytes(self, digest: str, inline: bytes | None) -> bytes:
        return bytes(inline) if inline is not None else self.state.blobs.get(digest)

    # -- queries ------------------------------------------------------------------
    def has(self, bundle_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM mesh_bundles WHERE id = ?", (bundle_id,)))

    def seen(self, bundle_id: str) -> bool:
        """True if held now or already delivered/forwarded-and-dropped (no re-accept)."""
        return self.has(bundle_id) or bool(
            self.db.query("SELECT 1 FROM mesh_seen WHERE id = ?", (bundle_id,))
        )

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT id FROM mesh_bundles ORDER BY received_at, id")]

    def usage(self) -> int:
        row = self.db.query("SELECT COALESCE(SUM(size), 0) FROM mesh_bundles")
        return int(row[0][0])

    def raw(self, bundle_id: str) -> bytes:
        rows = self.db.query("SELECT blob, data FROM mesh_bundles WHERE id = ?", (bundle_id,))
        if not rows:
            raise KeyError(bundle_id)
        return self.get_bytes(rows[0][0], rows[0][1])

    def get(self, bundle_id: str) -> Bundle:
        return decode_bundle(self.raw(bundle_id))

    def copies(self, bundle_id: str) -> int:
        rows = self.db.query("SELECT copies FROM mesh_bundles WHERE id = ?", (bundle_id,))
        return int(rows[0][0]) if rows else 0

    def set_copies(self, bundle_id: str, copies: int) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE mesh_bundles SET copies = ? WHERE id = ?", (copies, bundle_id))

    def records(self) -> list[BundleRecord]:
        rows = self.db.query(
            "SELECT id, source, destination, creation, sequence, size, received_at,"
            " expires_at, hop_count, hop_limit, frag_offset, origin, copies"
            " FROM mesh_bundles ORDER BY received_at, id"
        )
        return [
            BundleRecord(
                id=r["id"],
                source=r["source"],
                destination=r["destination"],
                creation_time=r["creation"],
                sequence=r["sequence"],
                size=r["size"],
                received_at=r["received_at"],
                expires_at=r["expires_at"],
                hop_count=r["hop_count"],
                hop_limit=r["hop_limit"],
                fragment_offset=r["frag_offset"],
                origin=r["origin"],
                copies=r["copies"],
            )
            for r in rows
        ]

    # -- changes ------------------------------------------------------------------
    def add(
        self,
        bundle: Bundle,
        *,
        now: int,
        origin: str = "relay",
        copies: int = 1,
        raw: bytes | None = None,
    ) -> AddResult:
        """Persist ``bundle`` (durable once this returns ``stored=True``)."""
        bid = bundle.id
        if self.seen(bid):
            return AddResult(False, bid, reason="seen")
        expires = bundle.expires_at(now)
        if expires <= now:
            return AddResult(False, bid, reason="expired")
        data = raw if raw is not None else bundle.to_bytes()
        size = len(data)
        if size > self.quota:
            return AddResult(False, bid, reason="quota")
        evict = self._plan_eviction(size, expires, now, origin)
        if evict is None:
            return AddResult(False, bid, reason="quota")
        digest, inline = self.put_bytes(data)  # a blob is durable before the row
        hc = bundle.hop_count
        p = bundle.primary
        try:
            with self.tx() as conn:
                self._delete_rows(conn, evict, now)
                conn.execute(
                    "INSERT INTO mesh_bundles(id, source, destination, creation, sequence,"
                    " frag_offset, size, received_at, expires_at, blob, origin, copies,"
                    " hop_count, hop_limit, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        bid,
                        str(p.source),
                        str(p.destination),
                        p.creation_time,
                        p.sequence,
                        p.fragment_offset,
                        size,
                        now,
                        expires,
                        digest,
                        origin,
                        copies,
                        hc[1] if hc else None,
                        hc[0] if hc else None,
                        inline,
                    ),
                )
        except sqlite3.IntegrityError:
            return AddResult(False, bid, reason="duplicate")
        return AddResult(True, bid, tuple(evict))

    def _plan_eviction(self, size: int, expires: int, now: int, origin: str) -> list[str] | None:
        free = self.quota - self.usage()
        if size <= free:
            return []
        rows = self.db.query(
            "SELECT id, size, expires_at, origin FROM mesh_bundles ORDER BY"
            " (expires_at <= ?) DESC, (origin = 'local') ASC, expires_at ASC",
            (now,),
        )
        out: list[str] = []
        for r in rows:
            live = r["expires_at"] > now
            if live and origin != "local" and (r["origin"] == "local" or r["expires_at"] > expires):
                return None  # would displace an own or longer-lived bundle: refuse it
            out.append(r["id"])
            free += r["size"]
            if size <= free:
                return out
        return None

    def _delete_rows(self, conn: sqlite3.Connection, ids: list[str], now: int) -> int:
        """Delete rows; their blob files (if any) are unlinked after the commit."""
        n = 0
        for bid in ids:
            row = conn.execute(
                "SELECT blob, expires_at, data IS NULL FROM mesh_bundles WHERE id = ?", (bid,)
            ).fetchone()
            if row is None:
                continue
            n += 1
            if row[2]:
                self._unlink_later.append(row[0])
            conn.execute("DELETE FROM mesh_bundles WHERE id = ?", (bid,))
            conn.execute(
                "INSERT OR REPLACE INTO mesh_seen(id, at, expires) VALUES (?,?,?)",
                (bid, now, max(row[1], now)),
            )
        return n

    def _flush_unlinks(self) -> None:
        digests, self._unlink_later = self._unlink_later, []
        for d in digests:
            still = self.db.query(
                "SELECT 1 FROM mesh_bundles WHERE blob = ? AND data IS NULL UNION ALL "
                "SELECT 1 FROM mesh_inbox WHERE blob = ? AND data IS NULL",
                (d, d),
            )
            if still:
                continue
            with contextlib.suppress(Exception):
                self.state.blobs.path(d).unlink()

    def remove(self, bundle_id: str, *, now: int) -> bool:
        """Delete a bundle (delivered, forwarded for the last time, or deleted) and remember
        its ID until it would have expired, so it is not accepted again."""
        with self.tx() as conn:
            n = self._delete_rows(conn, [bundle_id], now)
        return bool(n)

    def mark_seen(self, bundle_id: str, *, now: int, expires: int) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mesh_seen(id, at, expires) VALUES (?,?,?)",
                (bundle_id, now, expires),
            )

    def purge_expired(self, now: int) -> list[str]:
        """Delete every expired bundle (and forget seen IDs past their expiry)."""
        ids = [
            r[0] for r in self.db.query("SELECT id FROM mesh_bundles WHERE expires_at <= ?", (now,))
        ]
        with self.tx() as conn:
            self._delete_rows(conn, ids, now)
            conn.execute("DELETE FROM mesh_seen WHERE expires < ?", (now,))
        return ids

    def gc(self) -> int:
        """Remove orphan blobs a crash between blob write and row commit left behind.

        Only blobs whose content decodes as a bundle are candidates (the blob store is
        shared with other domains)."""
        used = {r[0] for r in self.db.query("SELECT blob FROM mesh_bundles WHERE data IS NULL")}
        used |= {r[0] for r in self.db.query("SELECT blob FROM mesh_inbox WHERE data IS NULL")}
        removed = 0
        for d in list(self.state.blobs):
            if d in used:
                continue
            try:
                decode_bundle(self.state.blobs.get(d))
            except (ProtocolError, OSError):
                continue
            with contextlib.suppress(OSError):
                self.state.blobs.path(d).unlink()
                removed += 1
        return removed

    # -- key/value for router state --------------------------------------------------
    def kv_get(self, key: str) -> bytes | None:
        rows = self.db.query("SELECT value FROM mesh_kv WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def kv_set(self, key: str, value: bytes) -> None:
        with self.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO mesh_kv(key, value) VALUES (?, ?)", (key, value))
