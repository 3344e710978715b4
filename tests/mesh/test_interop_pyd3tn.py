"""Interoperability with pyD3TN (uD3TN's Python library) over MTCP, for real on loopback.

pyd3tn pins an older cbor2, so it lives in its own virtual environment, named by
``PYD3TN_PYTHON`` (CI creates it; see the mesh section of the CI notes). A
fixed pyd3tn bundle (CRC-32C primary, CRC-16 blocks) is also kept as a vector file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from fogctl.mesh import api
from fogctl.mesh.bundle import decode_bundle, encode_bundle
from fogctl.state import State
from tests.conftest import need
from tests.mesh.conftest import Proc, fog, poll_until

HERE = Path(__file__).parent
VECTOR = HERE / "vectors" / "pyd3tn-0.15.2-crc32c-crc16.hex"


def pyd3tn_python() -> str:
    exe = os.environ.get("PYD3TN_PYTHON", "")
    need(bool(exe) and Path(exe).is_file(), "PYD3TN_PYTHON must name a Python with pyd3tn")
    return exe


def test_pyd3tn_vector_decodes_and_reencodes_byte_for_byte() -> None:
    raw = bytes.fromhex(VECTOR.read_text().strip())
    b = decode_bundle(raw)  # checks pyd3tn's CRC-32C and CRC-16 values
    assert (b.primary.crc_type, {x.crc_type for x in b.blocks}) == (2, {1})
    assert b.payload == b"hello from pyd3tn" and b.hop_count == (7, 0) and b.age == 0
    assert encode_bundle(b) == raw


def test_pyd3tn_sends_to_fogctl_and_receives_from_it(tmp_path: Path, procs: list[Proc]) -> None:
    py = pyd3tn_python()
    home = tmp_path / "fog"
    assert fog(home, "init").returncode == 0
    # pyd3tn -> fogctl over MTCP
    recv = subprocess.Popen(
        [py, str(HERE / "pyd3tn_peer.py"), "recv", "0"], stdout=subprocess.PIPE, text=True
    )
    assert recv.stdout is not None
    port_back = json.loads(recv.stdout.readline())["listening"]
    assert (
        fog(
            home,
            "mesh",
            "send",
            "--to",
            "dtn://ud3tn/",
            "--plain",
            "--name",
            "fog",
            input=b"hello from fogctl",
        ).returncode
        == 0
    )
    node = Proc(
        home,
        "--name",
        "fog",
        "--tcpcl",
        "off",
        "--mtcp",
        "127.0.0.1:0",
        "--peer",
        f"mtcp://127.0.0.1:{port_back}/ud3tn",
    )
    procs.append(node)
    port = node.port("mtcp")
    out = subprocess.run(
        [
            py,
            str(HERE / "pyd3tn_peer.py"),
            "send",
            str(port),
            "dtn://fog/inbox",
            "hello from pyd3tn",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr

    def inbox() -> list[object]:
        st = State(home)
        try:
            return list(api.inbox(st))
        finally:
            st.close()

    msgs = poll_until(inbox)
    assert isinstance(msgs, list)
    rec, data = api.read(State(home), msgs[0].id)  # type: ignore[attr-defined]
    assert data == b"hello from pyd3tn" and rec.sender == "dtn://ud3tn/"
    # fogctl -> pyd3tn over MTCP: pyd3tn parses our bundle and re-serialises it with the
    # same primary block (same CRC-32C) and the same blocks (it may reorder extensions)
    got = json.loads(recv.communicate(timeout=30)[0].strip().splitlines()[-1])
    assert got["destination"] == "dtn://ud3tn/inbox"
    ours = decode_bundle(bytes.fromhex(got["bundle"]))
    theirs = decode_bundle(bytes.fromhex(got["reserialized"]))  # their CRCs check out
    assert theirs.primary == ours.primary
    assert sorted(theirs.blocks, key=lambda x: x.number) == sorted(
        ours.blocks, key=lambda x: x.number
    )
    assert ours.hop_count == (7, 1) and str(ours.previous_node) == "dtn://fog/"
    import cbor2

    assert cbor2.loads(bytes.fromhex(got["payload"])) == [0, b"hello from fogctl"]
