"""Onion services on the controlled tor: add (ephemeral or persistent), list, remove.

* ephemeral: ``ADD_ONION NEW:ED25519-V3 Flags=Detach,DiscardPK``: tor makes the key
  and forgets it; the service lasts until ``rm`` or until tor stops.
* persistent: fogctl makes the ed25519 key, keeps the seed in
  ``keys/tor-onion-<address>.pem`` (PKCS#8, mode 0600, created atomically), derives the
  address itself (:func:`fogctl.tor.onion.onion_address`) and checks that tor's
  ServiceID agrees; ``fogctl tor up`` re-adds it, so the address survives restarts.

Keys never appear in records, messages or logs (``DiscardPK`` on every ADD_ONION).
The services and their port maps are in the state database (table ``tor_onions``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed, StateError
from fogctl.state import State, create_exclusive
from fogctl.tor.onion import PortMap, check_onion_address, expand_seed, onion_address
from fogctl.tor.records import OnionRecord

__all__ = ["add", "list_onions", "remove", "restore"]

MIGRATIONS = [
    """
    CREATE TABLE tor_onions (
        address    TEXT PRIMARY KEY,
        ports      TEXT NOT NULL,
        persistent INTEGER NOT NULL,
        key_file   TEXT,
        created    REAL NOT NULL
    );
    """,
]


def _db(state: State) -> Any:
    db = state.db
    db.migrate("tor", MIGRATIONS)
    return db


def _key_path(state: State, address: str) -> Path:
    return state.keys_dir / f"tor-onion-{address.removesuffix('.onion')}.pem"


def _new_key() -> tuple[bytes, bytes]:
    """(seed, public key) of a fresh ed25519 key (cryptography's vetted generator)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return seed, pub


def _seed_pem(seed: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_seed(path: Path) -> tuple[bytes, bytes]:
    """(seed, public key) from a key file written by :func:`add`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise StateError(f"{path}: onion key is missing") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: unreadable onion key ({exc.__class__.__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise StateError(f"{path}: not an ed25519 key")
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return seed, key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)


def _ports_arg(ports: Sequence[PortMap]) -> dict[int, str]:
    out: dict[int, str] = {}
    for p in ports:
        if p.virtual in out:
            raise InvalidInput(f"port map: virtual port {p.virtual} given twice")
        out[p.virtual] = p.target()
    return out


def _add_onion(
    ctl: Any, key_type: str, key_content: str, ports: Sequence[PortMap], wait: bool, timeout: float
) -> str:
    import stem

    try:
        resp = ctl.create_ephemeral_hidden_service(
            _ports_arg(ports),
            key_type=key_type,
            key_content=key_content,
            discard_key=True,
            detached=True,
            await_publication=wait,
            timeout=timeout if wait else None,
        )
    except stem.Timeout:
        raise OperationFailed(f"onion service not published within {timeout:.0f} s") from None
    except stem.ControllerError as exc:
        # tor's message never echoes the key; keep only its first line anyway
        raise OperationFailed(f"tor refused ADD_ONION: {str(exc).splitlines()[0]}") from None
    return str(resp.service_id) + ".onion"


def add(
    state: State,
    ctl: Any,
    ports: Sequence[PortMap],
    *,
    persistent: bool = False,
    wait: bool = True,
    timeout: float = 60.0,
) -> OnionRecord:
    """Create a v3 onion service forwarding ``ports``; returns its record."""
    if not ports:
        raise InvalidInput("port map: give at least one VIRTPORT[:HOST]:PORT")
    db = _db(state)
    key_file: Path | None = None
    if persistent:
        seed, pub = _new_key()
        address = onion_address(pub)
        key_file = _key_path(state, address)
        state.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not create_exclusive(key_file, _seed_pem(seed), mode=0o600):
            raise StateError(f"{key_file} already exists")
        blob = base64.b64encode(expand_seed(seed)).decode()
        try:
            got = _add_onion(ctl, "ED25519-V3", blob, ports, wait, timeout)
        except BaseException:
            key_file.unlink()
            raise
        if got != address:
            ctl.remove_ephemeral_hidden_service(got.removesuffix(".onion"))
            key_file.unlink()
            raise OperationFailed(f"tor derived {got} but fogctl derived {address} from the key")
    else:
        address = _add_onion(ctl, "NEW", "ED25519-V3", ports, wait, timeout)
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO tor_onions(address, ports, persistent, key_file, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                address,
                json.dumps([str(p) for p in ports]),
                int(persistent),
                str(key_file) if key_file else None,
                time.time(),
            ),
        )
    return OnionRecord(
        address=address,
        ports=tuple(str(p) for p in ports),
        persistent=persistent,
        active=True,
        key_file=str(key_file) if key_file else None,
    )


def _active(ctl: Any) -> set[str]:
    try:
        found = ctl.list_ephemeral_hidden_services(our_services=True, detached=True)
    except Exception:
        return set()
    return {f"{s}.onion" for s in found}


def list_onions(state: State, ctl: Any | None) -> list[OnionRecord]:
    """Known services (and any others tor runs), ``active`` = tor serves it now."""
    active = _active(ctl) if ctl is not None else set()
    rows = _db(state).query("SELECT * FROM tor_onions ORDER BY created")
    out = []
    seen = set()
    for row in rows:
        seen.add(row["address"])
        out.append(
            OnionRecord(
                address=row["address"],
                ports=tuple(json.loads(row["ports"])),
                persistent=bool(row["persistent"]),
                active=row["address"] in active,
                key_file=row["key_file"],
            )
        )
    for addr in sorted(active - seen):
        out.append(OnionRecord(address=addr, active=True))
    return out


def remove(state: State, ctl: Any | None, address: str, *, keep_key: bool = False) -> OnionRecord:
    """Stop serving ``address``; forget it, and delete its key unless ``keep_key``."""
    address = check_onion_address(address)
    db = _db(state)
    rows = db.query("SELECT * FROM tor_onions WHERE address = ?", (address,))
    active = _active(ctl) if ctl is not None else set()
    if not rows and address not in active:
        raise InvalidInput(f"onion address: {address} is not a service of this tor")
    if ctl is not None and address in active:
        ctl.remove_ephemeral_hidden_service(address.removesuffix(".onion"))
    row = rows[0] if rows else None
    with db.transaction() as conn:
        conn.execute("DELETE FROM tor_onions WHERE address = ?", (address,))
    if row is not None and row["key_file"] and not keep_key:
        with contextlib.suppress(FileNotFoundError):
            Path(row["key_file"]).unlink()
    return OnionRecord(
        address=address,
        ports=tuple(json.loads(row["ports"])) if row is not None else (),
        persistent=bool(row["persistent"]) if row is not None else False,
        active=False,
        key_file=row["key_file"] if row is not None and keep_key else None,
    )


def restore(state: State, ctl: Any) -> int:
    """After tor (re)starts: re-add persistent services, forget ephemeral ones."""
    from fogctl.tor.onion import parse_port_map

    db = _db(state)
    active = _active(ctl)
    count = 0
    for row in db.query("SELECT * FROM tor_onions"):
        if not row["persistent"]:
            if row["address"] not in active:
                with db.transaction() as conn:
                    conn.execute("DELETE FROM tor_onions WHERE address = ?", (row["address"],))
            continue
        if row["address"] in active:
            continue
        seed, pub = load_seed(Path(row["key_file"]))
        if onion_address(pub) != row["address"]:
            raise StateError(f"{row['key_file']}: key does not match {row['address']}")
        ports = [parse_port_map(p) for p in json.loads(row["ports"])]
        blob = base64.b64encode(expand_seed(seed)).decode()
        # Wait for publication: HSDirs still hold the previous instance's descriptor.
        try:
            _add_onion(ctl, "ED25519-V3", blob, ports, True, 30.0)
        except OperationFailed as exc:
            if "not published" not in exc.message:
                raise
        count += 1
    return count
