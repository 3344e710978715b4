"""Run by the pyd3tn virtual environment's Python (not collected by pytest).

    pyd3tn_peer.py send PORT DEST TEXT   send one BPv7 bundle over MTCP to 127.0.0.1:PORT
    pyd3tn_peer.py recv PORT              accept one MTCP connection, print the bundle

``recv`` prints one JSON object: the bundle's hex, its payload, and pyd3tn's own
re-serialisation of it (same CBOR and CRCs; pyd3tn may reorder extension blocks).
"""

import json
import socket
import sys

from pyd3tn.bundle7 import Bundle, serialize_bundle7
from pyd3tn.mtcp import MTCPConnection, MTCPSocket


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "send":
        dest, text = sys.argv[3], sys.argv[4]
        data = serialize_bundle7("dtn://ud3tn/", dest, text.encode(), hop_limit=7, bundle_age=0)
        with MTCPConnection("127.0.0.1", port, timeout=10) as conn:
            conn.send_bundle(data)
        print(json.dumps({"sent": data.hex()}), flush=True)
        return
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(30)
    print(json.dumps({"listening": srv.getsockname()[1]}), flush=True)
    conn, _ = srv.accept()
    with MTCPSocket(conn, timeout=10) as s:
        data = s.recv_bundle()
    b = Bundle.parse(data)
    print(
        json.dumps(
            {
                "bundle": data.hex(),
                "payload": bytes(b.payload_block.data).hex(),
                "reserialized": bytes(b).hex(),
                "destination": str(b.primary_block.destination),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
