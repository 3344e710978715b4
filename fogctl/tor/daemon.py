"""The tor fogctl controls: launch (or attach), status, circuits, NEWNYM, stop.

A managed tor lives in ``$FOGCTL_HOME/tor/``::

    torrc, torrc-defaults   written by ``up`` (never hand-edited; regenerated each time)
    data/                   tor's DataDirectory (mode 0700), incl. control_auth_cookie
    control.sock            control socket, cookie authentication (a 127.0.0.1 port
                            with cookie auth instead when the path is too long)
    control.txt             tor's ControlPortWriteToFile: where control listens
    tor.pid, tor.log        pid and notice-level log (SafeLogging on)
    daemon.json             what fogctl knows: pid, control endpoint, SOCKS address

``up`` is idempotent: a running managed tor is reported, not started twice; a tor
that died without ``down`` is noticed (``status`` says ``crashed``) and ``up``
replaces it. ``up --attach`` records an existing tor's control endpoint instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fogctl.errors import (
    FogError,
    InvalidInput,
    OperationFailed,
    ServiceUnavailable,
    StateError,
)
from fogctl.state import State, write_atomic
from fogctl.tor import proc
from fogctl.tor.binary import find_tor
from fogctl.tor.control import Endpoint, describe, open_controller, parse_endpoint
from fogctl.tor.records import CircuitHop, CircuitRecord, TorRecord
from fogctl.tor.route import DAEMON_FILE

__all__ = [
    "Daemon",
    "StopSignals",
    "Stopped",
    "circuits",
    "controller",
    "down",
    "newnym",
    "run_foreground",
    "status",
    "up",
]

Progress = Callable[[str], None]
SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; keep a margin


class Daemon:
    """Paths and the recorded facts of the tor in one state directory."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.dir = state.root / "tor"

    @property
    def info_file(self) -> Path:
        return self.dir / DAEMON_FILE

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_path(self) -> Path:
        return self.dir / "control.sock"

    @property
    def log(self) -> Path:
        return self.dir / "tor.log"

    def info(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.info_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.info_file}: unreadable ({exc})") from None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        self.state.subdir("tor")
        write_atomic(self.info_file, (json.dumps(data, indent=1) + "\n").encode(), mode=0o600)

    def forget(self) -> None:
        for path in (self.info_file, self.socket_path, self.dir / "control.txt"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def last_settings(self) -> dict[str, Any]:
        """The network and SOCKS address the managed tor last ran with (kept by down)."""
        try:
            data = json.loads((self.dir / "settings.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, info: dict[str, Any]) -> None:
        data = {"testnet": info.get("testnet"), "socks": info.get("socks")}
        write_atomic(self.dir / "settings.json", json.dumps(data).encode(), mode=0o600)

    def endpoint(self, info: dict[str, Any]) -> Endpoint:
        return parse_endpoint(str(info["control"]))


def _password(state: State, password: str | None) -> str | None:
    if password is not None:
        return password
    value = state.config.get("tor.password")
    return str(value) if value else None


def _cookie(info: dict[str, Any], cookie: Path | None) -> Path | None:
    if cookie is not None:
        return cookie
    value = info.get("cookie")
    return Path(value) if isinstance(value, str) else None


@contextlib.contextmanager
def controller(
    state: State, *, password: str | None = None, cookie: Path | None = None
) -> Iterator[Any]:
    """An authenticated controller for this state dir's tor (managed or attached).

    Not running -> :class:`ServiceUnavailable` (exit 3), naming a crash if it was one.
    """
    d = Daemon(state)
    info = d.info()
    if info is None:
        raise ServiceUnavailable("tor is not running", hint="start it with 'fogctl tor up'")
    pid = info.get("pid")
    if info.get("managed") and isinstance(pid, int) and not proc.pid_alive(pid):
        raise ServiceUnavailable(
            f"tor (pid {pid}) is not running: it exited without 'fogctl tor down' "
            f"({proc.tail(d.log, 1) or 'no log'})",
            hint="restart it with 'fogctl tor up'",
        )
    ctl = open_controller(
        d.endpoint(info), password=_password(state, password), cookie=_cookie(info, cookie)
    )
    try:
        yield ctl
    finally:
        ctl.close()


# -- reading tor's state --------------------------------------------------------------


def _bootstrap(ctl: Any) -> tuple[int, str]:
    phase = ctl.get_info("status/bootstrap-phase", "")
    pct, summary = 0, ""
    for part in _split_kv(phase):
        key, _, value = part.partition("=")
        if key == "PROGRESS" and value.isascii() and value.isdigit():
            pct = int(value)
        elif key == "SUMMARY":
            summary = value.strip('"')
    return pct, summary


def _split_kv(text: str) -> list[str]:
    """Split a GETINFO status line on spaces outside double quotes."""
    parts, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            if cur:
                parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def _socks(ctl: Any) -> str | None:
    try:
        listeners = ctl.get_listeners("socks")
    except Exception:
        return None
    for host, port in listeners:
        return f"{host}:{port}"
    return None


def _record(ctl: Any, info: dict[str, Any], state: str | None = None) -> TorRecord:
    pct, summary = _bootstrap(ctl)
    try:
        circs = ctl.get_circuits()
    except Exception:
        circs = []
    built = sum(1 for c in circs if c.status == "BUILT")
    established = ctl.get_info("status/circuit-established", "0") == "1"
    pid = info.get("pid")
    if not isinstance(pid, int):
        with contextlib.suppress(Exception):
            pid = int(ctl.get_info("process/pid"))
    return TorRecord(
        state=state or ("running" if pct >= 100 else "bootstrapping"),
        managed=bool(info.get("managed")),
        version=str(ctl.get_version()).split(" ")[0],
        pid=pid if isinstance(pid, int) else None,
        bootstrap=pct,
        summary=summary or None,
        socks=_socks(ctl) or info.get("socks"),
        control=str(info.get("control")),
        circuits=built,
        circuit_established=established,
        data_dir=info.get("data_dir"),
        testnet=info.get("testnet"),
    )


# -- commands -------------------------------------------------------------------------


def status(state: State, *, password: str | None = None, cookie: Path | None = None) -> TorRecord:
    """The tor's record. A managed tor that died is ``state="crashed"`` (not an error
    here: the CLI prints the record and exits 3); none at all is ``stopped``."""
    d = Daemon(state)
    info = d.info()
    if info is None:
        return TorRecord(state="stopped", managed=False)
    pid = info.get("pid")
    if info.get("managed") and isinstance(pid, int) and not proc.pid_alive(pid):
        return TorRecord(
            state="crashed",
            managed=True,
            pid=pid,
            control=str(info.get("control")),
            socks=info.get("socks"),
            summary="the tor process is gone (killed or crashed); see " + str(d.log),
            data_dir=info.get("data_dir"),
            testnet=info.get("testnet"),
        )
    with controller(state, password=password, cookie=cookie) as ctl:
        return _record(ctl, info)


def _torrc(
    d: Daemon, socks_port: str, extra: list[tuple[str, str]], owner_pid: int | None
) -> tuple[str, str]:
    """(torrc text, control endpoint text) for a managed tor."""
    opts: list[tuple[str, str]] = [
        ("DataDirectory", str(d.data_dir)),
        ("RunAsDaemon", "0"),
        ("PidFile", str(d.dir / "tor.pid")),
        ("Log", "notice stdout"),
        ("SafeLogging", "1"),
        ("CookieAuthentication", "1"),
        ("ControlPortWriteToFile", str(d.dir / "control.txt")),
        ("ControlPortFileGroupReadable", "0"),
        ("SocksPort", f"127.0.0.1:{socks_port}"),
        ("ShutdownWaitLength", "2"),
    ]
    if len(str(d.socket_path).encode()) <= SUN_PATH_MAX:
        opts.append(("ControlPort", f"unix:{d.socket_path}"))
        control = f"unix://{d.socket_path}"
    else:
        port = proc.free_port()
        opts.append(("ControlPort", f"127.0.0.1:{port}"))
        control = f"127.0.0.1:{port}"
    if owner_pid is not None:
        opts.append(("__OwningControllerProcess", str(owner_pid)))
    opts += extra
    return proc.render_torrc(opts), control


def _testnet_lines(directory: Path) -> list[tuple[str, str]]:
    from fogctl.tor import testnet

    net = testnet.load(directory)
    return [
        ("TestingTorNetwork", "1"),
        *net.dir_authority_lines(),
        ("UseMicrodescriptors", "0"),
        ("ClientRejectInternalAddresses", "0"),
        ("AssumeReachable", "1"),
    ]


class Stopped(OperationFailed):
    """A stop was requested (SIGTERM in --foreground) while tor was still starting."""


def _wait_bootstrap(
    d: Daemon,
    pid: int,
    endpoint: Endpoint,
    timeout: float,
    progress: Progress | None,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """Poll until bootstrap is 100 % and a circuit is up; returns an open controller."""
    deadline = time.monotonic() + timeout
    ctl: Any = None
    last = -1
    while time.monotonic() < deadline:
        if stop is not None and stop():
            if ctl is not None:
                ctl.close()
            raise Stopped("stopped while tor was bootstrapping")
        if not proc.pid_alive(pid):
            if ctl is not None:
                ctl.close()
            raise OperationFailed(f"tor exited while starting: {proc.tail(d.log, 2) or 'no log'}")
        try:
            if ctl is None:
                ctl = open_controller(endpoint)
            pct, summary = _bootstrap(ctl)
            established = ctl.get_info("status/circuit-established", "0") == "1"
        except ServiceUnavailable:
            ctl = None
            time.sleep(0.1)
            continue
        except FogError:
            raise
        except Exception:
            if ctl is not None:
                ctl.close()
            ctl = None
            time.sleep(0.1)
            continue
        if progress is not None and pct != last:
            progress(f"bootstrap {pct}%: {summary}")
            last = pct
        if pct >= 100 and established:
            return ctl
        time.sleep(0.2)
    if ctl is not None:
        ctl.close()
    raise OperationFailed(
        f"tor did not finish bootstrapping in {timeout:.0f} s (see {d.log})",
    )


def up(
    state: State,
    *,
    attach: str | None = None,
    password: str | None = None,
    cookie: Path | None = None,
    testnet: Path | None = None,
    socks_port: str | None = None,
    timeout: float = 120.0,
    owner_pid: int | None = None,
    progress: Progress | None = None,
    notice: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> TorRecord:
    """Start the managed tor (or record ``attach``) and return once it is usable.

    Idempotent: a healthy running tor is reported as is. ``testnet`` joins a private
    network from :mod:`fogctl.tor.testnet` instead of the public Tor network.
    """
    say = notice or (lambda _m: None)
    d = Daemon(state)
    state.subdir("tor")
    os.chmod(d.dir, 0o700)  # tor refuses a control socket in a directory others can list
    if attach is not None:
        current = d.info()
        if current is not None and current.get("managed"):
            running = current.get("pid")
            if isinstance(running, int) and proc.pid_alive(running):
                raise StateError(
                    f"fogctl already runs tor (pid {running}) here",
                    hint="stop it with 'fogctl tor down' before attaching to another",
                )
        return _attach(state, d, attach, password, cookie)
    info = d.info()
    if info is not None:
        pid = info.get("pid")
        if info.get("managed") and isinstance(pid, int) and proc.pid_alive(pid):
            running_net = info.get("testnet")
            if testnet is not None and str(testnet) != running_net:
                where = running_net or "the public Tor network"
                raise StateError(
                    f"tor (pid {pid}) already runs on {where}",
                    hint="stop it first with 'fogctl tor down'",
                )
            with controller(state) as ctl:
                rec = _record(ctl, info)
            say(f"tor already running (pid {pid}); nothing changed")
            return rec
        if info.get("managed"):
            say(f"tor (pid {pid}) had stopped without 'fogctl tor down'; starting it again")
        d.forget()
    # Same settings as last time unless told otherwise: the same private network (while
    # it exists) and the same SOCKS port (while it is free).
    last = d.last_settings()
    if testnet is None and isinstance(last.get("testnet"), str):
        from fogctl.tor.testnet import NET_FILE

        if (Path(last["testnet"]) / NET_FILE).exists():
            testnet = Path(last["testnet"])
    if socks_port is None and isinstance(last.get("socks"), str):
        old_port = int(str(last["socks"]).rpartition(":")[2])
        socks_port = str(old_port) if _port_free(old_port) else None
    tor = find_tor(state.config.get("tor.binary") or None)
    port = str(socks_port or state.config.get("tor.socks_port", "auto"))
    if port != "auto" and (not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536):
        raise InvalidInput(f"--socks-port: {port!r} is not a port number or auto")
    extra = _testnet_lines(testnet) if testnet is not None else []
    d.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d.data_dir, 0o700)
    text, control = _torrc(d, port, extra, owner_pid)
    torrc = d.dir / "torrc"
    write_atomic(torrc, text.encode(), mode=0o600)
    with contextlib.suppress(FileNotFoundError):
        d.socket_path.unlink()
    child = proc.launch(tor, torrc, d.log, new_session=owner_pid is None)
    info = {
        "managed": True,
        "pid": child.pid,
        "control": control,
        "socks": None,
        "data_dir": str(d.data_dir),
        "testnet": str(testnet) if testnet is not None else None,
        "started": time.time(),
    }
    d.save(info)
    try:
        ctl = _wait_bootstrap(d, child.pid, parse_endpoint(control), timeout, progress, stop)
    except BaseException:
        proc.stop_pids([child.pid], timeout=5)
        d.forget()
        raise
    try:
        info["socks"] = _socks(ctl)
        d.save(info)
        d.save_settings(info)
        _restore_onions(state, ctl, say)
        return _record(ctl, info)
    finally:
        ctl.close()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _restore_onions(state: State, ctl: Any, say: Progress) -> None:
    from fogctl.tor import onions

    restored = onions.restore(state, ctl)
    if restored:
        say(f"restored {restored} persistent onion service(s)")


def _attach(
    state: State, d: Daemon, attach: str, password: str | None, cookie: Path | None
) -> TorRecord:
    endpoint = parse_endpoint(attach)
    ctl = open_controller(endpoint, password=_password(state, password), cookie=cookie)
    try:
        info: dict[str, Any] = {
            "managed": False,
            "pid": None,
            "control": describe(endpoint),
            "cookie": str(cookie) if cookie is not None else None,
            "socks": _socks(ctl),
            "testnet": None,
            "started": time.time(),
        }
        d.save(info)
        _restore_onions(state, ctl, lambda _m: None)
        return _record(ctl, info)
    finally:
        ctl.close()


def down(state: State) -> TorRecord:
    """Stop the managed tor (SIGTERM, then SIGKILL after 10 s) or forget an attached one."""
    d = Daemon(state)
    info = d.info()
    if info is None:
        return TorRecord(state="stopped", managed=False)
    pid = info.get("pid")
    if info.get("managed") and isinstance(pid, int):
        proc.stop_pids([pid])
    d.forget()
    return TorRecord(
        state="stopped",
        managed=bool(info.get("managed")),
        pid=pid if isinstance(pid, int) else None,
        data_dir=info.get("data_dir"),
    )


def circuits(
    state: State, *, password: str | None = None, cookie: Path | None = None
) -> list[CircuitRecord]:
    """One record per circuit tor has, in id order."""
    with controller(state, password=password, cookie=cookie) as ctl:
        events = ctl.get_circuits()
    return [circuit_record(ev) for ev in events]


def circuit_record(ev: Any) -> CircuitRecord:
    created = getattr(ev, "created", None)
    return CircuitRecord(
        id=str(ev.id),
        status=str(ev.status),
        purpose=str(ev.purpose) if ev.purpose else None,
        path=tuple(CircuitHop(fingerprint=fp, nickname=nick) for fp, nick in ev.path),
        build_flags=tuple(str(f) for f in (ev.build_flags or ())),
        created=created.isoformat() + "Z" if created is not None else None,
    )


def newnym(state: State, *, password: str | None = None, cookie: Path | None = None) -> float:
    """Send NEWNYM (new circuits for new streams); returns the seconds tor asked us to
    wait first (0 when it took effect now; tor rate-limits NEWNYM)."""
    from stem import Signal

    with controller(state, password=password, cookie=cookie) as ctl:
        wait = float(ctl.get_newnym_wait())
        ctl.signal(Signal.NEWNYM)
    return wait


class StopSignals:
    """Turn SIGTERM/SIGINT into a flag from the moment it is made (use as a context)."""

    def __init__(self) -> None:
        self.stopping = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_foreground(state: State, rec: TorRecord, notice: Progress, stop: StopSignals) -> int:
    """Wait for the managed tor (started with ``owner_pid`` = us) until ``stop`` is
    signalled (SIGTERM/SIGINT) or tor exits; stop it cleanly on a signal."""
    assert rec.pid is not None
    pid = rec.pid
    while not stop.stopping and proc.pid_alive(pid):
        time.sleep(0.2)
    if stop.stopping:
        notice("stopping tor")
        down(state)
        return 0
    notice(f"tor exited: {proc.tail(Daemon(state).log, 1)}")
    Daemon(state).forget()
    return 1
