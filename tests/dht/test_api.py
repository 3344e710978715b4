"""fogctl.dht.api, the public client API, against real DHT nodes on loopback.

Two nodes serve (`service.serve`, control sockets and all) in their own state dirs;
the API is used as another domain would: through a serving node's socket, and as a
brief client joining through a bootstrap address.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fogctl.dht import api
from fogctl.errors import InvalidInput, ServiceUnavailable
from fogctl.state import State


class ServingNode:
    """`fogctl dht serve` in a thread (its own event loop and State), stopped on close."""

    def __init__(self, root: Path, bootstrap: list[str] | None = None) -> None:
        from fogctl.dht.service import serve

        self.root = root
        State.create(root)
        self.id = State(root).identity().node_id
        self.address = ""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.error: BaseException | None = None

        def on_ready(server: Any) -> None:
            host, port = server.address
            self.address = f"{host}:{port}"
            ready.set()

        async def main() -> None:
            self._stop = asyncio.Event()
            await serve(
                State(root),
                port=0,
                host="127.0.0.1",
                bootstrap=bootstrap,
                announce=False,
                ready=on_ready,
                stop=self._stop,
            )

        def run() -> None:
            try:
                self._loop.run_until_complete(main())
            except BaseException as exc:  # surfaced by the fixture
                self.error = exc
                ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(20), "DHT node did not start"
        assert self.error is None, self.error

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServingNode]]:
    base = tmp_path_factory.mktemp("dapi")
    a = ServingNode(base / "a")
    b = ServingNode(base / "b", [a.address])
    yield [a, b]
    b.close()
    a.close()


def test_put_through_the_serving_node_get_through_a_brief_join(
    nodes: list[ServingNode], tmp_path: Path
) -> None:
    a, b = nodes
    sa = State(a.root)
    assert api.serving(sa)
    stored = api.put(sa, "test:api/greeting", "hello")
    assert stored.key == "test:api/greeting" and stored.stored_on >= 1 and stored.seq > 0
    # a third party with no node of its own joins briefly through b
    c, _ = State.create(tmp_path / "c")
    assert not api.serving(c)
    [v] = api.get(c, "test:api/greeting", bootstrap=[b.address])
    assert v.text == "hello" and v.value == b"hello" and v.signer_id == a.id
    assert v.seq == stored.seq and v.expiry == stored.expiry
    assert not (tmp_path / "c" / "dht.sock").exists()  # nothing left running
    # a newer put by the same signer replaces its slot; another signer adds one
    api.put(sa, "test:api/greeting", "hello again")
    api.put(c, "test:api/greeting", "hi from c", bootstrap=[b.address])
    got = api.get(State(b.root), "test:api/greeting")
    assert {(x.signer_id, x.text) for x in got} == {
        (a.id, "hello again"),
        (c.identity().node_id, "hi from c"),
    }
    only_a = api.get(State(b.root), "test:api/greeting", signer=a.id)
    assert [x.text for x in only_a] == ["hello again"]
    assert api.get(State(b.root), "test:api/absent") == []


def test_many_keys_in_one_join_and_bad_input(nodes: list[ServingNode], tmp_path: Path) -> None:
    a = nodes[0]
    c, _ = State.create(tmp_path / "c")
    keys = {f"test:api/many/{i}": f"v{i}" for i in range(5)}
    stored = api.put_many(c, dict(keys), bootstrap=[a.address])
    assert [s.key for s in stored] == list(keys) and all(s.stored_on >= 1 for s in stored)
    got = api.get_many(State(a.root), [*keys, "test:api/many/none"])
    assert {k: [v.text for v in vs] for k, vs in got.items()} == {
        **{k: [v] for k, v in keys.items()},
        "test:api/many/none": [],
    }
    with pytest.raises(InvalidInput, match="limit is 4096"):
        api.put(State(a.root), "test:api/big", "x" * 4097)
    with pytest.raises(InvalidInput, match="not UTF-8"):
        api.put(State(a.root), "test:api/bin", b"\xff\xfe")
    with pytest.raises(InvalidInput, match="empty"):
        api.get(State(a.root), "")
    # no node serving and nobody to join: a clear ServiceUnavailable, not a hang
    lonely, _ = State.create(tmp_path / "lonely")
    with pytest.raises(ServiceUnavailable, match="no DHT peer answered"):
        api.get(lonely, "test:api/greeting")
