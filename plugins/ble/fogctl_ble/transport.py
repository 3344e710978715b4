"""The radio side, on bleak (a BLE *central*): scan for peripherals advertising the
fogctl DTN service, connect, subscribe to their TX characteristic (bundles to us),
write our bundles for them to their RX characteristic.

GATT layout (what a peripheral -- phone app or microcontroller -- must offer):

* service ``6e2a0001-f06c-4c9b-9d3a-2f6d746e0001``
* RX ``6e2a0002-...`` (write without response): chunks of bundles for the peripheral
* TX ``6e2a0003-...`` (notify): chunks of bundles for us
* the advertisement's local name is ``dtn:NAME`` (the peripheral's node name)

bleak cannot act as a GATT server, so two fogctl nodes on Linux cannot reach each
other over BLE with this plugin alone. UNTESTED: no radio in CI; only the framing is.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fogctl.mesh.errors import ProtocolError
from fogctl_ble.framing import Chunker, Reassembler

SERVICE = "6e2a0001-f06c-4c9b-9d3a-2f6d746e0001"
RX = "6e2a0002-f06c-4c9b-9d3a-2f6d746e0001"
TX = "6e2a0003-f06c-4c9b-9d3a-2f6d746e0001"
SCAN_SECONDS = 5.0


class BleTransport:
    name = "ble"

    async def run(self, host: Any, stop: asyncio.Event) -> None:
        try:
            from bleak import BleakClient, BleakScanner  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            host.log("bleak is not installed: pip install fogctl-ble")
            return
        while not stop.is_set():
            try:
                found = await BleakScanner.discover(timeout=SCAN_SECONDS, service_uuids=[SERVICE])
            except Exception as exc:  # no adapter, no permission, ...
                host.log(f"scan failed: {exc}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 30)
                continue
            for dev in found:
                name = dev.name or ""
                if not name.startswith("dtn:") or stop.is_set():
                    continue
                peer = f"dtn://{name[4:]}/"
                try:
                    async with BleakClient(dev) as client:
                        await self._session(client, peer, host)
                except Exception as exc:
                    host.log(f"{peer}: {exc}")

    async def _session(self, client: Any, peer: str, host: Any) -> None:
        rx = Reassembler()

        def on_notify(_: Any, data: bytearray) -> None:
            try:
                bundle = rx.feed(bytes(data))
            except ProtocolError as exc:
                host.log(f"{peer}: {exc}")
                return
            if bundle is not None:
                host.deliver(bundle, peer)

        await client.start_notify(TX, on_notify)
        chunker = Chunker(getattr(client, "mtu_size", 23) or 23)
        for bid, raw, drop in host.outgoing(peer):
            for chunk in chunker.chunks(raw):
                await client.write_gatt_char(RX, chunk, response=False)
            host.forwarded(bid, drop)
        await asyncio.sleep(2.0)  # listen for the peripheral's bundles
        await client.stop_notify(TX)
