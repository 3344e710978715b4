"""Shared fixtures for the jobs tests: the real Docker Engine, a locally built busybox
image (no registry), a one-node swarm, and helpers to write specs and WASM modules."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEST_IMAGE = "fogctl-test/busybox:1"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries back off 0.05 s, 0.1 s, 0.2 s... instead of 10 s, 20 s, 40 s."""
    monkeypatch.setenv("FOGCTL_JOBS_BACKOFF_BASE", "0.05")


def _docker_or_none() -> Any:
    try:
        from fogctl.jobs.executors.docker import docker_client

        return docker_client()
    except Exception:
        return None


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    client = _docker_or_none()
    need(client is not None, "no Docker Engine reachable (.ci/services.sh start runs dockerd)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: Any) -> str:
    """``fogctl-test/busybox:1``: a busybox-static rootfs, docker-imported (0.2 s)."""
    need(
        shutil.which("busybox") is not None or Path("/bin/busybox").exists(),
        "busybox-static is not installed",
    )
    from fogctl.jobs.images import build_busybox_image

    build_busybox_image(TEST_IMAGE, "/bin/busybox")
    return TEST_IMAGE


@pytest.fixture(scope="session")
def swarm(docker_engine: Any) -> Iterator[Any]:
    """A one-node swarm on loopback; left afterwards if this fixture created it."""
    info = docker_engine.info()
    created = False
    if info.get("Swarm", {}).get("LocalNodeState") != "active":
        docker_engine.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        created = True
    yield docker_engine
    if created:
        with contextlib.suppress(Exception):
            docker_engine.swarm.leave(force=True)


@pytest.fixture(autouse=True)
def _cleanup_containers(request: pytest.FixtureRequest, fog_home: Path) -> Iterator[None]:
    """Remove containers a test left behind (matched by this test's state dir label)."""
    yield
    if "docker_engine" not in request.fixturenames:
        return
    client = request.getfixturevalue("docker_engine")
    for c in client.containers.list(all=True, filters={"label": f"io.fogctl.home={fog_home}"}):
        with contextlib.suppress(Exception):
            c.remove(force=True)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML spec (text) to a file and return its path."""
    counter = iter(range(10_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.yaml")
        path.write_text(text)
        return path

    return write


@pytest.fixture
def wat(tmp_path: Path) -> Callable[[str, str], str]:
    """Write a WAT module and return its path."""

    def write(name: str, text: str) -> str:
        path = tmp_path / f"{name}.wat"
        path.write_text(text)
        return str(path)

    return write


def poll(cond: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> Any:
    """Poll ``cond`` until it is truthy (bounded); return its value or fail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


WASI_EXIT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const CODE))))
"""

WASM_SPIN = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
"""
