"""fogctl tor: a real tor daemon under fogctl's control, onion services, a private testnet.

Public API (cheap to import; stem loads only when a function needs it):

* :func:`open_connection` / :func:`connect`: TCP through tor's SOCKS5 with stream
  isolation per destination (``via="tor"``), or direct (``via="direct"``).
* :func:`onion_address`: the v3 ``.onion`` address of an ed25519 public key.
* :mod:`fogctl.tor.daemon`: ``up``, ``status``, ``down``, ``circuits``, ``newnym``,
  onion ``add``/``ls``/``rm`` for a managed or attached tor.
* :mod:`fogctl.tor.testnet`: a private Tor network on 127.0.0.1.
"""

from __future__ import annotations

from fogctl.tor.onion import onion_address, parse_port_map
from fogctl.tor.route import connect, open_connection, resolve_via

__all__ = [
    "connect",
    "onion_address",
    "open_connection",
    "parse_port_map",
    "resolve_via",
]
