"""The shared ``--via`` path for any TCP connection fogctl makes (job dispatch, fetches).

``via`` is ``"direct"`` (or None), ``"tor"`` (the SOCKS port of the tor fogctl runs, or
``tor.socks`` from config / ``FOGCTL_TOR_SOCKS``), or ``"socks5://HOST:PORT"``. Through
tor, every destination gets its own circuit (SOCKS auth isolation, see
:mod:`fogctl.tor.socks`), and host names are resolved by tor, never locally.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from fogctl.errors import InvalidInput, ServiceUnavailable
from fogctl.hostport import parse_hostport
from fogctl.tor import socks

__all__ = ["DAEMON_FILE", "connect", "open_connection", "resolve_via"]

DAEMON_FILE = "daemon.json"


def managed_socks(state_root: Path) -> tuple[str, int] | None:
    """The SOCKS address recorded by ``fogctl tor up`` in the state dir, if any."""
    try:
        data = json.loads((state_root / "tor" / DAEMON_FILE).read_text())
    except (OSError, ValueError):
        return None
    value = data.get("socks") if isinstance(data, dict) else None
    return parse_hostport(value, what="socks") if isinstance(value, str) else None


def resolve_via(via: str | None, state_root: Path | None = None) -> tuple[str, int] | None:
    """The SOCKS5 proxy for ``via``; None means connect directly."""
    if via is None or via == "direct":
        return None
    if via.startswith("socks5://") or via.startswith("socks5h://"):
        return parse_hostport(via.split("://", 1)[1].rstrip("/"), what="--via")
    if via != "tor":
        raise InvalidInput(f"--via: {via!r} is not direct, tor or socks5://HOST:PORT")
    from fogctl.state import State

    state = State(state_root) if state_root is not None else State()
    configured = state.config.get("tor.socks")
    if configured:
        return parse_hostport(str(configured), what="tor.socks")
    found = managed_socks(state.root)
    if found is None:
        raise ServiceUnavailable(
            "no tor SOCKS port known", hint="run 'fogctl tor up' or set FOGCTL_TOR_SOCKS"
        )
    return found


def connect(
    host: str,
    port: int,
    *,
    via: str | None = "tor",
    timeout: float = 60.0,
    isolation: str | None = None,
    state_root: Path | None = None,
) -> socket.socket:
    """A connected blocking socket to ``host:port``, through tor unless ``via="direct"``."""
    proxy = resolve_via(via, state_root)
    if proxy is None:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ServiceUnavailable(f"{host}:{port} unreachable: {exc.strerror or exc}") from None
    return socks.connect(proxy, host, port, timeout=timeout, isolation=isolation)


async def open_connection(
    host: str,
    port: int,
    *,
    via: str | None = "tor",
    isolation: str | None = None,
    state_root: Path | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`asyncio.open_connection`, through tor unless ``via="direct"``."""
    proxy = resolve_via(via, state_root)
    if proxy is None:
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            raise ServiceUnavailable(f"{host}:{port} unreachable: {exc.strerror or exc}") from None
    return await socks.open_connection(proxy, host, port, isolation=isolation)
