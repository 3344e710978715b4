"""Records of ``fogctl tor``: what its commands write, one JSON object per line."""

from __future__ import annotations

import dataclasses

from fogctl.records import Record, record

__all__ = [
    "CircuitHop",
    "CircuitRecord",
    "OnionRecord",
    "TestnetNodeRecord",
    "TestnetRecord",
    "TorRecord",
]


@record("tor")
class TorRecord(Record):
    """The tor daemon fogctl controls (``fogctl tor up/status/down``).

    ``state`` is ``running``, ``bootstrapping``, ``stopped`` or ``crashed`` (a managed
    tor whose process died without ``fogctl tor down``). ``managed`` is false when
    attached to a tor fogctl did not start. ``bootstrap`` is 0..100; ``socks`` is the
    SOCKS5 listener (HOST:PORT); ``circuits`` counts built circuits.
    """

    state: str
    managed: bool = True
    version: str | None = None
    pid: int | None = None
    bootstrap: int | None = None
    summary: str | None = None
    socks: str | None = None
    control: str | None = None
    circuits: int | None = None
    circuit_established: bool | None = None
    data_dir: str | None = None
    testnet: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitHop:
    """One relay of a circuit's path: its identity fingerprint (hex) and nickname."""

    fingerprint: str
    nickname: str | None = None


@record("circuit")
class CircuitRecord(Record):
    """One tor circuit: ``id``, ``status`` (BUILT, EXTENDED, ...), ``purpose``
    (GENERAL, HS_SERVICE_INTRO, ...), and ``path``, the hops from guard to exit."""

    id: str
    status: str
    purpose: str | None = None
    path: tuple[CircuitHop, ...] = ()
    build_flags: tuple[str, ...] = ()
    created: str | None = None


@record("onion")
class OnionRecord(Record):
    """A v3 onion service: ``address`` (with .onion), its ``ports`` (``VIRT:HOST:PORT``),
    ``persistent`` (key kept in the state dir's keys/), ``active`` (published by tor now).
    Private keys never appear in a record."""

    address: str
    ports: tuple[str, ...] = ()
    persistent: bool = False
    active: bool = True
    key_file: str | None = None


@record("testnet")
class TestnetRecord(Record):
    """A private Tor network on loopback (``fogctl tor testnet``). ``socks`` is its
    client's SOCKS5 listener; ``ready_s`` the seconds from launch to a usable network."""

    directory: str
    state: str
    nodes: int
    running: int
    authorities: int
    relays: int
    exits: int
    socks: str | None = None
    control: str | None = None
    ready_s: float | None = None


@record("testnet_node")
class TestnetNodeRecord(Record):
    """One tor of a private network: role (authority, relay, exit, client), ports,
    fingerprint, and whether its process runs (``log`` holds its last line if not)."""

    name: str
    role: str
    running: bool
    pid: int | None = None
    fingerprint: str | None = None
    or_port: int | None = None
    dir_port: int | None = None
    control_port: int | None = None
    socks_port: int | None = None
    log: str | None = None
