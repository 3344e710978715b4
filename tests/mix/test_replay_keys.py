"""Replay filters persist across restarts, survive filling up, rotate with epoch keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fogctl.errors import StateError
from fogctl.mix import sphinx
from fogctl.mix.keys import KeyRing, load_signer
from fogctl.mix.replay import BloomFilter, ReplayGuard, bloom_parameters


def test_documented_nym_like_sizing() -> None:
    m, k = bloom_parameters(25 * 3600 * 2000, 1e-5)
    assert k == 17
    assert 535e6 < m / 8 < 545e6  # about 539 MB


def test_false_positive_rate_is_near_target(tmp_path: Path) -> None:
    bf = BloomFilter(tmp_path / "f.bloom", 5000, 1e-2)
    for i in range(5000):
        bf.add(i.to_bytes(8, "big"))
    fp = sum((10**9 + i).to_bytes(8, "big") in bf for i in range(5000))
    assert fp / 5000 < 0.03


def test_replay_refused_after_a_restart(tmp_path: Path) -> None:
    g = ReplayGuard(tmp_path, epoch=7, capacity=1000, fpr=1e-4)
    tag = os.urandom(16)
    assert g.seen(tag) is False
    assert g.seen(tag) is True
    g.close()  # the node stops (or flushes) ...
    g2 = ReplayGuard(tmp_path, epoch=7, capacity=1000, fpr=1e-4)
    assert g2.seen(tag) is True  # ... and still remembers
    assert g2.count == 1
    g2.close()
    assert stat.S_IMODE((tmp_path / "replay-7-0.bloom").stat().st_mode) == 0o600


def test_full_filter_rotates_generations_and_never_crashes(tmp_path: Path) -> None:
    g = ReplayGuard(tmp_path, epoch=1, capacity=50, fpr=1e-3)
    tags = [os.urandom(16) for _ in range(400)]
    fresh = sum(not g.seen(t) for t in tags)
    assert fresh >= 395
    assert g.rotations >= 7 and g.dropped_generations >= 6
    assert g.seen(tags[-1]) is True  # the newest generations are still checked
    assert len(list(tmp_path.glob("replay-1-*.bloom"))) == 2
    g.destroy()
    assert not list(tmp_path.glob("replay-1-*"))


def test_corrupt_filter_file_is_a_clear_state_error(tmp_path: Path) -> None:
    (tmp_path / "replay-3-0.bloom").write_bytes(b"garbage" * 100)
    with pytest.raises(StateError, match="not a fogctl replay filter"):
        ReplayGuard(tmp_path, epoch=3, capacity=10, fpr=1e-3)


def test_epoch_rotation_overlap_window_and_retirement(tmp_path: Path) -> None:
    ring = KeyRing(
        tmp_path / "keys", tmp_path / "replay", "m", epoch_s=100, overlap_s=10, capacity=100
    )
    old = ring.live(250.0)
    assert [k.epoch for k in old] == [2]
    pub2 = old[0].public
    # a packet made for epoch 2 still works 5 s into epoch 3, not 15 s in
    assert [k.epoch for k in ring.live(305.0)] == [3, 2]
    assert [k.epoch for k in ring.live(315.0)] == [3]
    hop = sphinx.Hop(bytes(20), pub2, 0)
    pkt = sphinx.create_forward([hop], bytes(20), bytes(16), b"", os.urandom)
    keys = ring.live(405.0)  # epoch 4: epoch 2 is retired, its key deleted
    assert [k.epoch for k in keys] == [4, 3]
    assert not (tmp_path / "keys" / "mix-m-2.x25519").exists()
    for k in keys:
        with pytest.raises(sphinx.MacMismatch):
            sphinx.process(pkt, k.private, k.guard.seen)
    key_file = tmp_path / "keys" / "mix-m-4.x25519"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring.close()


def test_per_mix_signing_keys_are_private_and_stable(tmp_path: Path) -> None:
    a = load_signer(tmp_path, "alpha")
    b = load_signer(tmp_path, "alpha")
    assert a.node_id == b.node_id and "alpha" not in repr(a)
    assert stat.S_IMODE((tmp_path / "mix-alpha.ed25519").stat().st_mode) == 0o600
