"""Local discovery: advertise and browse DHT nodes on the LAN with mDNS/DNS-SD (zeroconf).

Service type ``_fogctl-dht._udp.local.``; the TXT record carries the node id and
Ed25519 key. A discovered node is only a hint: it enters a routing table after it
signs a ping nonce with that key, like any other contact.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["SERVICE", "Advertiser", "Found", "browse"]

SERVICE = "_fogctl-dht._udp.local."


@dataclass(frozen=True, slots=True)
class Found:
    id: str
    host: str
    port: int
    key: str


def _info(node_id: str, key: str, host: str, port: int) -> Any:
    from zeroconf import ServiceInfo

    return ServiceInfo(
        SERVICE,
        f"fogctl-{node_id[:16]}.{SERVICE}",
        addresses=[socket.inet_aton(host)],
        port=port,
        properties={"id": node_id, "key": key},
        server=f"fogctl-{node_id[:16]}.local.",
    )


def _interfaces(host: str) -> Any:
    from zeroconf import InterfaceChoice

    return [host] if host not in ("0.0.0.0", "") else InterfaceChoice.All


class Advertiser:
    """Registers this node's service while a DHT node serves."""

    def __init__(self, node_id: str, key: str, host: str, port: int) -> None:
        self.node_id, self.key, self.host, self.port = node_id, key, host, port
        self.zc: Any = None
        self.info: Any = None

    async def start(self) -> None:
        from zeroconf.asyncio import AsyncZeroconf

        self.zc = AsyncZeroconf(interfaces=_interfaces(self.host))
        self.info = _info(self.node_id, self.key, self.host, self.port)
        await self.zc.async_register_service(self.info)

    async def stop(self) -> None:
        if self.zc is not None:
            if self.info is not None:
                await self.zc.async_unregister_service(self.info)
            await self.zc.async_close()


def _parse(info: Any) -> Found | None:
    props = {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else v
        )
        for k, v in (info.properties or {}).items()
    }
    nid, key = props.get("id"), props.get("key")
    if not isinstance(nid, str) or not isinstance(key, str) or len(nid) != 40:
        return None
    try:
        if hashlib.sha256(bytes.fromhex(key)).digest()[:20].hex() != nid:
            return None  # the id must be bound to the advertised key
    except ValueError:
        return None
    addrs = info.parsed_addresses()
    if not addrs or not info.port:
        return None
    try:
        ipaddress.ip_address(addrs[0])
    except ValueError:
        return None
    return Found(nid, addrs[0], int(info.port), key)


async def browse(
    timeout: float = 3.0, *, interface: str = "0.0.0.0", exclude: str = ""
) -> list[Found]:
    """Browse the LAN for ``timeout`` seconds; each distinct node once."""
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    zc = AsyncZeroconf(interfaces=_interfaces(interface))
    names: set[str] = set()

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.add(name)

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE, handlers=[on_change])
    found: dict[str, Found] = {}
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            await asyncio.sleep(0.1)
            for name in list(names):
                info = AsyncServiceInfo(SERVICE, name)
                if await info.async_request(zc.zeroconf, 500):
                    got = _parse(info)
                    if got is not None and got.id != exclude:
                        found[got.id] = got
                names.discard(name)
    finally:
        await browser.async_cancel()
        await zc.async_close()
    return sorted(found.values(), key=lambda f: f.id)
