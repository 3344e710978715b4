"""The shared local state directory: SQLite database, keys and content-addressed blobs.

Layout of ``$FOGCTL_HOME`` (else the platform's user state dir)::

    state.db         SQLite, WAL mode (see :mod:`fogctl.state.db`)
    keys/            ed25519.pem, x25519.pem and domain keys, mode 0600
    blobs/ab/<sha>   content-addressed blobs (payloads, logs, outputs, checkpoints)
    config.yaml      optional configuration (see :mod:`fogctl.config`)

Opening a :class:`State` never creates anything; :meth:`State.create` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fogctl.config import Config, load_config
from fogctl.state.atomic import create_exclusive, write_atomic
from fogctl.state.blobs import BlobStore
from fogctl.state.db import Database
from fogctl.state.paths import ENV_HOME, check_readable, default_state_dir, ensure_dir

if TYPE_CHECKING:
    from fogctl.state.identity import Identity, node_id_for, verify


def __getattr__(name: str) -> Any:
    # The identity module imports cryptography (~50 ms): load it only when used.
    if name in ("Identity", "node_id_for", "verify"):
        from fogctl.state import identity

        return getattr(identity, name)
    raise AttributeError(name)


__all__ = [
    "ENV_HOME",
    "BlobStore",
    "Database",
    "Identity",
    "State",
    "create_exclusive",
    "default_state_dir",
    "node_id_for",
    "verify",
    "write_atomic",
]

DB_FILE = "state.db"


class State:
    """Handle on one state directory. Cheap to make; opens things on first use."""

    def __init__(self, root: Path | None = None, environ: Mapping[str, str] | None = None):
        self.root = root if root is not None else default_state_dir(environ)
        self._environ = environ

    @classmethod
    def create(cls, root: Path | None = None) -> tuple[State, bool]:
        """Make the directory and identity if missing; returns (state, created_anything)."""
        from fogctl.state.identity import load_or_create_identity

        state = cls(root)
        existed = (state.root / "keys").is_dir()
        ensure_dir(state.root)
        _, created = load_or_create_identity(state.keys_dir)
        state.db  # noqa: B018 - creates and migrates the database
        return state, created or not existed

    def require(self) -> State:
        """Fail clearly unless the directory exists and can be read (creates nothing)."""
        check_readable(self.root)
        return self

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @cached_property
    def db(self) -> Database:
        ensure_dir(self.root)
        return Database(self.root / DB_FILE)

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.root / "blobs")

    @cached_property
    def config(self) -> Config:
        return load_config(self.root, self._environ)

    def identity(self) -> Identity:
        from fogctl.state.identity import load_identity

        return load_identity(self.keys_dir)

    def subdir(self, name: str) -> Path:
        """A private subdirectory for a domain (created on demand, mode 0700)."""
        return ensure_dir(self.root / name)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
            del self.__dict__["db"]
