"""Shared fixtures: a private state directory per test, and a CLI runner."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def fog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own FOGCTL_HOME; nothing touches the user's real state."""
    home = tmp_path / "fog-home"
    monkeypatch.setenv("FOGCTL_HOME", str(home))
    for key in list(os.environ):
        if key.startswith("FOGCTL_") and key != "FOGCTL_HOME":
            monkeypatch.delenv(key)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def record(self) -> dict[str, Any]:
        recs = self.records()
        assert len(recs) == 1, self.stdout
        return recs[0]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run fogctl in-process: ``cli("status", "--json", input="...")`` -> Result."""
    from fogctl.cli import output
    from fogctl.cli.main import main

    def run(*args: str, input: str | None = None) -> Result:
        capsys.readouterr()
        if input is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        output.configure()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def need_binary(name: str) -> str:
    """Path of a real component's binary; missing is a failure in CI, a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def need(condition: bool, message: str) -> None:
    """Require a real component: fail in CI (CI=true), skip on a developer machine."""
    if not condition:
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def fresh_state(fog_home: Path) -> Iterator[Any]:
    from fogctl.state import State

    state, _ = State.create(fog_home)
    yield state
    state.close()
