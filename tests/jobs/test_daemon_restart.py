"""A Docker daemon restart in the middle of a job, on a private dockerd this module
starts (its own socket, config file, data root, exec root and containerd namespace, in
a network namespace of its own), so the shared engine other tests use is never touched.

The network namespace matters: a dockerd started with ``--bridge=none`` deletes the
host's ``docker0`` interface (``removeDefaultBridgeInterface``), which would cut the
shared engine's bridge network from under the other tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fogctl.errors import ServiceUnavailable
from fogctl.jobs import engine, parse_spec
from fogctl.state import State
from tests.conftest import need, need_binary
from tests.jobs.conftest import poll

pytestmark = pytest.mark.docker

IMAGE = "fogctl-test/busybox:1"


class PrivateDockerd:
    """One dockerd on private dirs under a short /tmp path (unix socket paths are
    limited to 108 bytes); :meth:`start` and :meth:`stop` may be called again on the
    same dirs, as a daemon restart does."""

    def __init__(self, binary: str, unshare: str) -> None:
        self.binary = binary
        self.unshare = unshare
        self.dir = Path(tempfile.mkdtemp(prefix="fogd-", dir="/tmp"))
        (self.dir / "daemon.json").write_text("{}\n")  # not the host's /etc/docker one
        self.sock = self.dir / "d.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "dockerd.log"

    def _args(self) -> list[str]:
        d = self.dir
        return [
            self.unshare,
            "--net",  # its own network namespace: host interfaces are out of its reach
            "--",
            self.binary,
            "--config-file",
            str(d / "daemon.json"),
            "-H",
            self.url,
            "--data-root",
            str(d / "data"),
            "--exec-root",
            str(d / "exec"),
            "--pidfile",
            str(d / "d.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--containerd-namespace=fogctl-test",
            "--containerd-plugins-namespace=fogctl-test-plugins",
            "--log-level=warn",
        ]

    def _ping(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect(str(self.sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(64)
        except OSError:
            return False
        finally:
            s.close()

    def start(self, timeout: float = 15.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self._args(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        end = time.monotonic() + timeout
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > end:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"private dockerd did not come up:\n{tail}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the daemon stops its containers, then exits); SIGKILL past ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def shims(self) -> list[int]:
        """containerd-shim processes serving this daemon (their args name our dirs)."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"containerd-shim" in args and str(self.dir).encode() in args:
                    found.append(int(pid))
        return found

    def cleanup(self) -> None:
        self.stop()
        for pid in self.shims():  # only shims started for our dirs
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        # Mounts the daemon may have left (overlay layers, the shm of a container).
        with contextlib.suppress(OSError):
            mounts = Path("/proc/self/mounts").read_text().splitlines()
            for line in reversed(mounts):
                target = line.split()[1]
                if target.startswith(str(self.dir)):
                    subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def private_dockerd() -> Iterator[PrivateDockerd]:
    binary = need_binary("dockerd")
    unshare = need_binary("unshare")
    need(os.geteuid() == 0, "a private dockerd needs root")
    daemon = PrivateDockerd(binary, unshare)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()
    assert daemon.shims() == [], "containerd-shim processes left behind"


@pytest.fixture
def on_private(private_dockerd: PrivateDockerd, monkeypatch: pytest.MonkeyPatch) -> PrivateDockerd:
    """fogctl (this process and its runners) talks to the private daemon only."""
    monkeypatch.setenv("FOGCTL_DOCKER_HOST", private_dockerd.url)
    monkeypatch.setattr("fogctl.jobs.executors._CACHE", {})
    from fogctl.jobs.images import build_busybox_image

    build_busybox_image(IMAGE, "/bin/busybox")
    return private_dockerd


COUNTER = (
    "i=$(cat /ckpt/n 2>/dev/null || echo 0); echo start $i; "
    "while [ $i -lt 30 ]; do i=$((i+1)); echo $i > /ckpt/t; mv /ckpt/t /ckpt/n; sleep 0.05; done; "
    "echo done $i"
)


def test_daemon_restart_mid_job_is_an_interrupted_attempt_that_retries(
    cli: Any, on_private: PrivateDockerd, fog_home: Path
) -> None:
    state = State()
    specs = [
        parse_spec(
            {
                "metadata": {"name": "count"},
                "image": IMAGE,
                "command": ["sh", "-c", COUNTER],
                "checkpoint": {"path": "/ckpt"},
                "backoffLimit": 2,
            }
        ),
        parse_spec(
            {
                "metadata": {"name": "once"},
                "image": IMAGE,
                "command": ["sh", "-c", "sleep 30"],
                "backoffLimit": 0,
            }
        ),
    ]
    engine.submit(state, specs)
    env = dict(os.environ)
    runner = subprocess.Popen(
        [sys.executable, "-m", "fogctl.jobs.runner", "count", "once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ckpt = engine.job_dir(state, "count") / "checkpoint" / "n"
        poll(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, timeout=15)
        poll(lambda: engine.get_job(State(), "once").ref, timeout=10)
        assert on_private.shims(), "the shim check would be blind: no shim found"
        t0 = time.monotonic()
        on_private.stop()  # the daemon stops its containers on the way down
        at_stop = int(ckpt.read_text())
        on_private.start()
        restart = time.monotonic() - t0
        # The runner, alive through the restart, tells the truth; so does `jobs wait`.
        res = cli("jobs", "wait", "count", "once", "--timeout", "20", "--json")
        runner.wait(10)
        err = runner.stderr.read().decode() if runner.stderr else ""
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(5)
    assert restart < 10
    finals = {r["id"]: r for r in cli("jobs", "ls", "--json").records()}
    once, count = finals["once"], finals["count"]
    # No retries allowed: the interrupted attempt fails the job, with the reason.
    assert (once["state"], once["reason"]) == ("failed", "interrupted"), (once, err)
    assert "restart" in once["detail"]
    # Retried per backoffLimit, resumed from its checkpoint, ran to the end.
    assert (count["state"], count["attempt"]) == ("succeeded", 2), (count, err)
    reasons = [e.get("reason") for e in engine.events(State(), "count")]
    assert "interrupted" in reasons, reasons
    log = cli("jobs", "logs", "count").stdout.splitlines()
    assert at_stop >= 5 and log[0] == f"start {at_stop}" and log[-1] == "done 30", log
    assert res.code == 1  # one of the two jobs failed
    # The engine holds no containers of ours afterwards.
    import docker

    client = docker.DockerClient(base_url=on_private.url)
    try:
        left = client.containers.list(all=True, filters={"label": f"io.fogctl.home={fog_home}"})
    finally:
        client.close()
    assert left == []


def test_an_engine_that_never_comes_back_loses_the_attempt_within_the_grace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The wait for a restarting engine is bounded (``jobs.engine_grace``): no hang."""
    from fogctl.jobs.executors.base import Handle
    from fogctl.jobs.executors.docker import DockerExecutor

    monkeypatch.setenv("FOGCTL_JOBS_ENGINE_GRACE", "0.3")
    ex = DockerExecutor(base_url=f"unix://{tmp_path}/gone.sock")
    start = time.monotonic()
    result = ex.wait(Handle("docker", "c0ffee", "j-1", time.time()))
    took = time.monotonic() - start
    assert result is not None and (result.reason, result.exit_code) == ("lost", None)
    assert "did not answer for 0.3 s" in result.detail and str(tmp_path) in result.detail
    assert 0.3 <= took < 3
    with pytest.raises(ServiceUnavailable):  # a bounded look (reconcile) still says so
        ex.wait(Handle("docker", "c0ffee", "j-1", time.time()), timeout=0)


def test_daemon_restart_while_fogctl_is_dead_reconciles_and_resumes(
    cli: Any, on_private: PrivateDockerd
) -> None:
    """fogctl was killed, then the daemon restarted: `jobs ls` must not say running (or
    succeeded) for the container the restart stopped; `jobs wait` runs it again from
    its checkpoint."""
    state = State()
    spec = parse_spec(
        {
            "metadata": {"name": "orphan"},
            "image": IMAGE,
            "command": ["sh", "-c", COUNTER],
            "checkpoint": {"path": "/ckpt"},
            "backoffLimit": 1,
        }
    )
    engine.submit(state, [spec])
    runner = subprocess.Popen(
        [sys.executable, "-m", "fogctl.jobs.runner", "orphan"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ckpt = engine.job_dir(state, "orphan") / "checkpoint" / "n"
        poll(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, timeout=15)
        poll(lambda: engine.get_job(State(), "orphan").ref, timeout=10)
    finally:
        runner.send_signal(signal.SIGKILL)  # fogctl dies; the container lives on
        runner.wait(5)
    on_private.stop()
    at_stop = int(ckpt.read_text())
    on_private.start()
    (rec,) = cli("jobs", "ls", "--json").records()
    # The engine's record of the stopped container: a failed attempt (SIGTERM), retried.
    assert (rec["state"], rec["reason"], rec["exit_code"]) == ("retrying", "exit-code", 143)
    res = cli("jobs", "wait", "orphan", "--timeout", "20", "--json")
    assert res.code == 0, res.stderr
    final = res.records()[-1]
    assert (final["state"], final["attempt"]) == ("succeeded", 2)
    log = cli("jobs", "logs", "orphan").stdout.splitlines()
    assert at_stop >= 5 and log[0] == f"start {at_stop}" and log[-1] == "done 30", log
