from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fogctl.errors import StateError
from fogctl.state import State
from fogctl.state.atomic import create_exclusive
from fogctl.state.identity import load_identity, load_or_create_identity, verify


def test_keys_are_private_and_node_id_is_bound(tmp_path: Path) -> None:
    ident, created = load_or_create_identity(tmp_path / "keys")
    assert created
    for f in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert ident.node_id == hashlib.sha256(ident.ed25519_public).hexdigest()[:40]
    sig = ident.sign(b"msg")
    assert verify(ident.ed25519_public, sig, b"msg")
    assert not verify(ident.ed25519_public, sig, b"other")
    assert "PRIVATE" not in repr(ident)


def test_second_create_changes_nothing(tmp_path: Path) -> None:
    first, _ = load_or_create_identity(tmp_path / "keys")
    before = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    second, created = load_or_create_identity(tmp_path / "keys")
    assert not created
    assert second.node_id == first.node_id
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == before


def test_racing_creators_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: load_or_create_identity(tmp_path / "k")[0].node_id, range(8)))
    assert len(ids) == 1


def test_create_exclusive_never_clobbers(tmp_path: Path) -> None:
    assert create_exclusive(tmp_path / "f", b"one")
    assert not create_exclusive(tmp_path / "f", b"two")
    assert (tmp_path / "f").read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_damaged_or_open_keys_are_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path / "keys")
    key = tmp_path / "keys" / "ed25519.pem"
    os.chmod(key, 0o644)
    with pytest.raises(StateError, match="accessible by other users"):
        load_identity(tmp_path / "keys")
    os.chmod(key, 0o600)
    key.write_bytes(b"garbage")
    with pytest.raises(StateError, match="not a valid key file"):
        load_identity(tmp_path / "keys")


def test_state_create_is_idempotent(tmp_path: Path) -> None:
    _, created = State.create(tmp_path / "home")
    assert created
    _, created = State.create(tmp_path / "home")
    assert not created
