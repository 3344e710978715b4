"""Timers: systemd units checked by systemd-analyze, crontab lines, idempotence, uninstall."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.harvest.timers import (
    CronTab,
    Schedule,
    install,
    parse_cron_line,
    render_units,
    uninstall,
    verify_units,
)
from fogctl.state import State

from ..conftest import need_binary


def _units(unit_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(unit_dir.iterdir())}


def test_systemd_install_is_verified_idempotent_and_uninstalls_exactly(
    fog_home: Path, tmp_path: Path
) -> None:
    need_binary("systemd-analyze")
    state = State(fog_home)
    d = tmp_path / "units"
    d.mkdir()
    (d / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    recs = install(
        state,
        directory=d,
        schedule=Schedule(10, 120),
        enable=False,
        cpu_quota=55,
        memory_max=90,
    )
    assert [Path(r.path).name for r in recs] == ["fogctl-harvest.service", "fogctl-harvest.timer"]
    assert all(r.changed and r.verified.startswith("ok") for r in recs), recs
    units = _units(d)
    timer = units["fogctl-harvest.timer"]
    assert "OnCalendar=*-*-* *:00/10:00" in timer and "Persistent=true" in timer
    assert "RandomizedDelaySec=120" in timer
    service = units["fogctl-harvest.service"]
    assert "Type=oneshot" in service and f"Environment=FOGCTL_HOME={fog_home}" in service
    assert "harvest run --quiet" in service
    assert "CPUQuota=55%" in service and "MemoryMax=90%" in service

    again = install(
        state,
        directory=d,
        schedule=Schedule(10, 120),
        enable=False,
        cpu_quota=55,
        memory_max=90,
    )
    assert not any(r.changed for r in again) and _units(d) == units

    removed = uninstall(state)
    assert sorted(Path(r.path).name for r in removed) == sorted(
        ["fogctl-harvest.service", "fogctl-harvest.timer"]
    )
    assert _units(d) == {"other.service": "[Service]\nExecStart=/bin/true\n"}
    assert uninstall(state) == []


def test_loop_service_and_refusals(fog_home: Path, tmp_path: Path) -> None:
    need_binary("systemd-analyze")
    state = State(fog_home)
    d = tmp_path / "units"
    (rec,) = install(state, directory=d, loop=True, grace=3, enable=False)
    text = Path(rec.path).read_text()
    assert "harvest run --loop" in text and "KillSignal=SIGTERM" in text
    assert "TimeoutStopSec=18" in text and rec.verified.startswith("ok")
    # edited by the owner since: uninstall keeps it unless forced
    Path(rec.path).write_text(text + "# mine\n")
    with pytest.raises(OperationFailed, match="changed since"):
        uninstall(state)
    assert Path(rec.path).exists()
    uninstall(state, force=True)
    assert not Path(rec.path).exists()
    # a file fogctl did not write is never replaced
    (d / "fogctl-harvest.timer").write_text("[Timer]\nOnCalendar=daily\n")
    with pytest.raises(OperationFailed, match="not written by fogctl"):
        install(state, directory=d, enable=False)


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    need_binary("systemd-analyze")
    units = render_units(tmp_path, Schedule(), scope="user", loop=False, grace=3)
    units["fogctl-harvest.timer"] = units["fogctl-harvest.timer"].replace(
        "OnCalendar=*-*-* *:00/5:00", "OnCalendar=*:99/5"
    )
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    verdict = verify_units([tmp_path / n for n in units], "user")
    assert verdict.startswith("failed"), verdict


def _crontab_l(*user: str) -> subprocess.CompletedProcess[str]:
    u = ["-u", *user] if user else []
    return subprocess.run(["crontab", *u, "-l"], capture_output=True, text=True, check=False)


@pytest.fixture
def crontab() -> Iterator[CronTab]:
    """The real crontab(1) with a crontab no one else owns, or the user's own, restored.

    As root (CI): a temporary system user made for this test, whose crontab is
    removed with it; no real user's crontab is touched even if the test dies.
    Otherwise: the user's own crontab, saved first and restored byte for byte.
    """
    need_binary("crontab")
    if os.geteuid() == 0 and shutil.which("useradd") and shutil.which("userdel"):
        user = f"fogctl-hv{os.getpid()}"
        subprocess.run(["userdel", user], capture_output=True, check=False)  # a leftover
        add = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]
        for attempt in range(10):  # /etc/passwd may be locked by another useradd a moment
            res = subprocess.run(add, capture_output=True, text=True, check=False)
            if res.returncode == 0 or "lock" not in res.stderr or attempt == 9:
                break
            time.sleep(0.2)
        assert res.returncode == 0, res.stderr
        try:
            assert "no crontab" in _crontab_l(user).stderr  # private: starts empty
            yield CronTab(user=user)
        finally:
            subprocess.run(["crontab", "-u", user, "-r"], capture_output=True, check=False)
            for attempt in range(10):
                res = subprocess.run(["userdel", user], capture_output=True, text=True)
                if res.returncode == 0 or "lock" not in res.stderr or attempt == 9:
                    break
                time.sleep(0.2)
            assert res.returncode == 0, res.stderr
        return
    before = _crontab_l()
    had = before.returncode == 0
    try:
        yield CronTab()
    finally:
        if had:
            subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True, check=False)
        after = _crontab_l()
        assert (after.returncode == 0) == had and (not had or after.stdout == before.stdout)


def test_cron_install_parse_idempotent_uninstall(fog_home: Path, crontab: CronTab) -> None:
    state = State(fog_home)
    others = crontab.read()  # the user's own lines (none for the temporary user)
    crontab.write([*others, "0 3 * * * /usr/bin/backup"])
    mine = [*others, "0 3 * * * /usr/bin/backup"]
    (rec,) = install(state, method="cron", schedule=Schedule(15, 30), crontab=crontab)
    assert rec.changed and rec.method == "cron"
    lines = _crontab_l(*([crontab.user] if crontab.user else [])).stdout.splitlines()
    assert lines[: len(mine)] == mine and len(lines) == len(mine) + 1
    fields, command = parse_cron_line(lines[-1])
    assert fields == ["*/15", "*", "*", "*", "*"]
    assert "harvest run --quiet --jitter 30" in command and f"FOGCTL_HOME={fog_home}" in command
    (again,) = install(state, method="cron", schedule=Schedule(15, 30), crontab=crontab)
    assert not again.changed and len(crontab.read()) == len(mine) + 1
    # a new schedule replaces our line, never duplicates it
    install(state, method="cron", schedule=Schedule(30, 30), crontab=crontab)
    assert [ln.split()[0] for ln in crontab.read()[len(others) :]] == ["0", "*/30"]
    (gone,) = uninstall(state, crontab=crontab)
    assert gone.changed and crontab.read() == mine
    assert uninstall(state, crontab=crontab) == []  # nothing recorded any more
    # where ours was the only line, uninstall leaves no (empty) crontab behind
    crontab.write(others)
    install(state, method="cron", schedule=Schedule(15, 30), crontab=crontab)
    uninstall(state, crontab=crontab)
    if not others:
        assert "no crontab" in _crontab_l(*([crontab.user] if crontab.user else [])).stderr


def test_cron_parsing_and_schedules() -> None:
    assert parse_cron_line("*/5 * * * * fogctl harvest run")[1] == "fogctl harvest run"
    for bad in ("* * * *", "61 * * * * x", "*/5 25 * * * x", "a * * * * x"):
        with pytest.raises(InvalidInput):
            parse_cron_line(bad)
    assert Schedule(60).cron == "0 * * * *" and Schedule(120).on_calendar == "*-*-* 00/2:00:00"
    for bad_minutes in (0, 7, 90, 300):
        with pytest.raises(InvalidInput):
            Schedule(bad_minutes)


def test_cron_without_crontab_binary(fog_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    from fogctl.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable, match="crontab"):
        CronTab()
