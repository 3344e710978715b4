"""OOM evidence from memory cgroups, over fake cgroup trees of both versions and both
Docker cgroup drivers (no engine needed), and the docker executor's use of it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fogctl.jobs.executors import cgroups
from fogctl.jobs.executors.cgroups import OomEvidence, judge_oom
from fogctl.jobs.executors.docker import DockerExecutor

CID = "3f" * 32
V2_EVENTS = "low 0\nhigh 0\nmax {max}\noom {oom}\noom_kill {kills}\noom_group_kill 0\n"
V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"


def v2_tree(root: Path, driver: str, parent_kills: int, own_kills: int | None) -> Path:
    """A unified hierarchy as the kernel lays it out for a running container."""
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    own = root / cgroups.container_cgroup(CID, driver)
    own.mkdir(parents=True)
    own.parent.joinpath("memory.events").write_text(
        V2_EVENTS.format(max=9, oom=parent_kills, kills=parent_kills)
    )
    if own_kills is not None:
        own.joinpath("memory.events").write_text(
            V2_EVENTS.format(max=3, oom=own_kills, kills=own_kills)
        )
    return own


def v1_tree(root: Path, driver: str, kills: int) -> Path:
    """A legacy hierarchy (memory controller mounted at memory/)."""
    own = root / "memory" / cgroups.container_cgroup(CID, driver)
    own.mkdir(parents=True)
    own.joinpath("memory.oom_control").write_text(V1_OOM_CONTROL.format(kills=kills))
    return own


@pytest.mark.parametrize(
    ("driver", "parent", "path"),
    [
        ("cgroupfs", None, f"docker/{CID}"),
        ("cgroupfs", "/fogctl/jobs", f"fogctl/jobs/{CID}"),
        ("systemd", None, f"system.slice/docker-{CID}.scope"),
        ("systemd", "fog-jobs.slice", f"fog.slice/fog-jobs.slice/docker-{CID}.scope"),
        ("systemd", "-.slice", f"docker-{CID}.scope"),
    ],
)
def test_container_cgroup_by_driver_and_parent(driver: str, parent: str | None, path: str) -> None:
    assert cgroups.container_cgroup(CID, driver, parent) == path


def test_expand_slice_follows_systemd_rules() -> None:
    assert cgroups.expand_slice("a-b-c.slice") == "a.slice/a-b.slice/a-b-c.slice"
    assert cgroups.expand_slice("system.slice") == "system.slice"
    assert cgroups.expand_slice("-.slice") == ""


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_v2_layout_counts(tmp_path: Path, driver: str) -> None:
    v2_tree(tmp_path, driver, parent_kills=5, own_kills=2)
    own = cgroups.container_cgroup(CID, driver)
    assert cgroups.cgroup_version(tmp_path) == 2
    assert cgroups.read_oom_kills(cgroups.events_file(tmp_path, own, 2)) == 2
    parent = own.rsplit("/", 1)[0]
    assert cgroups.read_oom_kills(cgroups.events_file(tmp_path, parent, 2)) == 5


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_v1_layout_counts(tmp_path: Path, driver: str) -> None:
    v1_tree(tmp_path, driver, kills=1)
    own = cgroups.container_cgroup(CID, driver)
    assert cgroups.cgroup_version(tmp_path) == 1
    assert cgroups.read_oom_kills(cgroups.events_file(tmp_path, own, 1)) == 1
    # gone (runc removed the cgroup at exit): no count, no error
    assert cgroups.read_oom_kills(cgroups.events_file(tmp_path, "docker/gone", 1)) is None


def test_parse_oom_kills_needs_the_exact_key() -> None:
    assert cgroups.parse_oom_kills("oom 4\noom_kill 3\noom_group_kill 7\n") == 3
    assert cgroups.parse_oom_kills("oom_group_kill 7\n") is None
    assert cgroups.parse_oom_kills("oom_kill x\n") is None
    assert cgroups.parse_oom_kills("") is None


def test_cgroup_from_proc_both_versions() -> None:
    v2 = f"0::/system.slice/docker-{CID}.scope\n"
    assert cgroups.cgroup_from_proc(v2, 2) == f"system.slice/docker-{CID}.scope"
    v1 = f"12:pids:/docker/{CID}\n9:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/\n"
    assert cgroups.cgroup_from_proc(v1, 1) == f"docker/{CID}"
    assert cgroups.cgroup_from_proc("garbage\n", 2) is None


@pytest.mark.parametrize(
    ("evidence", "code", "oom"),
    [
        (OomEvidence(engine=True), 137, True),
        (OomEvidence(engine=True), 0, True),  # a child was killed, main exited 0
        (OomEvidence(container=1, version=2), 1, True),
        (OomEvidence(container=0, parent_before=4, parent_after=5, version=2), 137, True),
        (OomEvidence(parent_before=4, parent_after=5, version=2), 137, True),
        (OomEvidence(parent_before=4, parent_after=5, version=2), 1, False),
        (OomEvidence(parent_before=5, parent_after=5, version=2), 137, False),
        (OomEvidence(parent_before=None, parent_after=5, version=2), 137, False),
        (OomEvidence(parent_before=4, parent_after=5, version=1), 137, False),  # v1: local
        (OomEvidence(), 137, False),
    ],
)
def test_judge_oom(evidence: OomEvidence, code: int, oom: bool) -> None:
    assert (judge_oom(evidence, code) is not None) is oom


def _executor(root: Path, driver: str) -> DockerExecutor:
    ex = DockerExecutor(base_url="unix:///nonexistent/docker.sock")
    ex.cgroup_root = root
    ex._driver = driver  # what GET /info would say
    return ex


def _info(code: int, engine_oom: bool = False) -> dict[str, object]:
    return {
        "State": {"ExitCode": code, "OOMKilled": engine_oom, "FinishedAt": ""},
        "HostConfig": {"Memory": 16 * 2**20},
    }


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_executor_reports_v2_oom_the_engine_missed(tmp_path: Path, driver: str) -> None:
    own = v2_tree(tmp_path, driver, parent_kills=4, own_kills=0)
    ex = _executor(tmp_path, driver)
    ex._watch_oom(CID)  # before start
    # the job is OOM-killed: the kernel counts it up the tree; runc then removes the
    # container's cgroup at exit, before fogctl sees the exit
    own.parent.joinpath("memory.events").write_text(V2_EVENTS.format(max=12, oom=5, kills=5))
    own.joinpath("memory.events").unlink()
    own.rmdir()
    result = ex._exit(CID, _info(137))
    assert (result.reason, result.exit_code) == ("oom", 137)
    assert "parent cgroup" in result.detail and "out of memory" in result.detail


def test_executor_reads_the_container_count_while_it_is_there(tmp_path: Path) -> None:
    own = v2_tree(tmp_path, "cgroupfs", parent_kills=0, own_kills=0)
    ex = _executor(tmp_path, "cgroupfs")
    ex._watch_oom(CID)
    own.joinpath("memory.events").write_text(V2_EVENTS.format(max=1, oom=1, kills=1))
    assert ex._exit(CID, _info(2)).reason == "oom"  # main process exited 2 after a kill
    zero = ex._exit(CID, _info(0))
    assert zero.reason == "completed" and "OOM-killed" in zero.detail


def test_executor_sigkill_without_evidence_is_an_exit_code(tmp_path: Path) -> None:
    v2_tree(tmp_path, "systemd", parent_kills=4, own_kills=None)
    ex = _executor(tmp_path, "systemd")
    ex._watch_oom(CID)
    result = ex._exit(CID, _info(137))
    assert (result.reason, result.detail) == ("exit-code", "killed by SIGKILL (137)")


def test_executor_on_v1_trusts_the_engine_flag(tmp_path: Path) -> None:
    v1_tree(tmp_path, "cgroupfs", kills=0)
    ex = _executor(tmp_path, "cgroupfs")
    ex._driver = None
    ex._watch_oom(CID)  # v1: nothing to watch (counts are not hierarchical)
    assert ex._oom == {}
    assert ex._exit(CID, _info(137, engine_oom=True)).reason == "oom"
    assert ex._exit(CID, _info(137)).reason == "exit-code"


class _InfoOnly:
    """Stands in for the SDK client: only GET /info is expected."""

    def __init__(self) -> None:
        self.calls = 0

    def info(self) -> dict[str, str]:
        self.calls += 1
        return {"CgroupDriver": "systemd"}


def test_background_warm_up_learns_the_driver_once(tmp_path: Path) -> None:
    v2_tree(tmp_path, "systemd", parent_kills=0, own_kills=None)
    ex = DockerExecutor(base_url="unix:///nonexistent/docker.sock")
    ex.cgroup_root = tmp_path
    fake = _InfoOnly()
    ex._client = fake  # as if the SDK client were built already
    ex._warming = threading.Thread(target=ex._warm)  # as available() starts it
    ex._warming.start()
    ex._warming.join(10)
    assert ex._driver == "systemd"
    ex._watch_oom(CID)
    assert ex._oom[CID][1] == "system.slice" and fake.calls == 1


def test_no_cgroup_work_for_a_remote_engine(tmp_path: Path) -> None:
    v2_tree(tmp_path, "cgroupfs", parent_kills=0, own_kills=None)
    ex = DockerExecutor(base_url="tcp://127.0.0.1:2375")  # its cgroups are not ours to read
    ex.cgroup_root = tmp_path
    ex._watch_oom(CID)
    assert ex._oom == {} and ex._driver is None
