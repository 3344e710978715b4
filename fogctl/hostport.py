"""One grammar for the ``HOST:PORT`` arguments of every command.

Accepted forms: ``HOST:PORT``, ``[V6]:PORT``, and, where the caller gives a default
port, ``HOST``, ``[V6]`` or a bare IPv6 literal (``::1``); with ``port_alone`` a bare
``PORT`` means ``default_host:PORT``. An empty host is ``default_host``. Ports are
1-65535 (0 too with ``any_port``: "let the kernel choose", for listen addresses).
Anything else is :class:`~fogctl.errors.InvalidInput` naming the argument, never a
traceback. The domains keep their own small wrappers (listen addresses that may be
``off``, DHT addresses that must be IP literals); the parsing lives here.
"""

from __future__ import annotations

import ipaddress

from fogctl.errors import InvalidInput

__all__ = ["format_hostport", "parse_hostport"]


def parse_hostport(
    text: str,
    *,
    what: str = "address",
    default_port: int | None = None,
    default_host: str = "127.0.0.1",
    port_alone: bool = False,
    any_port: bool = False,
    ip_only: bool = False,
) -> tuple[str, int]:
    """``(host, port)`` from ``text`` (see the module docstring for the forms)."""
    value = text.strip()
    port_text: str | None
    if value.startswith("["):
        host, close, rest = value[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise InvalidInput(f"{what}: {text!r} is not HOST:PORT ([V6]:PORT for IPv6)")
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 literal: no port
        host, port_text = value, None
    elif ":" in value:
        host, _, port_text = value.partition(":")
    elif port_alone and value.isascii() and value.isdigit():
        host, port_text = "", value
    else:
        host, port_text = value, None
    if port_text is None:
        if default_port is None:
            raise InvalidInput(f"{what}: {text!r} is not HOST:PORT")
        port = default_port
    else:
        if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
            raise InvalidInput(f"{what}: {text!r}: the port must be a number, 1-65535")
        port = int(port_text)
    if not (0 if any_port else 1) <= port <= 65535:
        lowest = 0 if any_port else 1
        raise InvalidInput(f"{what}: {text!r}: the port must be {lowest}-65535")
    host = host or default_host
    if ip_only:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidInput(
                f"{what}: {text!r}: expected IP:PORT (an IP address, not a name)"
            ) from None
    elif any(c.isspace() or c in "/[]@" for c in host):
        raise InvalidInput(f"{what}: {text!r}: {host!r} is not a host name or address")
    return host, port


def format_hostport(host: str, port: int) -> str:
    """``HOST:PORT``, with an IPv6 literal in brackets (what :func:`parse_hostport` reads)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
