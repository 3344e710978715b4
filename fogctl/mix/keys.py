"""Mix key epochs: one X25519 key per epoch, an overlap window, files under ``keys/``.

Epoch ``e`` covers ``[e * epoch_s, (e + 1) * epoch_s)`` (Unix time). A node accepts
packets under the current epoch's key and, during the first ``overlap_s`` seconds of
an epoch, under the previous one too: a packet built just before the rotation still
gets through. Each live key has its own :class:`ReplayGuard`. Keys live in
``keys/mix-<node>-<epoch>.x25519`` (raw 32 bytes, mode 0600, created atomically);
retired keys and their filters are deleted, so old traffic cannot be decrypted later.

This module only reads the clock it is given (``now``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fogctl.mix.primitives import x25519_base
from fogctl.mix.replay import DEFAULT_CAPACITY, DEFAULT_FPR, ReplayGuard
from fogctl.state.atomic import create_exclusive

__all__ = ["DEFAULT_EPOCH_S", "DEFAULT_OVERLAP_S", "EpochKey", "KeyRing", "epoch_of"]

DEFAULT_EPOCH_S = 24 * 3600
DEFAULT_OVERLAP_S = 3600


def epoch_of(now: float, epoch_s: int) -> int:
    return int(now // epoch_s)


@dataclass(slots=True)
class EpochKey:
    epoch: int
    private: bytes
    public: bytes
    guard: ReplayGuard

    def __repr__(self) -> str:  # never show key material
        return f"EpochKey(epoch={self.epoch}, public={self.public.hex()[:16]}...)"


class KeyRing:
    """The live keys of one mix node."""

    def __init__(
        self,
        keys_dir: Path,
        replay_dir: Path,
        name: str,
        *,
        epoch_s: int = DEFAULT_EPOCH_S,
        overlap_s: int = DEFAULT_OVERLAP_S,
        capacity: int = DEFAULT_CAPACITY,
        fpr: float = DEFAULT_FPR,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not 0 <= overlap_s < epoch_s:
            raise ValueError("overlap must be shorter than the epoch")
        self.keys_dir, self.replay_dir, self.name = keys_dir, replay_dir, name
        self.epoch_s, self.overlap_s = epoch_s, overlap_s
        self.capacity, self.fpr, self._rng = capacity, fpr, rng
        self._live: dict[int, EpochKey] = {}
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        replay_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _key_path(self, epoch: int) -> Path:
        return self.keys_dir / f"mix-{self.name}-{epoch}.x25519"

    def _load(self, epoch: int) -> EpochKey:
        path = self._key_path(epoch)
        create_exclusive(path, self._rng(32), mode=0o600)
        private = path.read_bytes()
        if len(private) != 32:
            from fogctl.errors import StateError

            raise StateError(f"{path}: not a 32-byte X25519 key")
        guard = ReplayGuard(self.replay_dir, epoch, capacity=self.capacity, fpr=self.fpr)
        return EpochKey(epoch, private, x25519_base(private), guard)

    def public_key(self, epoch: int) -> bytes:
        """The public key of ``epoch`` (creating it: used to pre-publish the next one)."""
        key = self._live.get(epoch)
        if key is None:
            key = self._load(epoch)
            self._live[epoch] = key
        return key.public

    def live(self, now: float) -> list[EpochKey]:
        """Keys to try for a packet arriving at ``now``: current first, then previous."""
        cur = epoch_of(now, self.epoch_s)
        wanted = [cur]
        if now - cur * self.epoch_s < self.overlap_s:
            wanted.append(cur - 1)
        for e in wanted:
            if e not in self._live:
                self._live[e] = self._load(e)
        self._retire(keep={cur, cur - 1, cur + 1} if len(wanted) == 2 else {cur, cur + 1})
        return [self._live[e] for e in wanted]

    def _retire(self, keep: set[int]) -> None:
        for e in [e for e in self._live if e not in keep]:
            key = self._live.pop(e)
            key.guard.destroy()
            self._key_path(e).unlink(missing_ok=True)

    def flush(self) -> None:
        for k in self._live.values():
            k.guard.flush()

    def close(self) -> None:
        for k in self._live.values():
            k.guard.close()


class Signer:
    """An Ed25519 signing identity for descriptors (the node identity or a per-mix key)."""

    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        from cryptography.hazmat.primitives import serialization

        self.public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def node_id(self) -> str:
        from fogctl.state.identity import node_id_for

        return node_id_for(self.public)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Signer(node_id={self.node_id!r})"


def load_signer(
    keys_dir: Path, name: str | None, rng: Callable[[int], bytes] = os.urandom
) -> Signer:
    """The per-mix key ``keys/mix-<name>.ed25519`` (created 0600 if missing)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys_dir / f"mix-{name}.ed25519"
    create_exclusive(path, rng(32), mode=0o600)
    seed = path.read_bytes()
    if len(seed) != 32:
        from fogctl.errors import StateError

        raise StateError(f"{path}: not a 32-byte Ed25519 seed")
    return Signer(seed)


def identity_signer(identity: object) -> Signer:
    """A Signer over the state's node identity (``State().identity()``)."""
    from cryptography.hazmat.primitives import serialization

    key = identity.signing_key  # type: ignore[attr-defined]
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Signer(seed)
