"""fogctl dht: a Kademlia network with signed records, gossip, NAT traversal, discovery.

Built on the ``kademlia`` package (asyncio, UDP) and extended where it falls short:
:mod:`fogctl.dht.protocol` (hardened RPCs), :mod:`fogctl.dht.storage` (verified,
persisted values), :mod:`fogctl.dht.crawl` (lookups that do not wait on dead peers),
:mod:`fogctl.dht.server` (the node), :mod:`fogctl.dht.envelope` and
:mod:`fogctl.dht.wire` (sans-IO cores), :mod:`fogctl.dht.gossip` (pub/sub),
:mod:`fogctl.dht.stun` (NAT discovery), :mod:`fogctl.dht.service` (the engine
functions the CLI calls). Importing this package loads nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []
