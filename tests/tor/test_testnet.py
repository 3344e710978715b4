"""The private Tor network, for real: a 3-hop circuit carries an HTTP fetch to 127.0.0.1."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from tests.tor.conftest import HttpServer, http_get, poll


def test_network_came_up_fast_and_reports_itself(testnet: Any, cli: Any) -> None:
    assert testnet.ready_s < 60
    res = cli("tor", "testnet", "status", "--dir", str(testnet.directory), "--nodes", "--json")
    assert res.code == 0, res.stderr
    net, *nodes = res.records()
    assert net["kind"] == "testnet" and net["state"] == "running"
    assert net["running"] == net["nodes"] == len(nodes) == 6
    roles = sorted(n["role"] for n in nodes)
    assert roles == ["authority"] * 3 + ["client", "exit", "relay"]
    assert all(n["running"] for n in nodes)


def test_three_hop_circuit_fetches_from_local_http(testnet: Any, http_server: HttpServer) -> None:
    from fogctl.tor.control import open_controller
    from fogctl.tor.socks import connect

    ctl = open_controller(("127.0.0.1", testnet.client.control_port))
    streams: queue.Queue[Any] = queue.Queue()
    try:
        ctl.add_event_listener(streams.put, "STREAM")

        def fetch() -> bytes:
            return http_get(
                lambda: connect(testnet.socks, "127.0.0.1", http_server.port, timeout=10),
                "127.0.0.1",
            )

        body = poll(fetch, timeout=30, what="fetch through the testnet")
        assert body == http_server.body
        found: list[str] = []

        def succeeded() -> bool:  # events arrive on stem's thread, maybe after the fetch
            while not streams.empty():
                ev = streams.get()
                if ev.status == "SUCCEEDED" and int(ev.target_port) == http_server.port:
                    found.append(ev.circ_id)
            return bool(found)

        poll(succeeded, timeout=5, what="a SUCCEEDED stream event", interval=0.05)
        circ_id = found[-1]
        circuit = next(c for c in ctl.get_circuits() if c.id == circ_id)
        names = [nick for _, nick in circuit.path]
        exits = {n.name for n in testnet.nodes if n.role == "exit"}
        assert len(circuit.path) == 3, names
        assert names[-1] in exits
        assert len(set(names)) == 3
    finally:
        ctl.close()


def test_testnet_up_again_is_a_no_op(testnet: Any) -> None:
    from fogctl.tor import testnet as tn

    pids = [n.pid for n in testnet.nodes]
    rec = tn.testnet_up(testnet.directory, relays=2)
    assert rec.state == "running"
    assert [n.pid for n in tn.load(testnet.directory).nodes] == pids


def test_testnet_down_without_network_is_a_state_error(cli: Any, tmp_path: Path) -> None:
    res = cli("tor", "testnet", "down", "--dir", str(tmp_path / "none"))
    assert res.code == 1
    assert "no private Tor network" in res.stderr
    assert "Traceback" not in res.stderr


def test_stream_isolation_per_destination(testnet: Any, http_server: HttpServer) -> None:
    """Streams to different destinations ride different circuits (SOCKS auth isolation)."""
    import socket
    import threading

    from fogctl.tor.control import open_controller
    from fogctl.tor.socks import connect

    other = socket.create_server(("127.0.0.1", 0))
    other_port = other.getsockname()[1]

    def answer() -> None:
        for _ in range(5):
            try:
                conn, _ = other.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nother")

    threading.Thread(target=answer, daemon=True).start()
    ctl = open_controller(("127.0.0.1", testnet.client.control_port))
    streams: queue.Queue[Any] = queue.Queue()
    try:
        ctl.add_event_listener(streams.put, "STREAM")
        for port in (http_server.port, other_port):
            poll(
                lambda port=port: http_get(
                    lambda: connect(testnet.socks, "127.0.0.1", port, timeout=10), "127.0.0.1"
                ),
                timeout=30,
                what=f"fetch from port {port}",
            )
        circuits: dict[int, set[str]] = {}

        def both_seen() -> bool:  # events arrive on stem's thread, maybe after the fetch
            while not streams.empty():
                ev = streams.get()
                if ev.status == "SUCCEEDED":
                    circuits.setdefault(int(ev.target_port), set()).add(ev.circ_id)
            return http_server.port in circuits and other_port in circuits

        poll(both_seen, timeout=5, what="STREAM events for both fetches", interval=0.05)
        assert not circuits[http_server.port] & circuits[other_port]
    finally:
        ctl.close()
        other.close()
