from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fogctl.errors import InvalidInput, StateError
from fogctl.state.blobs import BlobStore


def test_put_get_is_content_addressed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"hello fog" * 1000
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data
    assert store.put(data) == digest  # idempotent
    assert list(store) == [digest]
    assert store.verify(digest)
    assert not list((tmp_path / "blobs").glob(".tmp-*"))


def test_put_file_streams(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(b"x" * (3 << 20))
    store = BlobStore(tmp_path / "blobs")
    assert store.path(store.put_file(src)).stat().st_size == 3 << 20


def test_bad_and_missing_digests(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidInput):
        store.path("../../etc/passwd")
    with pytest.raises(StateError, match="missing"):
        store.get("0" * 64)
    assert not store.has("0" * 64)
