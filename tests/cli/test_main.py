from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

FOGCTL = [sys.executable, "-m", "fogctl.cli.main"]


def run(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOGCTL, *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        input=input,
        timeout=60,
    )


def test_init_twice_changes_nothing_and_says_so(cli, fog_home: Path) -> None:
    first = cli("init", "--json")
    assert first.code == 0, first.stderr
    rec = first.record()
    assert rec["kind"] == "node" and rec["created"] is True
    assert rec["state_dir"] == str(fog_home)
    keys = {p.name: p.read_bytes() for p in (fog_home / "keys").iterdir()}
    second = cli("init", "--json")
    assert second.code == 0
    assert second.record()["created"] is False
    assert second.record()["id"] == rec["id"]
    assert "already initialised" in second.stderr
    assert {p.name: p.read_bytes() for p in (fog_home / "keys").iterdir()} == keys
    for p in (fog_home / "keys").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_status_prints_one_node_record_as_json_lines(cli) -> None:
    assert cli("init", "-q").code == 0
    res = cli("status")  # stdout is not a TTY under test: JSON Lines by default
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["kind"] == "node"
    assert set(rec["components"]) == {"docker", "tor", "chain"}
    for comp in rec["components"].values():
        assert set(comp) == {"reachable", "endpoint", "detail"}
    assert len(rec["ed25519"]) == 64 and len(rec["x25519"]) == 64


def test_status_pipes_into_json_tool(fog_home: Path) -> None:
    env = {**os.environ, "FOGCTL_HOME": str(fog_home)}
    assert run("init", "-q", env=env).returncode == 0
    status = run("status", "--json", env=env)
    tool = subprocess.run(
        [sys.executable, "-m", "json.tool", "--json-lines"],
        input=status.stdout,
        capture_output=True,
        text=True,
    )
    assert tool.returncode == 0 and '"kind": "node"' in tool.stdout


def test_table_mode_is_human(cli) -> None:
    cli("init", "-q")
    res = cli("status", "--table")
    assert res.code == 0
    assert "components.docker" in res.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.stdout.splitlines()[0])


def test_bad_flag_is_one_line_exit_2(cli) -> None:
    res = cli("init", "--bogus")
    assert res.code == 2
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1
    assert "--bogus" in res.stderr and "Traceback" not in res.stderr


def test_json_failure_writes_error_record(cli) -> None:
    res = cli("status", "--json")  # not initialised
    assert res.code == 1
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("fogctl: ")
    err = json.loads(lines[1])
    assert err == {"kind": "error", "code": "state", "exit": 1, "message": err["message"]}
    assert "fogctl init" in err["message"]


def test_status_before_init_creates_nothing(cli, fog_home: Path) -> None:
    res = cli("status")
    assert res.code == 1
    assert not fog_home.exists()


def test_unusable_state_dir_exit_1_nothing_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**os.environ, "FOGCTL_HOME": str(blocker / "home")}
    res = run("init", env=env)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "not a directory" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    env["FOGCTL_HOME"] = str(blocker)
    res = run("status", env=env)
    assert res.returncode == 1 and "not a directory" in res.stderr


def test_version_fast_path_and_flag() -> None:
    from fogctl import __version__

    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv=['fogctl','--version']; from fogctl.cli.main import run; run()",
        ],
        capture_output=True,
        text=True,
    )
    assert res.stdout.strip() == f"fogctl {__version__}"
    res = run("--home", "/tmp/x", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"fogctl {__version__}"


def test_home_flag_beats_environment(cli, tmp_path: Path) -> None:
    res = cli("--home", str(tmp_path / "other"), "init", "--json")
    assert res.code == 0
    assert res.record()["state_dir"] == str(tmp_path / "other")


def test_no_args_prints_help(cli) -> None:
    res = cli()
    assert res.code == 0
    assert "init" in res.stdout and "status" in res.stdout


def test_unknown_command(cli) -> None:
    res = cli("frobnicate")
    assert res.code == 2 and "No such command" in res.stderr


def _make_exe(directory: Path, name: str, body: str) -> Path:
    exe = directory / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return exe


def test_external_command_runs_with_fogctl_home(tmp_path: Path, fog_home: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _make_exe(bindir, "fogctl-hello", 'echo "home=$FOGCTL_HOME args=$*"; exit 7\n')
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FOGCTL_HOME": str(fog_home)}
    res = run("hello", "--flag", "x", env=env)
    assert res.returncode == 7
    assert res.stdout.strip() == f"home={fog_home} args=--flag x"


def test_builtins_cannot_be_shadowed(tmp_path: Path, fog_home: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _make_exe(bindir, "fogctl-init", "echo hijacked\n")
    _make_exe(bindir, "fogctl-extra", "echo extra\n")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FOGCTL_HOME": str(fog_home)}
    res = run("init", "--json", env=env)
    assert "hijacked" not in res.stdout and json.loads(res.stdout)["kind"] == "node"
    listing = [json.loads(line) for line in run("plugins", "--json", env=env).stdout.splitlines()]
    by_name = {p["name"]: p for p in listing if p["type"] == "executable"}
    assert by_name["init"]["shadowed"] is True
    assert by_name["extra"]["shadowed"] is False
    assert by_name["extra"]["target"] == str(bindir / "fogctl-extra")


def test_broken_config_is_invalid_input(cli, fog_home: Path) -> None:
    cli("init", "-q")
    (fog_home / "config.yaml").write_text("chain: [\n")
    res = cli("status")
    assert res.code == 2
    assert "config.yaml:" in res.stderr


def test_shell_completion_lists_subcommands(fog_home: Path) -> None:
    env = {
        **os.environ,
        "_FOGCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "fogctl st",
        "COMP_CWORD": "1",
    }
    res = subprocess.run(
        [sys.executable, "-c", "from fogctl.cli.main import run; run()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 0
    assert "status" in res.stdout.split()


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, cli) -> None:
    import fogctl.node

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    cli("init", "-q")
    monkeypatch.setattr(fogctl.node, "node_record", boom)
    res = cli("status")
    assert res.code == 130
