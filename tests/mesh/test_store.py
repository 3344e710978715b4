"""The bundle store: persistence, expiry, quota drop policy, crash safety (a real SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fogctl.mesh.bundle import new_bundle
from fogctl.mesh.store import INLINE_MAX, BundleStore
from fogctl.state import State


def mk(seq: int, *, now: int = 1000, lifetime: int = 10_000, size: int = 100) -> object:
    return new_bundle(
        "dtn://a/",
        "dtn://b/",
        bytes([seq % 256]) * size,
        now=now,
        sequence=seq,
        lifetime_ms=lifetime,
    )


def test_bundles_persist_across_reopen(fog_home: Path) -> None:
    s = BundleStore(State(fog_home))
    b = new_bundle("dtn://a/", "dtn://b/", b"hello", now=1000, sequence=1)
    r = s.add(b, now=1000)
    assert r.stored
    s.state.close()
    s2 = BundleStore(State(fog_home))
    assert s2.ids() == [b.id]
    assert s2.get(b.id) == b
    assert s2.add(b, now=1001).reason == "seen"
    rec = s2.records()[0]
    assert (rec.source, rec.destination, rec.hop_limit, rec.hop_count) == (
        "dtn://a/",
        "dtn://b/",
        7,
        0,
    )


def test_expired_are_purged_and_not_reaccepted(fog_home: Path) -> None:
    s = BundleStore(State(fog_home))
    big = INLINE_MAX + 1  # stored as blob files, not inline
    short = new_bundle("dtn://a/", "dtn://b/", b"x" * big, now=1000, lifetime_ms=100, sequence=1)
    long = new_bundle("dtn://a/", "dtn://b/", b"y" * big, now=1000, lifetime_ms=10_000, sequence=2)
    s.add(short, now=1000)
    s.add(long, now=1000)
    assert s.purge_expired(1100) == [short.id]
    assert s.ids() == [long.id]
    assert s.add(short, now=1050).reason == "seen"
    assert (
        s.add(new_bundle("dtn://a/", "dtn://b/", b"z", now=1, lifetime_ms=5), now=1000).reason
        == "expired"
    )
    blobs = list(s.state.blobs)
    assert len(blobs) == 1  # the purged bundle's bytes are gone too


def test_quota_drop_policy(fog_home: Path) -> None:
    one = len(mk(0).to_bytes())  # type: ignore[attr-defined]
    s = BundleStore(State(fog_home), quota_bytes=3 * one)
    a = mk(1, lifetime=5_000)
    b = mk(2, lifetime=9_000)
    mine = mk(3, lifetime=2_000)
    assert s.add(a, now=1000).stored
    assert s.add(b, now=1000).stored
    assert s.add(mine, now=1000, origin="local").stored
    # relayed newcomer outliving `a`: evicts `a` (soonest-expiring relay)
    c = mk(4, lifetime=8_000)
    r = s.add(c, now=1000)
    assert r.stored and r.evicted == (a.id,)
    # relayed newcomer expiring before everything else: refused
    d = mk(5, lifetime=1_000)
    assert s.add(d, now=1000).reason == "quota"
    # own new bundle may displace relays
    e = mk(6, lifetime=1_500)
    r = s.add(e, now=1000, origin="local")
    assert r.stored and r.evicted == (c.id,)
    assert s.usage() <= 3 * one
    # once something expired, it goes first
    f = mk(7, lifetime=20_000)
    r = s.add(f, now=3500)
    assert r.stored and r.evicted[0] in (mine.id, e.id)


WRITER = r"""
import sys
from pathlib import Path
from fogctl.mesh.bundle import new_bundle
from fogctl.mesh.store import INLINE_MAX, BundleStore
from fogctl.state import State
s = BundleStore(State(Path(sys.argv[1])))
i = 0
while True:
    i += 1
    # odd bundles inline in their row, even ones in blob files
    data = bytes(2000 if i % 2 else 140_000) + i.to_bytes(4, "big")
    s.add(new_bundle("dtn://a/", "dtn://b/", data, now=1000, sequence=i), now=1000)
    if i == 5:
        print("ready", flush=True)
"""


def test_sigkill_mid_write_loses_nothing_committed(fog_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(fog_home)], stdout=subprocess.PIPE, env={**os.environ}
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 5
    s = BundleStore(State(fog_home))
    while len(s.ids()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    s = BundleStore(State(fog_home))
    ids = s.ids()
    assert len(ids) >= 20
    for bid in ids:
        assert s.get(bid).id == bid  # every committed row has intact bytes
    files = sum(len(s.raw(bid)) > INLINE_MAX for bid in ids)
    assert 0 < files < len(ids)
    orphans_before = len(list(s.state.blobs)) - files
    assert orphans_before in (0, 1)
    assert s.gc() == orphans_before
    assert len(list(s.state.blobs)) == files


def test_batch_is_one_transaction_with_savepoints(fog_home: Path) -> None:
    """Group commit: a batch commits everything at once; a failing operation inside
    undoes only itself; an exception escaping the batch commits nothing."""
    import pytest

    s = BundleStore(State(fog_home))
    other = State(fog_home)  # a second connection sees only committed rows
    a, b, c = mk(1), mk(2), mk(3)
    with s.batch():
        assert s.add(a, now=1000).stored
        with pytest.raises(RuntimeError), s.tx() as conn:
            conn.execute("INSERT INTO mesh_kv(key, value) VALUES ('x', x'00')")
            raise RuntimeError("this savepoint only")
        assert s.add(b, now=1000).stored
        assert other.db.query("SELECT COUNT(*) FROM mesh_bundles")[0][0] == 0
    assert sorted(BundleStore(other).ids()) == sorted([a.id, b.id])
    assert s.kv_get("x") is None
    with pytest.raises(RuntimeError), s.batch():
        assert s.add(c, now=1000).stored
        raise RuntimeError("crash before commit")
    assert not s.has(c.id)


def test_removing_inside_a_batch_unlinks_blob_files_after_the_commit(fog_home: Path) -> None:
    s = BundleStore(State(fog_home))
    big = new_bundle("dtn://a/", "dtn://b/", bytes(INLINE_MAX + 10), now=1000, sequence=9)
    s.add(big, now=1000)
    assert len(list(s.state.blobs)) == 1
    with s.batch():
        s.remove(big.id, now=1000)
        assert len(list(s.state.blobs)) == 1  # not yet: the delete is not committed
    assert list(s.state.blobs) == []
