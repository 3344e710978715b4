"""Reach a peer through tor from Python, the way fogctl's own commands do.

    fogctl tor up                      # or: export FOGCTL_TOR_SOCKS=127.0.0.1:9050
    python examples/tor-via.py HOST.onion 80

Each destination gets its own circuit (SOCKS auth isolation); the name is resolved by
tor, never by the local resolver. via="direct" skips tor, "socks5://HOST:PORT" names
another proxy.
"""

from __future__ import annotations

import asyncio
import sys

from fogctl.tor import open_connection


async def main(host: str, port: int) -> None:
    reader, writer = await open_connection(host, port, via="tor")
    writer.write(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    print((await reader.read(4096)).decode(errors="replace").splitlines()[0])
    writer.close()
    await writer.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
