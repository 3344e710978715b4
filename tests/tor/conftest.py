"""One private Tor network per test session, a managed tor joined to it, a local HTTP server.

Everything listens on 127.0.0.1. Every tor is tied to this pytest process
(``__OwningControllerProcess``), so a killed run leaves no tor behind; the fixtures
also tear everything down at the end and check that it went.
"""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary

BIG = 10 * 1024 * 1024


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """stem 1.8 calls Thread.setDaemon(); keep that DeprecationWarning out of our report."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"))


@dataclass
class HttpServer:
    port: int
    token: str

    @property
    def body(self) -> bytes:
        return f"fogctl tor test {self.token}\n".encode()


@pytest.fixture(scope="session")
def http_server() -> Iterator[HttpServer]:
    """An HTTP server on 127.0.0.1: ``/`` answers a per-session token, ``/big`` 10 MB."""
    token = secrets.token_hex(8)
    big = os.urandom(1024) * (BIG // 1024)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            data = big if self.path == "/big" else f"fogctl tor test {token}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpServer(server.server_address[1], token)
    server.shutdown()
    server.server_close()


def http_get(sock_factory: Callable[[], Any], host: str, path: str = "/") -> bytes:
    """GET ``path`` over a socket from ``sock_factory``; returns the body."""
    with sock_factory() as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head[:80]
    return body


def poll(
    fn: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.3,
    diag: Callable[[], str] | None = None,
) -> Any:
    """Call ``fn`` until it returns a truthy value without raising; bounded by ``timeout``.

    On timeout the error names the last exception and, from ``diag``, what the tors
    involved logged (so a CI failure explains itself).
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        try:
            result = fn()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    extra = f"\n{diag()}" if diag is not None else ""
    raise AssertionError(f"{what} not within {timeout} s, {tries} tries (last: {last!r}){extra}")


def tor_log_lines(*logs: Path, lines: int = 12) -> str:
    """The last notice/warn lines of each tor log (bootstrap chatter left out)."""
    out = []
    for log in logs:
        try:
            text = log.read_text(errors="replace").splitlines()
        except OSError as exc:
            out.append(f"--- {log}: unreadable ({exc.strerror})")
            continue
        keep = [ln for ln in text if "Bootstrapped" not in ln and "running Tor as root" not in ln]
        out.append(f"--- {log} (last {lines} lines)")
        out.extend(keep[-lines:])
    return "\n".join(out)


def log_rend_info(ctl: Any, directory: Path) -> None:
    """Have a running tor also log its onion-service chatter (info level, ``[rend]``
    domain only) to ``directory/rend.log``: what a failed onion fetch reports."""
    ctl.set_conf("Log", ["notice stdout", f"[rend]info file {directory / 'rend.log'}"])


def fetch_onion(
    net: Any, address: str, port: int, *, service_log: Path | None = None, timeout: float = 45
) -> bytes:
    """GET / from ``address:port`` through the private network's client (tor resolves the
    name), retried until it answers.

    Every try uses its own SOCKS credentials, hence its own circuits: a retry must not
    queue behind a rendezvous circuit of an earlier try that the service will never
    join (tor keeps such a circuit "pending-join ... with intro ack" until SocksTimeout,
    120 s, and attaches every new stream of the same isolation to it).
    """
    from fogctl.tor.socks import connect

    def once() -> bytes:
        iso = secrets.token_hex(8)
        return http_get(
            lambda: connect(net.socks, address, port, timeout=15, isolation=iso), address
        )

    logs = [net.directory / "client" / "tor.log", net.directory / "client" / "rend.log"]
    if service_log is not None:
        logs += [service_log, service_log.with_name("rend.log")]
    return poll(  # type: ignore[no-any-return]
        once,
        timeout=timeout,
        what=f"fetch from {address}:{port}",
        interval=0.5,
        diag=lambda: tor_log_lines(*logs),
    )


@pytest.fixture(scope="session")
def short_tmp() -> Iterator[Path]:
    """A short private directory (unix socket paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="fogtor-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tors_under(roots: list[Path]) -> list[int]:
    """Pids of live tor processes whose torrc (``-f PATH``) lies under one of ``roots``."""
    prefixes = [str(r.resolve()).encode() + b"/" for r in roots]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv[0] or Path(os.fsdecode(argv[0])).name != "tor" or b"-f" not in argv[:-1]:
            continue
        torrc = argv[argv.index(b"-f") + 1]
        if any(torrc.startswith(p) for p in prefixes):
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session", autouse=True)
def no_tor_left_behind(short_tmp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Last line of defence, torn down after every other tor fixture: whatever tor the
    session started (under its temp dirs) and a failed test left running is stopped,
    and named in a warning. Tors also exit on their own if pytest is killed
    (``__OwningControllerProcess``)."""
    yield
    from fogctl.tor import proc

    roots = [short_tmp, tmp_path_factory.getbasetemp()]
    left = tors_under(roots)
    if left:
        proc.stop_pids(left, timeout=2)
        warnings.warn(f"tor processes left running by tests/tor, now stopped: {left}", stacklevel=1)


@pytest.fixture(scope="session")
def testnet(short_tmp: Path) -> Iterator[Any]:
    """The session's private Tor network: 3 authorities, 2 relays (1 exit), a client."""
    from fogctl.errors import ServiceUnavailable
    from fogctl.tor import testnet as tn
    from fogctl.tor.binary import find_tor

    try:
        find_tor()
    except ServiceUnavailable:
        need_binary("tor")
    directory = short_tmp / "net"
    start = time.monotonic()
    try:
        tn.testnet_up(directory, relays=2, owner_pid=os.getpid(), timeout=60)
    except Exception as exc:  # the directory goes with short_tmp: keep what the tors said
        logs = sorted(directory.glob("*/tor.log"))
        raise AssertionError(f"{exc}\n{tor_log_lines(*logs, lines=6)}") from exc
    net = tn.load(directory)
    net.ready_s = time.monotonic() - start  # type: ignore[attr-defined]
    from fogctl.tor.control import open_controller

    ctl = open_controller(("127.0.0.1", net.client.control_port))
    try:
        log_rend_info(ctl, directory / "client")
    finally:
        ctl.close()
    yield net
    t0 = time.monotonic()
    tn.testnet_down(directory)
    from fogctl.tor import proc

    assert not any(n.pid and proc.pid_alive(n.pid) for n in net.nodes)
    assert time.monotonic() - t0 < 15


@pytest.fixture(scope="session")
def tor_home(short_tmp: Path, testnet: Any) -> Iterator[Path]:
    """A state dir whose managed tor joined the private network (tied to this process)."""
    from fogctl.state import State
    from fogctl.tor import daemon

    home = short_tmp / "home"
    state, _ = State.create(home)
    try:
        daemon.up(state, testnet=testnet.directory, owner_pid=os.getpid(), timeout=60)
    except Exception as exc:
        raise AssertionError(f"{exc}\n{tor_log_lines(home / 'tor' / 'tor.log')}") from exc
    with daemon.controller(state) as ctl:
        log_rend_info(ctl, home / "tor")
    yield home
    daemon.down(state)
    state.close()


@pytest.fixture
def in_tor_home(tor_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FOGCTL_HOME", str(tor_home))
    return tor_home


@dataclass
class OrphanedTor:
    pid: int
    log: Path
    was_running: bool  # alive just after its owner was killed (so the check means something)


@pytest.fixture(scope="session")
def orphaned_tor(short_tmp: Path) -> Iterator[OrphanedTor]:
    """A tor whose owning process (``__OwningControllerProcess``) was SIGKILLed at once.

    tor polls its owner every ~15 s; the test that checks it exited runs last, so the
    wait overlaps the rest of the session instead of adding to it.
    """
    import subprocess
    import sys

    from fogctl.errors import ServiceUnavailable
    from fogctl.tor.binary import find_tor

    try:
        tor = find_tor()
    except ServiceUnavailable:
        need_binary("tor")
    work = short_tmp / "orphan"
    work.mkdir(mode=0o700)
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from fogctl.tor import proc\n"
        "d = Path(sys.argv[1])\n"
        "(d / 'torrc').write_text(proc.render_torrc([('DataDirectory', str(d / 'data')),"
        " ('DisableNetwork', '1'), ('SocksPort', '0'),"
        " ('__OwningControllerProcess', str(os.getpid()))]))\n"
        "print(proc.launch(sys.argv[2], d / 'torrc', d / 'tor.log').pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(work), tor],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    from fogctl.tor import proc

    poll(
        lambda: (
            "Opened" in proc.tail(work / "tor.log", 20)
            or "Bootstrapped" in proc.tail(work / "tor.log", 20)
        ),
        timeout=20,
        what="the orphan tor to start",
    )
    owner.kill()
    owner.wait()
    yield OrphanedTor(pid, work / "tor.log", proc.pid_alive(pid))
    proc.stop_pids([pid], timeout=1)
