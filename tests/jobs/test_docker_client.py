"""How the docker executor reaches the engine: the bare-socket /_ping probe (parser
fuzzed), one client built with the probed API version, built-ins loaded directly."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.jobs.executors.docker import DockerExecutor, parse_ping, probe_engine

URL = "unix:///var/run/docker.sock"
PING = (
    b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n"
    b"Ostype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: 2\r\n\r\nOK"
)


def test_parse_ping_reads_version_and_server() -> None:
    status, version = parse_ping(URL, PING)
    assert status.reachable and status.detail == "Docker Engine 20.10.24+dfsg1"
    assert version == "1.41"


def test_parse_ping_refuses_what_is_not_an_engine() -> None:
    for data in (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nOK",  # some other web server
        b"HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"",
    ):
        status, version = parse_ping(URL, data)
        assert not status.reachable and version is None, data


def test_parse_ping_ignores_a_bad_version_header() -> None:
    status, version = parse_ping(URL, PING.replace(b"1.41", b"1.41; rm -rf /"))
    assert status.reachable and version is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_ping_never_raises(data: bytes) -> None:
    status, version = parse_ping(URL, data)
    assert version is None or version.replace(".", "").isdigit()
    assert status.endpoint == URL


def test_probe_of_a_missing_socket_names_it(tmp_path: Any) -> None:
    url = f"unix://{tmp_path}/no.sock"
    status, version = probe_engine(url)
    assert not status.reachable and version is None and status.endpoint == url


def test_one_client_built_with_the_probed_version(docker_engine: Any) -> None:
    ex = DockerExecutor()
    status = ex.available()
    assert status.reachable
    client = ex.client
    assert client.api.api_version == docker_engine.version()["ApiVersion"]
    assert ex.client is client  # every call shares it
    ex.close()


def test_builtin_executors_load_without_scanning_entry_points() -> None:
    code = (
        "import sys\n"
        "from fogctl.jobs.executors import get_executor\n"
        "names = [get_executor(n).name for n in ('docker', 'swarm', 'wasm')]\n"
        "print(names, 'fogctl.plugins' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['docker', 'swarm', 'wasm'] False"
