"""A private Tor network on 127.0.0.1: directory authorities, relays (some exits), a client.

Everything lives in one directory (default ``$FOGCTL_HOME/tor/testnet``)::

    net.json                 what runs: nodes, roles, ports, fingerprints, pids
    <node>/torrc             one tor per node, DataDirectory = <node>/
    <node>/tor.log           its log (notice level)

Recipe (measured on a 2-core machine with tor 0.4.9; see issue 8):

* authorities: identity/signing keys from ``tor-gencert -m 12``; relay keys and the
  fingerprint from ``tor --list-fingerprint --ignore-missing-torrc``;
* ``TestingTorNetwork 1``, ``AssumeReachable 1`` (else readiness takes ~90 s), voting
  interval 10 s with 2 s vote/dist delays (shorter delays make tor refuse to start);
* exits accept only 127.0.0.0/8 (``ExitPolicyRejectPrivate 0``). Microdescriptors
  summarise that policy as reject-all, so clients set ``UseMicrodescriptors 0``;
* ``__OwningControllerProcess`` (when an owner pid is given) makes every tor exit if
  the owner dies, so a killed test run leaves nothing behind;
* ready = the client reports ``status/circuit-established`` AND a real stream through
  its SOCKS port to a listener on 127.0.0.1 carried bytes both ways (retried, bounded).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable, StateError
from fogctl.tor import proc
from fogctl.tor.binary import find_tor, find_tor_gencert, tor_version
from fogctl.tor.records import TestnetNodeRecord, TestnetRecord

__all__ = [
    "NET_FILE",
    "Testnet",
    "client_torrc_lines",
    "load",
    "testnet_down",
    "testnet_status",
    "testnet_up",
]

NET_FILE = "net.json"
N_AUTHORITIES = 3
STOP_GRACE_S = 1.5
VOTING = (
    ("V3AuthVotingInterval", "10"),
    ("V3AuthVoteDelay", "2"),
    ("V3AuthDistDelay", "2"),
    ("TestingV3AuthInitialVotingInterval", "10"),
    ("TestingV3AuthInitialVoteDelay", "2"),
    ("TestingV3AuthInitialDistDelay", "2"),
    ("TestingV3AuthVotingStartOffset", "0"),
)
Progress = Callable[[str], None]


@dataclass
class Node:
    name: str
    role: str  # authority | relay | exit | client
    control_port: int
    or_port: int | None = None
    dir_port: int | None = None
    socks_port: int | None = None
    fingerprint: str | None = None
    v3ident: str | None = None
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Testnet:
    """A loaded ``net.json``: the nodes and where the network lives."""

    directory: Path
    nodes: list[Node]
    tor: str
    started: float

    @property
    def client(self) -> Node:
        return next(n for n in self.nodes if n.role == "client")

    @property
    def socks(self) -> tuple[str, int]:
        port = self.client.socks_port
        assert port is not None
        return ("127.0.0.1", port)

    def dir_authority_lines(self) -> list[tuple[str, str]]:
        return dir_authority_lines(self.nodes)

    def save(self) -> None:
        data = {
            "tor": self.tor,
            "started": self.started,
            "nodes": [n.to_json() for n in self.nodes],
        }
        tmp = self.directory / f".{NET_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.directory / NET_FILE)


def dir_authority_lines(nodes: list[Node]) -> list[tuple[str, str]]:
    out = []
    for n in nodes:
        if n.role == "authority":
            out.append(
                (
                    "DirAuthority",
                    f"{n.name} orport={n.or_port} no-v2 v3ident={n.v3ident} "
                    f"127.0.0.1:{n.dir_port} {n.fingerprint}",
                )
            )
    return out


def client_torrc_lines(net: Testnet) -> list[tuple[str, str]]:
    """Options a client needs to join ``net`` (used by ``fogctl tor up --testnet``)."""
    return [
        ("TestingTorNetwork", "1"),
        *net.dir_authority_lines(),
        ("UseMicrodescriptors", "0"),
        ("ClientRejectInternalAddresses", "0"),
        *VOTING,
    ]


def load(directory: Path) -> Testnet:
    """Read ``net.json``; a missing or broken file is a :class:`StateError`."""
    path = directory / NET_FILE
    try:
        data = json.loads(path.read_text())
        nodes = [Node(**n) for n in data["nodes"]]
        return Testnet(directory, nodes, str(data["tor"]), float(data["started"]))
    except FileNotFoundError:
        raise StateError(
            f"no private Tor network in {directory}", hint="start one with 'fogctl tor testnet up'"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path}: unreadable network description ({exc})") from None


# -- building ------------------------------------------------------------------------


def _run(cmd: list[str], *, cwd: Path, stdin: bytes = b"") -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, timeout=60)
    except OSError as exc:
        raise ServiceUnavailable(f"cannot run {cmd[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{Path(cmd[0]).name} took over 60 s") from None
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise OperationFailed(f"{Path(cmd[0]).name} failed: {err[0]}")
    return res.stdout.decode(errors="replace")


def _make_authority_keys(gencert: str, node: Node, datadir: Path) -> None:
    keys = datadir / "keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(
        [
            gencert,
            "--create-identity-key",
            "-m",
            "12",
            "-a",
            f"127.0.0.1:{node.dir_port}",
            "-i",
            str(keys / "authority_identity_key"),
            "-s",
            str(keys / "authority_signing_key"),
            "-c",
            str(keys / "authority_certificate"),
            "--passphrase-fd",
            "0",
        ],
        cwd=datadir,
        stdin=b"\n",
    )
    for line in (keys / "authority_certificate").read_text().splitlines():
        if line.startswith("fingerprint "):
            node.v3ident = line.split()[1]
    if not node.v3ident:
        raise OperationFailed(f"tor-gencert wrote no fingerprint for {node.name}")


def _list_fingerprint(tor: str, node: Node, datadir: Path) -> None:
    out = _run(
        [
            tor,
            "--list-fingerprint",
            "--ignore-missing-torrc",
            "--quiet",
            "--orport",
            "1",
            "--nickname",
            node.name,
            "--datadirectory",
            str(datadir),
        ],
        cwd=datadir,
    )
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == node.name:
            node.fingerprint = "".join(parts[1:])
    if not node.fingerprint or len(node.fingerprint) != 40:
        raise OperationFailed(f"tor --list-fingerprint gave no fingerprint for {node.name}")


def _torrc(node: Node, datadir: Path, nodes: list[Node], owner_pid: int | None) -> str:
    opts: list[tuple[str, str]] = [
        ("TestingTorNetwork", "1"),
        ("DataDirectory", str(datadir)),
        ("Nickname", node.name),
        ("RunAsDaemon", "0"),
        ("ShutdownWaitLength", "0"),
        ("PidFile", str(datadir / "tor.pid")),
        ("Log", "notice stdout"),
        ("SafeLogging", "1"),
        ("ControlPort", f"127.0.0.1:{node.control_port}"),
        ("CookieAuthentication", "1"),
        ("AvoidDiskWrites", "1"),
        ("Address", "127.0.0.1"),
        ("ContactInfo", f"{node.name}@fogctl.invalid"),
        ("AssumeReachable", "1"),
        ("ConnLimit", "60"),
        *dir_authority_lines(nodes),
        *VOTING,
    ]
    if owner_pid is not None:
        opts.append(("__OwningControllerProcess", str(owner_pid)))
    if node.role != "client":
        opts += [
            ("SocksPort", "0"),
            ("ORPort", f"127.0.0.1:{node.or_port}"),
        ]
    if node.role == "authority":
        opts += [
            ("DirPort", f"127.0.0.1:{node.dir_port}"),
            ("AuthoritativeDirectory", "1"),
            ("V3AuthoritativeDirectory", "1"),
            ("TestingDirAuthVoteGuard", "*"),
            ("TestingDirAuthVoteHSDir", "*"),
            ("TestingDirAuthVoteExit", "*"),
            ("ExitPolicy", "reject *:*"),
        ]
    elif node.role == "exit":
        opts += [
            ("ExitRelay", "1"),
            ("ExitPolicyRejectPrivate", "0"),
            ("ExitPolicyRejectLocalInterfaces", "0"),
            ("ExitPolicy", "accept 127.0.0.0/8:*"),
            ("ExitPolicy", "reject *:*"),
        ]
    elif node.role == "relay":
        opts += [("ExitRelay", "0"), ("ExitPolicy", "reject *:*")]
    else:  # client
        opts += [
            ("SocksPort", f"127.0.0.1:{node.socks_port}"),
            ("UseMicrodescriptors", "0"),
            ("ClientRejectInternalAddresses", "0"),
        ]
    return proc.render_torrc(opts)


def _plan(relays: int, exits: int) -> list[Node]:
    nodes = []
    for i in range(N_AUTHORITIES):
        nodes.append(
            Node(
                f"auth{i}",
                "authority",
                control_port=proc.free_port(),
                or_port=proc.free_port(),
                dir_port=proc.free_port(),
            )
        )
    for i in range(relays):
        role = "exit" if i < exits else "relay"
        nodes.append(
            Node(f"{role}{i}", role, control_port=proc.free_port(), or_port=proc.free_port())
        )
    nodes.append(
        Node("client", "client", control_port=proc.free_port(), socks_port=proc.free_port())
    )
    ports = [p for n in nodes for p in (n.control_port, n.or_port, n.dir_port, n.socks_port) if p]
    if len(set(ports)) != len(ports):  # the kernel handed a port out twice: try again
        return _plan(relays, exits)
    return nodes


# -- readiness -----------------------------------------------------------------------


class _EchoServer:
    """A one-shot loopback listener that answers each connection with ``ok:<line>``."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    data = conn.recv(64)
                    conn.sendall(b"ok:" + data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


def probe_exit(socks: tuple[str, int], port: int, timeout: float = 10.0) -> bool:
    """One real stream through the client's SOCKS to 127.0.0.1:``port``, bytes both ways."""
    from fogctl.tor.socks import connect

    token = os.urandom(8).hex().encode()
    try:
        with connect(socks, "127.0.0.1", port, timeout=timeout, isolation=token.decode()) as s:
            s.sendall(token)
            data = b""
            while len(data) < len(token) + 3:
                chunk = s.recv(64)
                if not chunk:
                    break
                data += chunk
            return data == b"ok:" + token
    except (OSError, OperationFailed, ServiceUnavailable):
        return False


def _bootstrap(ctl: Any) -> tuple[bool, int]:
    """(circuit established?, bootstrap percent) from an open controller."""
    est = ctl.get_info("status/circuit-established", "0") == "1"
    phase = ctl.get_info("status/bootstrap-phase", "")
    pct = 0
    for part in phase.split():
        if part.startswith("PROGRESS=") and part[9:].isascii() and part[9:].isdigit():
            pct = int(part[9:])
    return est, pct


def _wait_ready(net: Testnet, timeout: float, progress: Progress | None) -> float:
    from fogctl.tor.control import open_controller

    start = time.monotonic()
    deadline = start + timeout
    echo = _EchoServer()
    ctl: Any = None
    last = -1
    try:
        while time.monotonic() < deadline:
            dead = [n.name for n in net.nodes if n.pid is not None and not proc.pid_alive(n.pid)]
            if dead:
                log = proc.tail(net.directory / dead[0] / "tor.log")
                raise OperationFailed(f"testnet tor {dead[0]} exited: {log}")
            try:
                if ctl is None:
                    ctl = open_controller(("127.0.0.1", net.client.control_port))
                est, pct = _bootstrap(ctl)
            except Exception:  # not listening yet, or the connection dropped: retry
                if ctl is not None:
                    ctl.close()
                ctl = None
                est, pct = False, 0
            if progress is not None and pct != last:
                progress(f"client bootstrap {pct}%")
                last = pct
            # A stream attached before an exit is usable can hang until tor's SOCKS
            # timeout, so each probe gets a short bound and a fresh circuit.
            left = deadline - time.monotonic()
            if est and probe_exit(net.socks, echo.port, timeout=max(1.0, min(8.0, left))):
                return time.monotonic() - start
            time.sleep(0.25)
    finally:
        if ctl is not None:
            ctl.close()
        echo.close()
    raise OperationFailed(
        f"private Tor network not usable after {timeout:.0f} s (see {net.directory}/*/tor.log)"
    )


# -- public API ----------------------------------------------------------------------


def _running(net: Testnet) -> list[Node]:
    return [n for n in net.nodes if n.pid is not None and proc.pid_alive(n.pid)]


def testnet_up(
    directory: Path,
    *,
    relays: int = 3,
    exits: int | None = None,
    owner_pid: int | None = None,
    timeout: float = 90.0,
    tor: str | None = None,
    progress: Progress | None = None,
) -> TestnetRecord:
    """Build and start a private Tor network in ``directory``; return once it is usable.

    Idempotent: a network already running there is reported, not started again.
    ``owner_pid`` ties every tor's life to that process (``__OwningControllerProcess``).
    """
    if relays < 1 or relays > 20:
        raise InvalidInput(f"--relays: {relays} is not in 1-20")
    n_exits = max(1, (relays + 1) // 2) if exits is None else exits
    if n_exits < 1 or n_exits > relays:
        raise InvalidInput(f"--exits: {n_exits} is not in 1-{relays}")
    tor = find_tor(tor)
    gencert = find_tor_gencert(tor)
    if (directory / NET_FILE).exists():
        net = load(directory)
        if _running(net):
            if len(_running(net)) == len(net.nodes):
                return testnet_record(net, "running")
            testnet_down(directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    elif directory.exists() and any(directory.iterdir()):
        raise StateError(f"{directory} exists and is not a fogctl testnet directory")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    t0 = time.monotonic()
    nodes = _plan(relays, n_exits)
    net = Testnet(directory, nodes, tor, time.time())
    if progress is not None:
        progress(f"generating keys for {len(nodes)} tors")
    for node in nodes:
        (directory / node.name).mkdir(mode=0o700, exist_ok=True)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = []
        for node in nodes:
            datadir = directory / node.name
            if node.role == "authority":
                jobs.append(pool.submit(_make_authority_keys, gencert, node, datadir))
            if node.role != "client":
                jobs.append(pool.submit(_list_fingerprint, tor, node, datadir))
        for job in jobs:
            job.result()
    for node in nodes:
        datadir = directory / node.name
        (datadir / "torrc").write_text(_torrc(node, datadir, nodes, owner_pid))
    if progress is not None:
        progress(f"starting {len(nodes)} tors on 127.0.0.1")
    try:
        for node in nodes:
            datadir = directory / node.name
            node.pid = proc.launch(tor, datadir / "torrc", datadir / "tor.log").pid
        net.save()
        _wait_ready(net, max(1.0, timeout - (time.monotonic() - t0)), progress)
    except BaseException:
        proc.stop_pids([n.pid for n in nodes if n.pid is not None], timeout=5)
        raise
    return testnet_record(net, "running", ready_s=round(time.monotonic() - t0, 2))


def testnet_record(net: Testnet, state: str, ready_s: float | None = None) -> TestnetRecord:
    alive = _running(net)
    return TestnetRecord(
        directory=str(net.directory),
        state=state,
        nodes=len(net.nodes),
        running=len(alive),
        authorities=sum(n.role == "authority" for n in net.nodes),
        relays=sum(n.role in ("relay", "exit") for n in net.nodes),
        exits=sum(n.role == "exit" for n in net.nodes),
        socks=f"127.0.0.1:{net.client.socks_port}",
        control=f"127.0.0.1:{net.client.control_port}",
        ready_s=ready_s,
    )


def testnet_status(directory: Path) -> tuple[TestnetRecord, list[TestnetNodeRecord]]:
    """The network's record and one record per node (alive or not, with its log tail)."""
    net = load(directory)
    nodes = []
    for n in net.nodes:
        alive = n.pid is not None and proc.pid_alive(n.pid)
        nodes.append(
            TestnetNodeRecord(
                name=n.name,
                role=n.role,
                pid=n.pid,
                running=alive,
                fingerprint=n.fingerprint,
                or_port=n.or_port,
                dir_port=n.dir_port,
                control_port=n.control_port,
                socks_port=n.socks_port,
                log=None if alive else proc.tail(directory / n.name / "tor.log", 1) or None,
            )
        )
    n_alive = sum(r.running for r in nodes)
    if n_alive == len(nodes):
        state = "running"
    elif n_alive == 0:
        state = "stopped"
    else:
        state = "degraded"
    return testnet_record(net, state), nodes


def testnet_down(directory: Path, *, keep: bool = False) -> TestnetRecord:
    """Stop every tor of the network and (unless ``keep``) delete its directory."""
    net = load(directory)
    # Authorities sometimes hang in exit after "Catching signal TERM, exiting cleanly"
    # (seen with tor 0.4.9); a lab network has nothing to save, so SIGKILL soon after.
    proc.stop_pids([n.pid for n in net.nodes if n.pid is not None], timeout=STOP_GRACE_S)
    rec = testnet_record(net, "stopped")
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return rec


def version(tor: str | None = None) -> str:
    return tor_version(tor or find_tor())


def wait_foreground(directory: Path, notice: Progress, stop: Any) -> None:
    """Block until ``stop.stopping`` (set on SIGTERM/SIGINT by the caller's handler) or
    until every tor has died; then tear the network down."""
    net = load(directory)
    while not stop.stopping:
        if not _running(net):
            notice("every tor of the private network has exited")
            break
        time.sleep(0.3)
    notice("stopping the private Tor network")
    testnet_down(directory)
