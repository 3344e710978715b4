"""Neighbour discovery by mDNS/DNS-SD (``zeroconf``): announce this node's TCPCL
listener as ``NAME._dtn-tcpcl._tcp.local.`` (TXT ``node=dtn://NAME/``) and report
the others found on the link."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE = "_dtn-tcpcl._tcp.local."

__all__ = ["SERVICE", "Mdns"]


class Mdns:
    def __init__(
        self, name: str, host: str, port: int, found: Callable[[str, str, int], None]
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.found = found
        self.azc: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        ip = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        interfaces: Any = [ip] if ipaddress.ip_address(ip).is_loopback else None
        self.azc = (
            AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            if interfaces
            else AsyncZeroconf(ip_version=IPVersion.V4Only)
        )
        info = AsyncServiceInfo(
            SERVICE,
            f"{self.name}.{SERVICE}",
            addresses=[socket.inet_aton(ip)],
            port=self.port,
            properties={"node": f"dtn://{self.name}/"},
            server=f"{self.name}.local.",
        )
        await self.azc.async_register_service(info)
        self.browser = AsyncServiceBrowser(self.azc.zeroconf, SERVICE, handlers=[self._on_change])

    def _on_change(
        self, zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Added:
            return
        t = asyncio.ensure_future(self._resolve(service_type, name))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        assert self.azc is not None
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self.azc.zeroconf, 3000):
            return
        node = ((info.properties or {}).get(b"node") or b"").decode(errors="replace")
        if not node.startswith("dtn://"):
            return
        addrs = info.parsed_addresses(IPVersion.V4Only)
        if addrs and info.port:
            self.found(node[6:].split("/", 1)[0], addrs[0], info.port)

    async def async_close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self.browser is not None:
            with contextlib.suppress(Exception):
                await self.browser.async_cancel()
        if self.azc is not None:
            await self.azc.async_close()
