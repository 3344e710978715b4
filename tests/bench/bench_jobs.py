"""Job execution overheads, each figure beside a reference measured in the same run.

    python tests/bench/bench_jobs.py [--runs N] [--jobs N] [--concurrency N] [--baseline REV]

Targets (issue #4):

* overhead: median wall time of ``fogctl submit --wait`` for a trivial container
  vs ``docker run --rm`` of the same container, ratio <= 1.3;
* throughput: N (100) trivial jobs submitted at once, concurrency bounded by
  ``--concurrency``, in jobs/s beside a plain sequential loop of ``docker run --rm``;
* WASM: start-to-exit of a trivial WASI job (executor start -> exit), median < 100 ms,
  beside the whole ``fogctl submit --wait`` process for the same job.

Needs a Docker Engine and ``/bin/busybox`` (the image is built locally, no registry);
without them only the WASM figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "fogctl-bench/busybox:1"
PYCACHE = Path(tempfile.gettempdir()) / "fogctl-bench-pycache"


def fogctl_cmd() -> list[str]:
    """The ``fogctl`` console script of this interpreter, as pip installs it: not a
    version manager's shim found first on PATH (pyenv's costs ~50 ms per run)."""
    beside = Path(sys.executable).with_name("fogctl")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    exe = shutil.which("fogctl")
    return [exe] if exe else [sys.executable, "-m", "fogctl.cli.main"]


def fog_env(home: Path) -> dict[str, str]:
    """The environment of a measured ``fogctl``: its own state dir, and byte-code cached
    (in a private prefix) as it is for an installed package, even where the caller set
    PYTHONDONTWRITEBYTECODE (which alone adds ~40 ms of compiling per process)."""
    env = dict(os.environ, FOGCTL_HOME=str(home), PYTHONPYCACHEPREFIX=str(PYCACHE))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(cmd: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - start


def docker_ok() -> bool:
    try:
        from fogctl.jobs.executors.docker import docker_client

        docker_client().close()
    except Exception:
        return False
    return Path("/bin/busybox").exists()


def spec_line(name: str, **extra: object) -> str:
    spec = {"metadata": {"name": name}, "image": IMAGE, "command": ["true"], **extra}
    return json.dumps(spec) + "\n"


def baseline_tree(rev: str, dest: Path) -> Path:
    """Revision ``rev`` of fogctl laid out as installed (``cli/`` as ``fogctl/cli``),
    to be put first on PYTHONPATH: a before/after comparison within one run."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "fogctl", "cli"], capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "cli").rename(dest / "fogctl" / "cli")
    return dest


def hardened_run(docker: str, work: Path) -> list[str]:
    """``docker run --rm`` of the same container *with the options fogctl gives it*
    (no network, read-only root, init...): the reference for fogctl's own overhead.
    Plain ``docker run --rm`` also pays for a bridge network endpoint (~70 ms here)."""
    from fogctl.jobs import parse_spec
    from fogctl.jobs.executors import Launch
    from fogctl.jobs.executors.docker import hardened_options

    spec = parse_spec(json.loads(spec_line("ref")))
    o = hardened_options(Launch(spec, "ref-1", work))
    work.mkdir(parents=True, exist_ok=True)
    cmd = [docker, "run", "--rm", "--init", "--read-only", "--user", o["user"]]
    cmd += ["--tmpfs", "/tmp:" + o["tmpfs"]["/tmp"], "--cap-drop", "ALL"]
    cmd += ["--security-opt", "no-new-privileges", "--network", o["network_mode"]]
    cmd += ["--ipc", o["ipc_mode"], "--pids-limit", str(o["pids_limit"])]
    cmd += ["--cpus", f"{o['nano_cpus'] / 1e9:g}", "--memory", str(o["mem_limit"])]
    cmd += ["--memory-swap", str(o["memswap_limit"]), "-v", f"{work}:/work", "-w", "/work"]
    return [*cmd, IMAGE, "true"]


def bench_overhead(runs: int, home: Path, baseline: str | None = None) -> None:
    env = fog_env(home)
    fog = fogctl_cmd()
    docker = shutil.which("docker") or "docker"
    old_env = None
    if baseline:
        tree = baseline_tree(baseline, home.parent / "baseline")
        old_env = dict(fog_env(home.parent / "ob"), PYTHONPATH=str(tree))
    old_cmd = [*fog, "submit", "-", "--wait", "-q"]
    timed([docker, "run", "--rm", IMAGE, "true"])  # warm
    for i in range(2):  # warm: the image's layers, and the byte-code cache
        timed([*fog, "submit", "-", "--wait", "-q"], env, spec_line(f"warm{i}"))
        if old_env is not None:
            timed(old_cmd, old_env, spec_line(f"warm{i}"))
    hard_cmd = hardened_run(docker, home.parent / "hard-work")
    timed(hard_cmd)  # warm
    ours, ref, old, hard = [], [], [], []
    for i in range(runs):  # interleaved, so all see the same machine load
        ref.append(timed([docker, "run", "--rm", IMAGE, "true"]))
        hard.append(timed(hard_cmd))
        ours.append(timed([*fog, "submit", "-", "--wait", "-q"], env, spec_line(f"o{i}")))
        if old_env is not None:
            old.append(timed(old_cmd, old_env, spec_line(f"o{i}")))
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"overhead   fogctl submit --wait (container)  median {a * 1000:7.0f} ms")
    print(f"           docker run --rm (reference)       median {b * 1000:7.0f} ms")
    print(f"           ratio {a / b:.2f}  (target <= 1.3)")
    h = statistics.median(hard)
    print(
        f"           docker run --rm, fogctl's options   median {h * 1000:7.0f} ms"
        f"  ratio {a / h:.2f} (fogctl's own overhead)"
    )
    if old:
        c = statistics.median(old)
        print(
            f"           fogctl at {baseline} (baseline)     median {c * 1000:7.0f} ms"
            f"  ratio {c / b:.2f}"
        )


def bench_throughput(n: int, concurrency: int, loop_n: int, home: Path) -> None:
    env = fog_env(home)
    fog = fogctl_cmd()
    docker = shutil.which("docker") or "docker"
    text = "".join(spec_line(f"tp{i}") for i in range(n))
    t = timed([*fog, "submit", "-", "--wait", "-q", "--concurrency", str(concurrency)], env, text)
    start = time.perf_counter()
    for _ in range(loop_n):
        subprocess.run([docker, "run", "--rm", IMAGE, "true"], capture_output=True, check=True)
    loop = time.perf_counter() - start
    print(
        f"throughput fogctl submit --wait, {n} jobs, concurrency {concurrency}: "
        f"{n / t:6.2f} jobs/s ({t:.1f} s)"
    )
    print(
        f"           sequential docker run --rm loop ({loop_n} runs, reference): "
        f"{loop_n / loop:6.2f} jobs/s ({loop:.1f} s)"
    )


def bench_wasm(runs: int, home: Path) -> None:
    from fogctl.jobs import parse_spec
    from fogctl.jobs.executors import Launch, get_executor

    ex = get_executor("wasm")
    spec = parse_spec({"metadata": {"name": "w"}, "wasm": str(ROOT / "examples" / "hello.wat")})
    work = Path(tempfile.mkdtemp()) / "work"
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        handle = ex.start(Launch(spec, f"w-{i}", work))
        result = ex.wait(handle)
        elapsed = time.perf_counter() - start
        assert result is not None and result.ok, result
        ex.remove(handle)
        if i:  # the first run compiles the module; later ones reuse the artifact
            times.append(elapsed)
    env = fog_env(home)
    fog = fogctl_cmd()
    hello = str(ROOT / "examples" / "hello.wat")
    procs = []
    for i in range(max(3, runs // 5) + 1):
        line = json.dumps({"metadata": {"name": f"h{i}"}, "wasm": hello}) + "\n"
        took = timed([*fog, "submit", "-", "--wait", "-q"], env, line)
        if i:  # the first one fills the byte-code cache
            procs.append(took)
    exe_ms = statistics.median(times) * 1000
    proc_ms = statistics.median(procs) * 1000
    print(
        f"wasm       start-to-exit (executor)          median {exe_ms:7.1f} ms  (target < 100 ms)"
    )
    print(
        f"           whole fogctl submit --wait process median {proc_ms:7.0f} ms"
        " (reference: includes Python start-up)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--loop", type=int, default=20, help="docker run loop length")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time fogctl at this git revision (before/after)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_wasm(max(args.runs, 21), Path(tmp) / "w")
        if not docker_ok():
            print("docker: no Docker Engine or /bin/busybox; container figures skipped")
            return 0
        from fogctl.jobs.images import build_busybox_image

        build_busybox_image(IMAGE)
        bench_overhead(args.runs, Path(tmp) / "o", args.baseline)
        bench_throughput(args.jobs, args.concurrency, args.loop, Path(tmp) / "t")
    return 0


if __name__ == "__main__":
    sys.exit(main())
