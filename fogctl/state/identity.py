"""The node identity: an Ed25519 signing key and an X25519 key-agreement key.

Both live under ``keys/`` in the state directory as PKCS#8 PEM files, mode 0600,
created atomically (complete before the name appears, never overwritten). The node
id is the SHA-256 of the raw Ed25519 public key, truncated to 160 bits and written
in hex: the Kademlia id space, bound to the key (S/Kademlia style).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from fogctl.errors import StateError
from fogctl.state.atomic import create_exclusive

ED25519_FILE = "ed25519.pem"
X25519_FILE = "x25519.pem"
NODE_ID_BYTES = 20


def node_id_for(ed25519_public: bytes) -> str:
    """The node id bound to a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(ed25519_public).digest()[:NODE_ID_BYTES].hex()


def _raw_public(key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Identity:
    signing_key: ed25519.Ed25519PrivateKey
    exchange_key: x25519.X25519PrivateKey

    @property
    def ed25519_public(self) -> bytes:
        return _raw_public(self.signing_key.public_key())

    @property
    def x25519_public(self) -> bytes:
        return _raw_public(self.exchange_key.public_key())

    @property
    def node_id(self) -> str:
        return node_id_for(self.ed25519_public)

    def sign(self, data: bytes) -> bytes:
        return self.signing_key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"Identity(node_id={self.node_id!r})"


def verify(public: bytes, signature: bytes, data: bytes) -> bool:
    """Check an Ed25519 signature by a raw public key."""
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _pem(key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load(
    path: Path, kind: type[ed25519.Ed25519PrivateKey] | type[x25519.X25519PrivateKey]
) -> object:
    try:
        st = path.stat()
        data = path.read_bytes()
    except IsADirectoryError:
        raise StateError(f"{path}: is a directory, expected a key file") from None
    except OSError as exc:
        raise StateError(f"{path}: cannot read key: {exc.strerror}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise StateError(
            f"{path}: key file is accessible by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); run 'chmod 600 {path}'"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise StateError(f"{path}: not a valid key file") from None
    if not isinstance(key, kind):
        raise StateError(f"{path}: holds the wrong kind of key")
    return key


def load_identity(keys_dir: Path) -> Identity:
    """Load the identity; :class:`StateError` if it is missing or damaged."""
    ed_path, x_path = keys_dir / ED25519_FILE, keys_dir / X25519_FILE
    if not ed_path.exists() or not x_path.exists():
        raise StateError(f"no node identity in {keys_dir} (run 'fogctl init')")
    signing = _load(ed_path, ed25519.Ed25519PrivateKey)
    exchange = _load(x_path, x25519.X25519PrivateKey)
    return Identity(signing, exchange)  # type: ignore[arg-type]


def load_or_create_identity(keys_dir: Path) -> tuple[Identity, bool]:
    """Load the identity, creating any missing key; returns (identity, created_any)."""
    try:
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
    except OSError as exc:
        raise StateError(f"{keys_dir}: cannot create key directory: {exc.strerror}") from None
    created = False
    for name, make in (
        (ED25519_FILE, ed25519.Ed25519PrivateKey.generate),
        (X25519_FILE, x25519.X25519PrivateKey.generate),
    ):
        path = keys_dir / name
        if not path.exists():
            try:
                created |= create_exclusive(path, _pem(make()), mode=0o600)
            except OSError as exc:
                raise StateError(f"{path}: cannot write key: {exc.strerror}") from None
    return load_identity(keys_dir), created
