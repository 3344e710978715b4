"""The account that signs fogctl's transactions, from one of three places.

In order:

1. ``$FOGCTL_CHAIN_PRIVATE_KEY`` (hex), for scripts and CI;
2. a keystore file (``--keystore FILE`` or config ``chain.keystore``), unlocked with
   ``$FOGCTL_CHAIN_KEYSTORE_PASSWORD`` or a password prompt on a terminal; with neither
   it stays locked and the command is refused (exit 4);
3. ``keys/chain.key`` in the state directory: created on first use (mode 0600,
   atomically) and never printed.

Keys never appear in records, messages or tracebacks: an :class:`Account` shows only
its address.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, Refused, StateError
from fogctl.state.atomic import create_exclusive

__all__ = ["ENV_KEY", "ENV_PASSWORD", "KEY_FILE", "Account", "load_account", "local_key_path"]

ENV_KEY = "FOGCTL_CHAIN_PRIVATE_KEY"
ENV_PASSWORD = "FOGCTL_CHAIN_KEYSTORE_PASSWORD"
KEY_FILE = "chain.key"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEXKEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Account:
    """A signing account; ``repr`` shows the address and where it came from, never the key."""

    address: str
    source: str
    _key: bytes = field(repr=False)

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        from eth_account import Account as EthAccount

        signed = EthAccount.sign_transaction(tx, self._key)
        return bytes(signed.raw_transaction)

    def sign_typed_data(self, full_message: dict[str, Any]) -> Any:
        from eth_account import Account as EthAccount

        return EthAccount.sign_typed_data(self._key, full_message=full_message)


def _from_hex(text: str, source: str) -> Account:
    text = text.strip()
    if not _HEXKEY.match(text):
        raise InvalidInput(f"{source}: not a 32-byte hex private key")
    from eth_account import Account as EthAccount

    key = bytes.fromhex(text.removeprefix("0x"))
    try:
        acct = EthAccount.from_key(key)
    except (ValueError, Exception):
        raise InvalidInput(f"{source}: not a valid secp256k1 private key") from None
    return Account(str(acct.address), source, key)


def local_key_path(keys_dir: Path) -> Path:
    return keys_dir / KEY_FILE


def _local_key(keys_dir: Path, create: bool) -> Account:
    path = local_key_path(keys_dir)
    if not path.exists():
        if not create:
            raise StateError(f"{path}: no chain key yet (any 'fogctl stake' transaction makes one)")
        import secrets

        from fogctl.state.paths import ensure_dir

        ensure_dir(keys_dir)
        while True:
            key = secrets.token_bytes(32)
            # A key must be in [1, n-1] of secp256k1; rejection keeps it uniform.
            if 0 < int.from_bytes(key, "big") < SECP256K1_N:
                break
        create_exclusive(path, key.hex().encode() + b"\n", mode=0o600)
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise Refused(f"{path}: mode {mode:o} lets other users read the key (chmod 600 it)")
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise StateError(f"{path}: not a hex private key") from None
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None
    return _from_hex(text, str(path))


def _keystore(path: Path, password: str | None) -> Account:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"keystore {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"keystore {path}: not a JSON keystore ({exc})") from None
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise InvalidInput(f"keystore {path}: not an Ethereum keystore (no crypto section)")
    if password is None:
        password = os.environ.get(ENV_PASSWORD)
    if password is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise Refused(
                f"keystore {path} is locked: no terminal to ask for its password",
                hint=f"set {ENV_PASSWORD} for scripts",
            )
        try:
            password = getpass.getpass(f"Password for {path.name}: ")
        except (EOFError, KeyboardInterrupt):
            raise Refused(f"keystore {path} is locked: no password given") from None
    from eth_account import Account as EthAccount

    try:
        key = bytes(EthAccount.decrypt(data, password))
    except ValueError:
        raise Refused(f"keystore {path}: wrong password") from None
    except Exception as exc:  # malformed kdf params etc.
        raise InvalidInput(f"keystore {path}: cannot decrypt: {exc.__class__.__name__}") from None
    acct = EthAccount.from_key(key)
    return Account(str(acct.address), f"keystore {path}", key)


def load_account(
    keys_dir: Path,
    *,
    keystore: str | Path | None = None,
    password: str | None = None,
    create: bool = True,
    environ: dict[str, str] | None = None,
) -> Account:
    """The signing account: env key, else keystore, else ``keys/chain.key`` (see module doc)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_KEY)
    if raw:
        return _from_hex(raw, f"${ENV_KEY}")
    if keystore:
        return _keystore(Path(keystore).expanduser(), password)
    return _local_key(keys_dir, create)
