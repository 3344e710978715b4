"""Tors started for an owner exit when the owner dies (checked last; see conftest)."""

from __future__ import annotations

from typing import Any

from tests.tor.conftest import poll


def test_tor_exits_when_its_owner_is_killed(orphaned_tor: Any) -> None:
    from fogctl.tor import proc

    poll(
        lambda: not proc.pid_alive(orphaned_tor.pid),
        timeout=30,
        what="tor to notice its owner died",
        interval=0.2,
    )
    assert "Owning controller process has vanished" in orphaned_tor.log.read_text()
