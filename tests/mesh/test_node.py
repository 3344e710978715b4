"""Real nodes on loopback: `fogctl mesh serve` processes exchanging bundles over TCPCLv4,
MTCP and UDP. The issue's done-when: A -> B -> C, A and C never connected, B stopped
and restarted while carrying the encrypted message."""

from __future__ import annotations

from pathlib import Path

from fogctl.mesh import api
from fogctl.state import State
from tests.mesh.conftest import Proc, fog, poll_until, records


def inbox(home: Path) -> list[dict[str, object]]:
    st = State(home)
    try:
        return [m.to_dict() for m in api.inbox(st)]
    finally:
        st.close()


def held(home: Path) -> set[str]:
    st = State(home)
    try:
        return {b.id for b in api.bundles(st)}
    finally:
        st.close()


def init(tmp: Path, name: str) -> Path:
    home = tmp / name
    assert fog(home, "init", "--json").returncode == 0
    (home / "config.yaml").write_text(f"mesh:\n  name: {name}\n")
    return home


def test_three_nodes_carry_encrypted_message_across_restart(
    tmp_path: Path, procs: list[Proc]
) -> None:
    a, b, c = (init(tmp_path, n) for n in "abc")
    key = fog(c, "mesh", "keys", "publish", "--json")
    assert key.returncode == 0
    (tmp_path / "c.key").write_bytes(key.stdout)
    assert fog(a, "mesh", "keys", "trust", str(tmp_path / "c.key"), "--json").returncode == 0
    sent = fog(a, "mesh", "send", "--to", "dtn://c/", "--json", input=b"the eagle lands at dawn")
    assert sent.returncode == 0, sent.stderr
    bid = records(sent)[0]["id"]

    pa = Proc(a, "--tcpcl", "127.0.0.1:0")
    procs.append(pa)
    port_a = pa.port()
    pb = Proc(b, "--tcpcl", "127.0.0.1:0", "--peer", f"tcpcl://127.0.0.1:{port_a}")
    procs.append(pb)
    # TCPCLv4 over TLS 1.3 by default, both node IDs authenticated
    pb.wait_for(r"contact with dtn://a/ .*\(TLS 1\.3, node ID authenticated\)")
    poll_until(lambda: bid in held(b))
    raw = fog(b, "mesh", "bundles", "--json")
    assert b"eagle" not in raw.stdout
    assert pb.stop() == 0  # SIGTERM: clean stop, bundle already durable
    assert any("stopped" in line for line in pb.lines)

    pc = Proc(c, "--tcpcl", "127.0.0.1:0")
    procs.append(pc)
    port_c = pc.port()
    pb2 = Proc(b, "--tcpcl", "127.0.0.1:0", "--peer", f"tcpcl://127.0.0.1:{port_c}")
    procs.append(pb2)
    got_inbox = poll_until(lambda: inbox(c))
    assert isinstance(got_inbox, list)
    msg = got_inbox[0]
    assert msg["sender"] == "dtn://a/" and msg["encrypted"] is True
    got = fog(c, "mesh", "read", str(msg["id"]))
    assert got.returncode == 0 and got.stdout == b"the eagle lands at dawn"
    # A and C never had a contact with each other
    assert not any("dtn://c/" in line for line in pa.lines)
    assert not any("dtn://a/" in line for line in pc.lines)
    peers_c = {
        (r["node"], r["convergence_layer"]) for r in records(fog(c, "mesh", "peers", "--json"))
    }
    assert peers_c == {("dtn://b/", "tcpcl+tls")}


def test_mtcp_and_udp_delivery(tmp_path: Path, procs: list[Proc]) -> None:
    a, d = init(tmp_path, "a"), init(tmp_path, "d")
    pd = Proc(d, "--tcpcl", "off", "--mtcp", "127.0.0.1:0", "--udp", "127.0.0.1:0")
    procs.append(pd)
    mport, uport = pd.port("mtcp"), pd.port("udp")
    # garbage from the network is dropped and counted, never fatal
    import socket

    with socket.create_connection(("127.0.0.1", mport)) as s:
        s.sendall(b"\x45\x9f\x00\x01\x02\xff")  # an MTCP frame holding a broken bundle
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"\x9f\x88not a bundle", ("127.0.0.1", uport))
    pd.wait_for(r"dropped so far: cbor=2")
    for text in (b"over mtcp", b"over udp"):
        assert fog(a, "mesh", "send", "--to", "dtn://d/", "--plain", input=text).returncode == 0
    pa = Proc(a, "--tcpcl", "off", "--udp", "127.0.0.1:0", "--peer", f"mtcp://127.0.0.1:{mport}/d")
    procs.append(pa)
    poll_until(lambda: len(inbox(d)) == 2)
    pa.stop()
    assert (
        fog(
            a, "mesh", "send", "--to", "dtn://d/", "--plain", "--fragment", "100", input=b"u" * 1000
        ).returncode
        == 0
    )
    pa2 = Proc(a, "--tcpcl", "off", "--udp", "127.0.0.1:0", "--peer", f"udp://127.0.0.1:{uport}/d")
    procs.append(pa2)
    poll_until(lambda: len(inbox(d)) == 3)
    msgs = inbox(d)
    sizes = sorted(int(m["size"]) for m in msgs)  # type: ignore[call-overload]
    assert sizes == [8, 9, 1000]
    assert pd.stop() == 0
    st = State(d)
    try:
        assert api._agent(st).drop_totals() == {"cbor": 2}  # persisted across the stop
    finally:
        st.close()


def test_mdns_discovery_on_loopback(tmp_path: Path, procs: list[Proc]) -> None:
    import secrets

    tag = secrets.token_hex(3)
    x, y = init(tmp_path, f"x{tag}"), init(tmp_path, f"y{tag}")
    assert (
        fog(x, "mesh", "send", "--to", f"dtn://y{tag}/", "--plain", input=b"found you").returncode
        == 0
    )
    px = Proc(x, "--tcpcl", "127.0.0.1:0", "--mdns")
    py = Proc(y, "--tcpcl", "127.0.0.1:0", "--mdns")
    procs += [px, py]
    px.wait_for(rf"discovered dtn://y{tag}/")
    poll_until(lambda: len(inbox(y)) == 1)
    assert inbox(y)[0]["sender"] == f"dtn://x{tag}/"


def test_receiver_killed_mid_stream_loses_nothing(tmp_path: Path, procs: list[Proc]) -> None:
    """Group commit keeps the guarantee: b acknowledges a bundle only after it is
    committed, so a SIGKILL of b mid-stream loses nothing; a keeps whatever b had not
    acknowledged, and after b restarts every message arrives exactly once."""
    from fogctl.mesh.agent import dtn_now

    a, b = init(tmp_path, "a"), init(tmp_path, "b")
    n = 300
    st = State(a)
    try:
        agent = api._agent(st)
        with agent.store.batch():
            for i in range(n):
                body = i.to_bytes(2, "big") * 60_000  # 120 kB: a stream of about 36 MB
                agent.send("dtn://b/", body, now=dtn_now(), encrypt=False)
    finally:
        st.close()
    pa = Proc(a, "--tcpcl", "127.0.0.1:0")
    procs.append(pa)
    port = pa.port()
    pb = Proc(b, "--tcpcl", "off", "--peer", f"tcpcl://127.0.0.1:{port}")
    procs.append(pb)
    poll_until(lambda: len(inbox(b)) >= 1, timeout=20)
    pb.p.kill()  # SIGKILL: no clean shutdown
    pb.p.wait(10)
    got = len(inbox(b))
    assert 0 < got < n  # killed mid-stream
    assert len(held(a)) + got >= n  # nothing acknowledged was lost in between
    pb2 = Proc(b, "--tcpcl", "off", "--peer", f"tcpcl://127.0.0.1:{port}")
    procs.append(pb2)
    try:
        poll_until(lambda: len(inbox(b)) == n and not held(a), timeout=30)
    except AssertionError:
        raise AssertionError(
            f"b has {len(inbox(b))}/{n}, a holds {len(held(a))}\n"
            + "\n".join(pa.lines[-15:] + pb.lines[-5:] + pb2.lines[-15:])
        ) from None
    st = State(b)
    try:
        bodies = {api.read(st, str(m["id"]))[1][:2] for m in inbox(b)}
    finally:
        st.close()
    assert bodies == {i.to_bytes(2, "big") for i in range(n)}
