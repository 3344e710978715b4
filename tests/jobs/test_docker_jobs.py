"""Jobs as real containers on the Docker Engine: hardening, limits, reasons, reconcile."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fogctl.jobs import engine, parse_spec
from fogctl.jobs.executors import Launch, get_executor
from fogctl.jobs.executors.base import LABEL_STATE
from fogctl.jobs.executors.docker import hardened_options
from fogctl.state import State
from tests.jobs.conftest import poll

pytestmark = pytest.mark.docker


def job(name: str, image: str, script: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "metadata": {"name": name},
        "image": image,
        "command": ["sh", "-c", script],
    }
    spec.update(extra)
    return spec


def run(cli: Any, *specs: dict[str, Any], code: int | None = None) -> list[dict[str, Any]]:
    text = "".join(json.dumps(s) + "\n" for s in specs)
    res = cli("submit", "-", "--wait", "--json", input=text)
    if code is not None:
        assert res.code == code, res.stderr
    finals: dict[str, dict[str, Any]] = {}
    for r in res.records():
        finals[r["id"]] = r
    return list(finals.values())


def logs_of(cli: Any, name: str) -> str:
    return str(cli("jobs", "logs", name).stdout)


def test_hardened_by_default(cli, busybox_image: str) -> None:
    script = (
        "id -u; id -g; grep CapEff /proc/self/status; "
        "touch /rootfile 2>/dev/null && echo rootfs-writable || echo rootfs-readonly; "
        "touch /tmp/t && echo tmp-ok; echo out > /work/o.txt; "
        "ls /sys/class/net | tr '\\n' ' '; echo; grep NoNewPrivs /proc/self/status; "
        "cd /sys/fs/cgroup; cat cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 cpu.max; "
        "cat memory/memory.limit_in_bytes 2>/dev/null || cat memory.max"
    )
    limits = {"requests": {"cpu": "100m"}, "limits": {"cpu": "250m", "memory": "48Mi"}}
    (final,) = run(
        cli, job("hard", busybox_image, script, outputs=["o.txt"], resources=limits), code=0
    )
    out = logs_of(cli, "hard").split("\n")
    assert out[0] == "65534" and out[1] == "65534"
    assert out[2].split() == ["CapEff:", "0000000000000000"]
    assert out[3] == "rootfs-readonly" and out[4] == "tmp-ok"
    assert out[5].split() == ["lo"]  # network none: loopback only
    assert out[6].split() == ["NoNewPrivs:", "1"]
    # The caps reach the kernel: CFS quota 25 ms per 100 ms period, 48 MiB of memory.
    assert out[7] == "25000" and out[8] == str(48 * 2**20)
    assert State().blobs.get(final["outputs"]["o.txt"]) == b"out\n"


def test_options_never_weakened_by_spec() -> None:
    spec = parse_spec(
        {
            "metadata": {"name": "x"},
            "image": "i",
            "network": "bridge",
            "command": ["sh", "-c", "echo $(id); rm -rf / --no-preserve-root"],
            "resources": {"limits": {"cpu": 0.5, "memory": "64Mi", "pids": 10}},
        }
    )
    opts = hardened_options(Launch(spec, "x-1", Path("/w")))
    assert opts["user"] == "65534:65534" and opts["read_only"] and opts["cap_drop"] == ["ALL"]
    assert opts["security_opt"] == ["no-new-privileges"] and "privileged" not in opts
    assert opts["memswap_limit"] == opts["mem_limit"] == 64 * 2**20
    assert opts["nano_cpus"] == 500_000_000 and opts["pids_limit"] == 10
    assert opts["entrypoint"] == ["sh", "-c", "echo $(id); rm -rf / --no-preserve-root"]
    assert list(opts["volumes"].values()) == [{"bind": "/work", "mode": "rw"}]


def test_oom_deadline_and_exit_code_are_distinct(cli, busybox_image: str) -> None:
    finals = {
        r["id"]: r
        for r in run(
            cli,
            job("hog", busybox_image, "tail /dev/zero", resources={"limits": {"memory": "16Mi"}}),
            job("slow", busybox_image, "sleep 30", activeDeadlineSeconds=1),
            job("bad", busybox_image, "exit 7"),
            job(
                "child-oom",
                busybox_image,
                "tail /dev/zero; echo survived",
                resources={"limits": {"memory": "16Mi"}},
            ),
            code=1,
        )
    }
    # Only a child hit the limit and the main process exited 0: the job succeeded,
    # with the OOM kill noted (OOMKilled is set for any process of the container).
    child = finals["child-oom"]
    assert (child["state"], child["exit_code"]) == ("succeeded", 0)
    assert "OOM-killed" in child["detail"]
    assert "survived" in logs_of(cli, "child-oom")
    assert (finals["hog"]["state"], finals["hog"]["reason"]) == ("failed", "oom")
    assert (finals["slow"]["state"], finals["slow"]["reason"]) == ("deadline-exceeded", "deadline")
    assert (finals["bad"]["reason"], finals["bad"]["exit_code"]) == ("exit-code", 7)


def test_pids_limit_stops_a_fork_bomb(cli, busybox_image: str) -> None:
    script = "for i in $(seq 60); do sleep 5 & done 2>&1; echo spawned; wait"
    (final,) = run(
        cli,
        job(
            "forks",
            busybox_image,
            script,
            activeDeadlineSeconds=3,
            resources={"limits": {"pids": 16}},
        ),
    )
    assert "can't fork" in logs_of(cli, "forks") or "Resource temporarily" in logs_of(cli, "forks")
    assert final["state"] in ("deadline-exceeded", "failed", "succeeded")


def _gateway(client: Any) -> str:
    import ipaddress

    cfg = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    if cfg.get("Gateway"):
        return str(cfg["Gateway"])
    return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))


def test_no_network_unless_asked(cli, busybox_image: str, docker_engine: Any) -> None:
    gw = _gateway(docker_engine)
    srv = socket.socket()
    srv.bind((gw, 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted: list[bytes] = []

    def serve() -> None:
        srv.settimeout(10)
        try:
            while True:
                conn, _ = srv.accept()
                accepted.append(b"x")
                conn.close()
        except OSError:
            return

    threading.Thread(target=serve, daemon=True).start()
    probe = f"nc -w 2 {gw} {port} </dev/null 2>/dev/null && echo reached || echo blocked"
    try:
        finals = {
            r["id"]: r
            for r in run(
                cli,
                job("isolated", busybox_image, probe),
                job("online", busybox_image, probe, network="bridge"),
            )
        }
    finally:
        srv.close()
    assert logs_of(cli, "isolated").strip() == "blocked"
    assert logs_of(cli, "online").strip() == "reached"
    assert len(accepted) == 1 and finals["online"]["state"] == "succeeded"


def test_retries_then_fail(cli, busybox_image: str) -> None:
    (final,) = run(cli, job("flaky", busybox_image, "echo try; exit 3", backoffLimit=2), code=1)
    assert (final["state"], final["attempt"], final["exit_code"]) == ("failed", 3, 3)


def test_cancel_running_container(cli, busybox_image: str) -> None:
    state = State()
    spec = parse_spec(
        job(
            "long",
            busybox_image,
            "trap 'echo got-term; exit 143' TERM; while true; do sleep 0.1; done",
        )
    )
    engine.submit(state, [spec])

    def cancel_later() -> None:
        poll(lambda: engine.get_job(State(), "long").ref, timeout=20)
        engine.cancel(State(), ["long"])

    threading.Thread(target=cancel_later, daemon=True).start()
    (final,) = engine.run_jobs(state, ["long"])
    assert (final.state, final.reason) == ("cancelled", "stopped")
    assert b"got-term" in b"".join(engine.logs(state, "long"))


COUNTER = (
    "i=$(cat /ckpt/n 2>/dev/null || echo 0); echo start $i; "
    "trap 'echo checkpointed at $i; exit 85' TERM; "
    "while [ $i -lt 40 ]; do i=$((i+1)); echo $i > /ckpt/n; sleep 0.05; done; echo done $i"
)


def _spawn_runner(home: Path, ids: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FOGCTL_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "fogctl.jobs.runner", *ids],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_reconcile_after_sigkill_and_resume_from_checkpoint(
    cli, busybox_image: str, fog_home: Path, docker_engine: Any
) -> None:
    state = State()
    spec = parse_spec(
        job("count", busybox_image, COUNTER, checkpoint={"path": "/ckpt"}, backoffLimit=2)
    )
    engine.submit(state, [spec])
    runner = _spawn_runner(fog_home, ["count"])
    ckpt = engine.job_dir(state, "count") / "checkpoint" / "n"
    poll(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, timeout=20)
    runner.send_signal(signal.SIGKILL)  # fogctl dies mid-job; the container lives on
    runner.wait(5)
    # The truth, reconciled from the engine: still running.
    listed = cli("jobs", "ls", "--json").records()
    assert [(r["id"], r["state"]) for r in listed] == [("count", "running")]
    ref = listed[0]["ref"]
    # Preempt it (as a node going away would): it checkpoints and exits 85.
    docker_engine.api.kill(ref, signal="SIGTERM")
    poll(lambda: docker_engine.api.inspect_container(ref)["State"]["Running"] is False)
    # A later fogctl adopts the job: records the checkpointed exit and runs it again.
    res = cli("jobs", "wait", "count", "--json")
    assert res.code == 0, res.stderr
    states = [r["state"] for r in res.records()]
    assert states[-3:] == ["retrying", "running", "succeeded"]
    log = logs_of(cli, "count").splitlines()
    resumed = int(log[0].split()[1])
    assert resumed >= 5 and log[-1] == "done 40"
    assert cli("jobs", "show", "count", "--json").record()["attempt"] == 2


def test_reconcile_records_the_real_end(cli, busybox_image: str, fog_home: Path) -> None:
    state = State()
    spec = parse_spec(job("short", busybox_image, "sleep 1; exit 4"))
    engine.submit(state, [spec])
    runner = _spawn_runner(fog_home, ["short"])
    poll(lambda: engine.get_job(State(), "short").ref, timeout=20)
    runner.send_signal(signal.SIGKILL)
    runner.wait(5)
    rec = poll(
        lambda: (lambda r: r if r["state"] != "running" else None)(
            cli("jobs", "ls", "--json").records()[0]
        ),
        timeout=10,
        step=0.2,
    )
    assert (rec["state"], rec["exit_code"], rec["reason"]) == ("failed", 4, "exit-code")


def test_missing_image_is_rejected(cli) -> None:
    need_engine = get_executor("docker").available()
    if not need_engine.reachable:
        pytest.skip("no engine")
    (final,) = run(cli, job("noimg", "fogctl-test/does-not-exist:0", "true"), code=1)
    assert (final["state"], final["reason"]) == ("failed", "rejected")
    assert "does not pull" in final["detail"]


def test_cancel_when_the_runner_is_gone(cli, busybox_image: str, fog_home: Path) -> None:
    state = State()
    engine.submit(state, [parse_spec(job("orphan", busybox_image, "sleep 30"))])
    runner = _spawn_runner(fog_home, ["orphan"])
    poll(lambda: engine.get_job(State(), "orphan").ref, timeout=20)
    runner.send_signal(signal.SIGKILL)
    runner.wait(5)
    res = cli("jobs", "cancel", "orphan", "--json")
    assert res.code == 0
    rec = res.record()
    assert (rec["state"], rec["reason"]) == ("cancelled", "stopped")


def test_logs_follow_a_running_container(cli, busybox_image: str, fog_home: Path) -> None:
    state = State()
    engine.submit(
        state,
        [
            parse_spec(
                job("ticker", busybox_image, "for i in 1 2 3; do echo tick $i; sleep 0.2; done")
            )
        ],
    )
    runner = _spawn_runner(fog_home, ["ticker"])
    try:
        poll(lambda: engine.get_job(State(), "ticker").ref, timeout=20)
        out = cli("jobs", "logs", "--follow", "ticker").stdout
    finally:
        runner.wait(20)
    assert out.splitlines() == ["tick 1", "tick 2", "tick 3"]


def test_reconcile_finds_an_unrecorded_container_by_label(cli, busybox_image: str) -> None:
    """fogctl died after starting the container but before writing its id down."""
    import time

    from fogctl.jobs.executors.base import LABEL_STATE

    state = State()
    spec = parse_spec(job("lbl", busybox_image, "sleep 0.5; echo found-me"))
    engine.submit(state, [spec])
    with state.db.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', run_id = 'lbl-1', attempt = 1, started = ?,"
            " owner_pid = 999999999 WHERE id = 'lbl'",
            (time.time(),),
        )
    work = engine.job_dir(state, "lbl") / "work"
    work.mkdir(parents=True)
    work.chmod(0o777)
    handle = get_executor("docker").start(
        Launch(spec, "lbl-1", work, labels={LABEL_STATE: str(state.root)})
    )
    rec = cli("jobs", "ls", "--json").record()
    assert (rec["state"], rec["ref"]) == ("running", handle.ref)
    done = poll(
        lambda: (lambda r: r if r["state"] == "succeeded" else None)(
            cli("jobs", "ls", "--json").record()
        ),
        timeout=15,
        step=0.2,
    )
    assert done["ref"] == handle.ref
    assert "found-me" in logs_of(cli, "lbl")


def test_inputs_in_outputs_out(cli, busybox_image: str, tmp_path: Path) -> None:
    import io
    import tarfile

    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    script = "mkdir -p res && wc -l < in/data.csv > res/n.txt && ln -s /etc/passwd leak"
    (final,) = run(
        cli,
        job(
            "io",
            busybox_image,
            script,
            inputs=[{"source": str(data), "path": "in/data.csv"}],
            outputs=["res", "leak"],
        ),
        code=0,
    )
    blobs = State().blobs
    assert set(final["outputs"]) == {"res"}  # the symlink out of /work is not collected
    with tarfile.open(fileobj=io.BytesIO(blobs.get(final["outputs"]["res"]))) as tar:
        member = tar.extractfile("n.txt")
        assert member is not None and member.read() == b"2\n"


def test_resubmit_with_retry(cli, busybox_image: str) -> None:
    spec = job("again", busybox_image, "exit 1")
    (first,) = run(cli, spec, code=1)
    (same,) = run(cli, spec, code=1)
    assert same["attempt"] == first["attempt"] == 1  # not run twice
    res = cli("submit", "-", "--wait", "--retry", "--json", input=json.dumps(spec) + "\n")
    assert res.code == 1 and res.records()[-1]["attempt"] == 2


def test_stop_kills_after_the_grace_when_the_signal_is_ignored(
    busybox_image: str, tmp_path: Path
) -> None:
    spec = parse_spec(job("deaf", busybox_image, "trap '' TERM; echo ready; sleep 30"))
    ex = get_executor("docker")
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    handle = ex.start(Launch(spec, "deaf-1", work, labels={LABEL_STATE: str(State().root)}))
    try:
        poll(lambda: b"ready" in b"".join(ex.logs(handle)), timeout=10)
        start = time.monotonic()
        ex.stop(handle, "SIGTERM", grace=0.5)
        took = time.monotonic() - start
        result = ex.wait(handle, timeout=5)
        assert result is not None
        assert (result.reason, result.exit_code) == ("stopped", 137)
        assert 0.5 <= took < 5  # waited out the grace on the Engine's wait, then SIGKILL
    finally:
        ex.remove(handle)
