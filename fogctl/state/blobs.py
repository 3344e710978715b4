"""Content-addressed blob store: ``blobs/ab/<sha256>``, written to a temp name and renamed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fogctl.errors import InvalidInput, StateError
from fogctl.state.atomic import _fsync_dir

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BlobStore:
    """Immutable blobs named by the SHA-256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise InvalidInput(f"not a blob digest: {digest!r}")
        return self.root / digest[:2] / digest

    def path(self, digest: str) -> Path:
        """Path of an existing blob; :class:`StateError` if it is missing."""
        p = self._path(digest)
        if not p.is_file():
            raise StateError(f"blob {digest} is missing from {self.root}")
        return p

    def has(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its hex SHA-256. Storing the same bytes twice is a no-op."""
        return self.put_stream(_BytesReader(data))

    def put_file(self, path: Path) -> str:
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def put_stream(self, stream: BinaryIO | _BytesReader) -> str:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{secrets.token_hex(8)}"
        h = hashlib.sha256()
        try:
            with open(tmp, "xb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self._path(digest)
            final.parent.mkdir(mode=0o700, exist_ok=True)
            if final.exists():
                tmp.unlink()
            else:
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StateError(f"cannot write blob under {self.root}: {exc.strerror}") from None
        return digest

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def verify(self, digest: str) -> bool:
        """True if the blob's content still hashes to its name."""
        h = hashlib.sha256()
        with self.open(digest) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest() == digest

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if _DIGEST.match(f.name):
                        yield f.name


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else self._pos + n
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        return chunk
