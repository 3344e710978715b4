"""Who may put packets into the network: registered clients and directory nodes only."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from fogctl.errors import Refused
from fogctl.mix import sphinx
from fogctl.mix.localnet import start_local_network
from fogctl.mix.net import (
    OP_REGISTER,
    OP_SUBMIT,
    ClientRegistry,
    read_allow_list,
    register_request,
    request,
    submit,
    submit_request,
)
from fogctl.mix.node import Params
from fogctl.mix.primitives import x25519, x25519_base
from fogctl.mix.records import MixDescriptor


def _packet(mix: MixDescriptor, prov: MixDescriptor) -> bytes:
    hops = [
        sphinx.Hop(bytes.fromhex(prov.id), bytes.fromhex(prov.public_key), 0),
        sphinx.Hop(bytes.fromhex(mix.id), bytes.fromhex(mix.public_key), 0),
        sphinx.Hop(bytes.fromhex(prov.id), bytes.fromhex(prov.public_key), 0),
    ]
    return sphinx.create_forward(hops, bytes(20), os.urandom(16), b"", os.urandom)


async def _until(cond: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        await asyncio.sleep(0.01)
    return bool(cond())


def test_provider_takes_packets_only_from_registered_clients_and_directory_nodes(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        net = await start_local_network(
            tmp_path, layers=1, providers=1, params=Params(hops=1, lambda_m=0)
        )
        try:
            prov = net.providers[0]
            mix = next(d for d in net.descriptors if d.layer == 1)
            svc = net.service(prov.id)
            c = svc.core.counters
            port, pkey = svc.port, bytes.fromhex(prov.public_key)
            alice = os.urandom(32)
            apub = x25519_base(alice)
            shared = x25519(alice, pkey)

            # a bare packet (the old, open SUBMIT) and a tagged one before REGISTER
            with pytest.raises(Refused, match="REGISTER first"):
                await request("127.0.0.1", port, OP_SUBMIT, _packet(mix, prov))
            body = submit_request(shared, apub, time.time(), _packet(mix, prov))
            with pytest.raises(Refused, match="REGISTER first"):
                await request("127.0.0.1", port, OP_SUBMIT, body)
            assert c["submit_unregistered"] == 2 and c["received"] == 0

            # REGISTER needs the key's owner: mallory cannot register alice's key
            mallory = os.urandom(32)
            forged = apub + register_request(mallory, apub, pkey, time.time())[32:]
            with pytest.raises(Refused, match="authentication failed"):
                await request("127.0.0.1", port, OP_REGISTER, forged)
            assert c["register_refused"] == 1

            await request(
                "127.0.0.1", port, OP_REGISTER, register_request(alice, apub, pkey, time.time())
            )
            assert apub in svc.clients
            # registered, but the packet is not alice's (tag over another packet),
            # or the tag is stale: refused and counted
            other = submit_request(shared, apub, time.time(), _packet(mix, prov))
            spliced = other[:72] + _packet(mix, prov)
            stale = submit_request(shared, apub, time.time() - 3600, _packet(mix, prov))
            for bad in (spliced, stale):
                with pytest.raises(Refused, match="SUBMIT authentication failed"):
                    await request("127.0.0.1", port, OP_SUBMIT, bad)
            assert c["submit_bad_auth"] == 2 and c["received"] == 0

            # alice's own packets go in and come back through the mix to the provider
            assert await submit("127.0.0.1", port, [_packet(mix, prov)], alice, pkey) == 1
            assert await _until(lambda: c["received"] == 2 and c["drop_cover_absorbed"] == 1)

            # UDP straight at the provider from outside the directory is dropped, counted
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.2", 0))
                s.sendto(_packet(mix, prov), ("127.0.0.1", port))
            assert await _until(lambda: c["dropped_unknown_source"] == 1)
            assert c["received"] == 3 and c["drop_cover_absorbed"] == 1
        finally:
            await net.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_registrations_persist_and_an_allow_list_limits_them(tmp_path: Path) -> None:
    a, b = os.urandom(32), os.urandom(32)
    allow = tmp_path / "allow.txt"
    allow.write_text(f"# our users\n{a.hex()}@{'00' * 20}\n")
    allowed = read_allow_list(allow)
    reg = ClientRegistry(tmp_path / "clients.txt", allowed)
    reg.add(a)
    with pytest.raises(Refused, match="allow-list"):
        reg.add(b)
    again = ClientRegistry(tmp_path / "clients.txt", allowed)
    assert a in again and b not in again
    # dropped from the allow-list later: no longer served though once registered
    assert a not in ClientRegistry(tmp_path / "clients.txt", set())
    bad = tmp_path / "bad.txt"
    bad.write_text("xyz\n")
    from fogctl.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"bad\.txt:1"):
        read_allow_list(bad)


def test_serve_refuses_a_bad_allow_list(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "clients.txt"
    bad.write_text("not a key\n")
    res = cli("mix", "serve", "--provider", "--port", "0", "--clients", str(bad))
    assert res.code == 2 and "clients.txt:1" in res.stderr and "Traceback" not in res.stderr


def test_directory_hosts_stand_for_their_addresses() -> None:
    from fogctl.mix.net import _addresses_of

    assert _addresses_of("127.0.0.1") == {"127.0.0.1"}
    assert _addresses_of("::1") == {"::1"}
    assert _addresses_of("localhost") & {"127.0.0.1", "::1"}
    assert _addresses_of("name.invalid") == set()  # unresolvable: nobody is let in by it


def test_serve_refuses_an_unknown_transport(cli: Any) -> None:
    res = cli("mix", "serve", "--layer", "1", "--port", "0", "--transport", "pigeon")
    assert res.code == 2 and "udp or tcp" in res.stderr and "Traceback" not in res.stderr
