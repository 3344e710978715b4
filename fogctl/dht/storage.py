"""Value storage on the ``kademlia`` storage interface, persisted in the state database.

Every entry is a verified envelope; one slot per (key, signer), the highest
``(seq, expiry)`` kept. Writes go through :meth:`ValueStorage.offer`, which verifies
the signature, the expiry window, the size and the sequence number and says why it
refused. With a :class:`~fogctl.state.db.Database` the values survive a restart
(table ``dht_values``); without one they live in memory (simulations, benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kademlia.storage import IStorage

from fogctl.dht.envelope import Envelope, InvalidEnvelope, check
from fogctl.state.db import Database
from fogctl.state.identity import verify

__all__ = ["MIGRATIONS", "ValueStorage"]

MIGRATIONS = [
    """
    CREATE TABLE dht_values (
        dkey       BLOB NOT NULL,
        signer     BLOB NOT NULL,
        seq        INTEGER NOT NULL,
        expiry     INTEGER NOT NULL,
        envelope   BLOB NOT NULL,
        stored     REAL NOT NULL,
        PRIMARY KEY (dkey, signer)
    );
    CREATE TABLE dht_contacts (
        node_id    BLOB PRIMARY KEY,
        pubkey     BLOB NOT NULL,
        host       TEXT NOT NULL,
        port       INTEGER NOT NULL,
        last_seen  REAL NOT NULL
    );
    CREATE TABLE dht_own (
        dkey       BLOB PRIMARY KEY,
        name       TEXT NOT NULL,
        value      BLOB NOT NULL,
        seq        INTEGER NOT NULL
    );
    """
]


class ValueStorage(IStorage):  # type: ignore[misc]
    """Verified envelopes by key id and signer; optional write-through to SQLite."""

    def __init__(
        self,
        db: Database | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_signers_per_key: int = 64,
        max_entries: int = 50_000,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_signers_per_key = max_signers_per_key
        self.max_entries = max_entries
        # dkey -> signer -> (envelope, stored_at)
        self.data: dict[bytes, dict[bytes, tuple[Envelope, float]]] = {}
        self.count = 0
        if db is not None:
            db.migrate("dht", MIGRATIONS)
            self._load()

    def _load(self) -> None:
        assert self.db is not None
        now = self.clock()
        for row in self.db.query("SELECT envelope, stored FROM dht_values"):
            try:
                env = check(bytes(row["envelope"]), now=now, verify=verify)
            except (InvalidEnvelope, TypeError):
                continue  # expired or tampered with: dropped on load
            self._put(env, float(row["stored"]))
        self.db.execute("DELETE FROM dht_values WHERE expiry <= ?", (int(now),))

    def _put(self, env: Envelope, stored: float) -> None:
        slots = self.data.setdefault(env.dkey, {})
        if env.signer not in slots:
            self.count += 1
        slots[env.signer] = (env, stored)

    # -- the write path -------------------------------------------------------------

    def offer(self, data: bytes, *, dkey: bytes | None = None) -> tuple[bool, str]:
        """Verify and store an envelope; ``(accepted, reason)``."""
        now = self.clock()
        try:
            env = check(data, now=now, verify=verify, dkey=dkey)
        except InvalidEnvelope as exc:
            return False, str(exc)
        slots = self.data.get(env.dkey, {})
        cur = slots.get(env.signer)
        if cur is not None:
            if cur[0].encode() == env.encode():
                return True, "already stored"
            if not env.newer_than(cur[0]):
                return False, f"stale: stored seq {cur[0].seq} is not older"
        else:
            if len(slots) >= self.max_signers_per_key:
                return False, "key holds too many signers"
            if self.count >= self.max_entries:
                self.cull()
                if self.count >= self.max_entries:
                    return False, "storage full"
        self._put(env, now)
        if self.db is not None:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO dht_values(dkey, signer, seq, expiry, envelope, stored) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(dkey, signer) DO UPDATE SET "
                    "seq = excluded.seq, expiry = excluded.expiry, "
                    "envelope = excluded.envelope, stored = excluded.stored",
                    (env.dkey, env.signer, env.seq, env.expiry, env.encode(), now),
                )
        return True, "stored"

    def cull(self) -> int:
        """Drop expired envelopes; how many went."""
        now = self.clock()
        gone = 0
        for dkey in list(self.data):
            slots = self.data[dkey]
            for signer in [s for s, (e, _) in slots.items() if e.expiry <= now]:
                del slots[signer]
                gone += 1
            if not slots:
                del self.data[dkey]
        self.count -= gone
        if gone and self.db is not None:
            self.db.execute("DELETE FROM dht_values WHERE expiry <= ?", (int(now),))
        return gone

    def envelopes(self, dkey: bytes, signer: bytes | None = None) -> list[Envelope]:
        now = self.clock()
        slots = self.data.get(dkey, {})
        return [
            e for s, (e, _) in slots.items() if e.expiry > now and (signer is None or s == signer)
        ]

    def touch(self, dkey: bytes, signer: bytes) -> None:
        """Mark a slot as just republished."""
        slot = self.data.get(dkey, {}).get(signer)
        if slot is not None:
            self.data[dkey][signer] = (slot[0], self.clock())

    # -- the kademlia IStorage interface ---------------------------------------------

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.offer(value, dkey=key)

    def __getitem__(self, key: bytes) -> list[bytes]:
        found = self.envelopes(key)
        if not found:
            raise KeyError(key)
        return [e.encode() for e in found]

    def get(self, key: bytes, default: Any = None) -> Any:
        found = self.envelopes(key)
        return [e.encode() for e in found] if found else default

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.cull()
        return iter([(d, e.encode()) for d, slots in self.data.items() for e, _ in slots.values()])

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        limit = self.clock() - seconds_old
        return [
            (d, e.encode())
            for d, slots in list(self.data.items())
            for e, stored in slots.values()
            if stored <= limit
        ]

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:  # an empty store is still a store (Server tests truthiness)
        return True
