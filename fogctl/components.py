"""Quick, dependency-free reachability probes for the real components fogctl drives.

Used by ``fogctl status``; each probe is bounded by a short timeout and they run in
parallel, so a status check costs at most one timeout. Probes only talk to the
configured endpoints (loopback by default).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from fogctl.config import Config
from fogctl.records import ComponentStatus

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"  # imports here stay light: jobs use this module
DEFAULT_TOR_CONTROL = "127.0.0.1:9051"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
TIMEOUT = 0.5


def docker_endpoint(config: Config) -> str:
    """``docker.host`` config, else ``$DOCKER_HOST``, else the default unix socket."""
    value = config.get("docker.host") or os.environ.get("DOCKER_HOST")
    return str(value) if value else f"unix://{DEFAULT_DOCKER_SOCKET}"


def connect_endpoint(
    endpoint: str, timeout: float = TIMEOUT, *, default_port: int = 0
) -> socket.socket:
    """A connected stream socket to ``unix://PATH``, ``/PATH``, ``tcp://H:P``, ``http://H:P``
    or ``H:P``; raises OSError (the socket is closed) when it can't connect."""
    if endpoint.startswith(("unix://", "/")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(endpoint.removeprefix("unix://"))
        except OSError:
            s.close()
            raise
        return s
    from urllib.parse import urlparse

    parsed = urlparse(endpoint if "://" in endpoint else f"tcp://{endpoint}")
    return socket.create_connection(
        (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout
    )


def probe_docker(config: Config) -> ComponentStatus:
    endpoint = docker_endpoint(config)
    try:
        with connect_endpoint(endpoint) as s:
            s.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError as exc:
        return ComponentStatus(False, endpoint, exc.strerror or str(exc))
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        return ComponentStatus(False, endpoint, "not a Docker Engine API")
    try:
        version = json.loads(body).get("Version", "?")
    except ValueError:
        version = "?"
    return ComponentStatus(True, endpoint, f"Docker Engine {version}")


def tor_control_endpoint(config: Config, state_dir: Path) -> str:
    """``tor.control`` config, else the tor fogctl manages (or attached to), else 9051."""
    value = config.get("tor.control")
    if value:
        return str(value)
    try:
        daemon = json.loads((state_dir / "tor" / "daemon.json").read_text(encoding="utf-8"))
        recorded = daemon.get("control") if isinstance(daemon, dict) else None
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, str) and recorded:
        return recorded
    sock = state_dir / "tor" / "control.sock"
    return f"unix://{sock}" if sock.exists() else DEFAULT_TOR_CONTROL


def probe_tor(config: Config, state_dir: Path) -> ComponentStatus:
    endpoint = tor_control_endpoint(config, state_dir)
    try:
        with connect_endpoint(endpoint) as s:
            s.sendall(b"PROTOCOLINFO 1\r\n")
            data = s.recv(4096)
    except OSError as exc:
        return ComponentStatus(False, endpoint, exc.strerror or str(exc))
    if not data.startswith(b"250-PROTOCOLINFO"):
        return ComponentStatus(False, endpoint, "not a tor control port")
    version = ""
    for line in data.decode("ascii", "replace").splitlines():
        if line.startswith("250-VERSION Tor="):
            version = line.split("=", 1)[1].strip('"')
    return ComponentStatus(True, endpoint, f"tor {version}".strip())


def rpc_url(config: Config, state_dir: Path | None = None) -> str:
    """``chain.rpc_url`` config, else the local chain this state dir runs, else the default."""
    configured = config.get("chain.rpc_url")
    if configured:
        return str(configured)
    if state_dir is not None:
        try:
            node = json.loads((state_dir / "chain" / "node.json").read_text(encoding="utf-8"))
            if isinstance(node, dict) and isinstance(node.get("rpc_url"), str):
                return str(node["rpc_url"])
        except (OSError, ValueError):
            pass
    return DEFAULT_RPC_URL


def probe_chain(config: Config, state_dir: Path | None = None) -> ComponentStatus:
    import urllib.error
    import urllib.request

    url = rpc_url(config, state_dir)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            answer = json.loads(resp.read(65536))
    except (OSError, ValueError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return ComponentStatus(False, url, str(getattr(reason, "strerror", None) or reason))
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, str):
        return ComponentStatus(False, url, "not an Ethereum JSON-RPC endpoint")
    try:
        return ComponentStatus(True, url, f"chain id {int(result, 16)}")
    except ValueError:
        return ComponentStatus(False, url, "not an Ethereum JSON-RPC endpoint")


def probe_all(config: Config, state_dir: Path) -> dict[str, ComponentStatus]:
    """Probe docker, tor and the chain RPC in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        docker = pool.submit(probe_docker, config)
        tor = pool.submit(probe_tor, config, state_dir)
        chain = pool.submit(probe_chain, config, state_dir)
        return {"docker": docker.result(), "tor": tor.result(), "chain": chain.result()}
