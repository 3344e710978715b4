"""fogctl harvest: run queued work when the machine is idle, safely for its owner."""

from pathlib import Path
from typing import Annotated, Any

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

HELP = """Harvest idle compute: eligibility, policy, timers, checkpointed work cycles.

A timer (systemd or cron, see 'install') runs 'fogctl harvest run' every few minutes.
A cycle checks eligibility and, when the machine may work, runs queued tasks (from
'fogctl submit --harvest' or 'fogctl harvest add') with a CPU and memory cap. When
eligibility is lost mid-task (unplugged, owner back, too hot, other load), the task is
told to checkpoint, stopped within the grace period and resumed by a later cycle from
its checkpoint: no work is lost and nothing runs twice to completion.

Eligibility rules, each reported by 'status' with its reading, threshold and result
(pass, fail, absent: this machine has no such sensor and it never blocks, unknown: it
could not be read): battery level unless charging, CPU temperature (/sys on Linux,
else psutil), owner idle time (logind IdleHint where a seat exists, else the last
input-device or terminal access), CPU used by other processes (measured over an
interval), mains power and metered network (NetworkManager) where knowable, local
time windows.

Policy fields and defaults (set with 'policy set', kept under 'harvest:' in the state
dir config.yaml, overridden by FOGCTL_HARVEST_<FIELD>): min_battery 50 (% needed on
battery; charging always passes), battery_hysteresis 5 (resume at 55), run_on_battery
true, require_ac false, max_temp 70 (deg C; stop at or above), temp_hysteresis 5
(resume at 65 or below), idle 5m (owner idle at least this long; 0 ignores the owner),
max_other_cpu 25 (% of the machine used by other processes), cpu_hysteresis 10 (resume
below 15), cpu_limit 50% (a task's CPU cap: this share of max_cpus CPUs), max_cpus 1,
mem_idle 90 and mem_busy 50 (% of RAM a task may use with the idle rule on / off),
allow_metered true, hours empty (always; else HH:MM-HH:MM windows, may wrap midnight),
min_backoff 2m (a stop holds at least this long), grace 3s (checkpoint time before a
kill), checkpoint_every 60s (periodic WASM checkpoints), poll 1s, executor wasm
(reserved: a task's module or image picks its executor), allow_docker false,
strict_sensors false (true: an unreadable sensor blocks work).

Tasks run through the executors of 'fogctl submit' (fogctl-job(5)), with the policy's
caps: cpu_limit% of max_cpus CPUs and mem_idle/mem_busy% of RAM (at most the spec's
limits). WASM (the default) uses the jobs WASM executor in a child process, capped by a
cgroup CPU quota where fogctl may create one, else by CPU-time throttling
(SIGSTOP/SIGCONT), and by the store's memory limit. Preempted, it is stopped by an epoch
interruption after which the executor saves the instance's exported memories and
mutable globals (also every checkpoint_every); resume loads them into a fresh instance,
so a module keeps its progress there, not in locals, and its output after the last
checkpoint is never repeated. A task sees what 'fogctl submit' gives a WASM job: /work
with its inputs (outputs are collected from it), its checkpoint dir, its args and env;
a module without WASI gets FOGCTL_INDEX_START/END as its globals index_start/index_end;
a module that saves its own checkpoint and exits 85 is simply run again. Docker tasks
(allow_docker) use the jobs docker executor with --cpus and --memory, get the spec's
checkpoint signal and grace seconds, and a container exiting 85 has saved its state.

Power model: P = alpha + beta x CPU utilisation, fitted from RAPL counters by
'calibrate', else 5 W + 20 W (laptop) or 30 W + 65 W (desktop). 'status' shows watts
and battery drain per hour; each finished task records its energy (beta x its CPU
seconds / CPUs).

FOGCTL_HARVEST_SENSORS=FILE replaces the real sensors with a JSON or YAML file of
readings (battery, charging, on_ac, temperature, cpu_other, idle, metered, ...; null:
absent), for scenarios and tests.

FOGCTL_WASM_CAP_METHOD=throttle caps WASM tasks by CPU-time throttling even where a
cgroup CPU quota could be used (the default, auto, prefers the quota)."""

app = typer.Typer(help=HELP, no_args_is_help=True)
policy_app = typer.Typer(
    help="Show or change the harvest policy (kept in the state dir config.yaml).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


@app.command(
    epilog=examples(
        "fogctl harvest status",
        "fogctl harvest status --json | jq '.rules[] | select(.result==\"fail\")'",
        "FOGCTL_HARVEST_SENSORS=examples/harvest-unplugged.yaml fogctl harvest status",
    )
)
@output.with_output
def status() -> None:
    """Print eligibility now: every rule with its reading, threshold and result.

    A rule's result is pass, fail, absent (this machine has no such sensor: never
    blocks) or unknown (could not be read). Also estimates watts and battery drain
    per hour with a task running, and counts the queue. Changes nothing.
    """
    from fogctl.harvest.engine import status as harvest_status

    rec = harvest_status(current_state())
    if output.current().json_lines:
        output.emit_one(rec)
        return
    verdict = "ELIGIBLE" if rec.eligible else rec.state.upper()
    output.emit(
        [
            {
                "rule": r.rule,
                "result": r.result,
                "reading": r.reading,
                "threshold": r.threshold,
                "detail": r.detail,
            }
            for r in rec.rules
        ],
        title=f"harvest: {verdict} (sensors: {rec.sensors})",
    )
    drain = rec.battery_drain_pct_per_h
    output.emit_one(
        {
            "kind": "harvest-status",
            "power": f"{rec.watts_idle:g} W now, {rec.watts_task:g} W with a task"
            + (f", battery -{drain:g}%/h" if drain is not None else ""),
            "model": rec.power_model,
            "queue": f"{rec.queued} queued, {rec.running} running, "
            f"{rec.preempted} preempted, {rec.done} done",
        }
    )


@policy_app.command(
    "show", epilog=examples("fogctl harvest policy show", "fogctl harvest policy show --json")
)
@output.with_output
def policy_show() -> None:
    """Print every policy field, its value and where it comes from (flag, env, file, default)."""
    from fogctl.harvest.engine import policy_record

    output.emit_one(policy_record(current_state()))


@policy_app.command(
    "set",
    epilog=examples(
        "fogctl harvest policy set --min-battery 50 --max-temp 70 --idle 5m --cpu-limit 60%",
        "fogctl harvest policy set --hours 22:00-07:00 --allow-docker true",
        "fogctl harvest policy set --reset",
    ),
)
@output.with_output
def policy_set(
    min_battery: Annotated[
        str | None, typer.Option(help="Battery % needed unless charging (50).")
    ] = None,
    battery_hysteresis: Annotated[
        str | None, typer.Option(help="Resume at min-battery + this (5).")
    ] = None,
    run_on_battery: Annotated[
        str | None, typer.Option(help="Run without AC at all: true/false (true).")
    ] = None,
    require_ac: Annotated[str | None, typer.Option(help="Run only on mains power (false).")] = None,
    max_temp: Annotated[
        str | None, typer.Option(help="Stop at this CPU temperature, deg C (70).")
    ] = None,
    temp_hysteresis: Annotated[
        str | None, typer.Option(help="Resume at max-temp - this (5).")
    ] = None,
    idle: Annotated[
        str | None,
        typer.Option(help="Owner idle this long first, e.g. 5m; 0 ignores the owner (5m)."),
    ] = None,
    max_other_cpu: Annotated[
        str | None, typer.Option(help="Stop when other processes use more CPU % (25).")
    ] = None,
    cpu_hysteresis: Annotated[
        str | None, typer.Option(help="Resume below max-other-cpu - this (10).")
    ] = None,
    cpu_limit: Annotated[
        str | None, typer.Option(help="CPU cap of a task, % of max-cpus CPUs (50%).")
    ] = None,
    max_cpus: Annotated[str | None, typer.Option(help="CPUs one task may use (1).")] = None,
    mem_idle: Annotated[
        str | None, typer.Option(help="Memory cap, % of RAM, owner idle (90).")
    ] = None,
    mem_busy: Annotated[
        str | None, typer.Option(help="Memory cap, % of RAM, idle rule off (50).")
    ] = None,
    allow_metered: Annotated[
        str | None, typer.Option(help="Run on a metered network (true).")
    ] = None,
    hours: Annotated[
        str | None, typer.Option(help="Local time windows HH:MM-HH:MM[,...]; empty = always.")
    ] = None,
    min_backoff: Annotated[
        str | None, typer.Option(help="After a stop, wait at least this long (2m).")
    ] = None,
    grace: Annotated[str | None, typer.Option(help="Checkpoint grace before a kill (3s).")] = None,
    checkpoint_every: Annotated[
        str | None, typer.Option(help="Periodic WASM checkpoint interval (60s).")
    ] = None,
    poll: Annotated[
        str | None, typer.Option(help="Eligibility check interval while working (1s).")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="wasm or docker (wasm); reserved: a task's kind decides."),
    ] = None,
    allow_docker: Annotated[str | None, typer.Option(help="Run Docker tasks (false).")] = None,
    strict_sensors: Annotated[
        str | None, typer.Option(help="An unreadable sensor blocks work (false).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop every saved field first (back to defaults).")
    ] = False,
) -> None:
    """Validate and save policy fields; prints the resulting policy.

    Values accept units: 60%, 5m, 90s, 1h. Saved under 'harvest:' in config.yaml in
    the state dir; FOGCTL_HARVEST_<FIELD> environment variables override them.
    """
    given: dict[str, Any] = {k: v for k, v in locals().items() if k != "reset" and v is not None}
    from fogctl.harvest.engine import set_policy

    if not given and not reset:
        raise typer.BadParameter("give at least one field to set, or --reset")
    output.emit_one(set_policy(current_state(), given, reset=reset))


@app.command(
    epilog=examples(
        "fogctl harvest install --systemd --user",
        "fogctl harvest install --systemd --user --loop",
        "fogctl harvest install --cron --every 10m --jitter 120",
    )
)
@output.with_output
def install(
    systemd: Annotated[
        bool, typer.Option("--systemd", help="A systemd service + timer (default).")
    ] = False,
    cron: Annotated[bool, typer.Option("--cron", help="A line in the user's crontab.")] = False,
    user: Annotated[bool, typer.Option("--user", help="systemd user units (default).")] = False,
    system: Annotated[
        bool, typer.Option("--system", help="systemd system units in /etc/systemd/system.")
    ] = False,
    every: Annotated[
        str, typer.Option(help="How often a cycle starts (divides an hour or a day).")
    ] = "5m",
    jitter: Annotated[
        str, typer.Option(help="Random delay before a cycle (RandomizedDelaySec).")
    ] = "60s",
    loop: Annotated[
        bool,
        typer.Option(
            "--loop", help="Install a long-running 'run --loop' service instead of a timer."
        ),
    ] = False,
    unit_dir: Annotated[
        Path | None, typer.Option(help="Write units here instead of the systemd default.")
    ] = None,
    enable: Annotated[
        bool, typer.Option("--enable/--no-enable", help="systemctl enable --now when systemd runs.")
    ] = True,
) -> None:
    """Install the timer that runs 'fogctl harvest run'; prints what it wrote.

    Idempotent: installing again with the same options changes nothing. Units are
    checked with 'systemd-analyze verify' when it is installed. The service runs at
    idle CPU and I/O priority, with CPUQuota= (the policy's cpu_limit x max_cpus, plus
    5% for fogctl itself) and MemoryMax= (mem_idle) so systemd caps it as a whole;
    run install again after changing those policy fields.
    """
    from fogctl.harvest.engine import load_policy
    from fogctl.harvest.policy import parse_duration
    from fogctl.harvest.timers import Schedule
    from fogctl.harvest.timers import install as do_install

    if systemd and cron:
        raise typer.BadParameter("--systemd and --cron cannot be used together")
    if user and system:
        raise typer.BadParameter("--user and --system cannot be used together")
    minutes = parse_duration(every, "--every") / 60
    if minutes != int(minutes):
        raise typer.BadParameter("--every: whole minutes only")
    sched = Schedule(int(minutes), int(parse_duration(jitter, "--jitter")))
    state = current_state()
    pol = load_policy(state)
    recs = do_install(
        state,
        method="cron" if cron else "systemd",
        scope="system" if system else "user",
        schedule=sched,
        loop=loop,
        grace=pol.grace,
        # the kernel caps the whole service too (each task's own cap still applies)
        cpu_quota=pol.cpu_limit * pol.max_cpus + 5,
        memory_max=pol.mem_idle,
        directory=unit_dir,
        enable=enable,
    )
    for r in recs:
        output.notice(f"{'wrote' if r.changed else 'unchanged'}: {r.path}")
    output.emit(recs)


@app.command(epilog=examples("fogctl harvest uninstall", "fogctl harvest uninstall --force"))
@output.with_output
def uninstall(
    force: Annotated[
        bool, typer.Option("--force", help="Also remove units edited since install.")
    ] = False,
) -> None:
    """Remove exactly what 'install' wrote (units or the crontab line)."""
    from fogctl.harvest.timers import uninstall as do_uninstall

    recs = do_uninstall(current_state(), force=force)
    if not recs:
        output.notice("nothing installed")
    output.emit(recs)


@app.command(
    epilog=examples(
        "fogctl harvest run",
        "fogctl harvest run --loop --interval 60",
        "fogctl harvest run --json | jq .completed",
    )
)
@output.with_output
def run(
    loop: Annotated[
        bool, typer.Option("--loop", help="Run cycles in the foreground until SIGTERM.")
    ] = False,
    interval: Annotated[str, typer.Option(help="With --loop: time between cycles.")] = "60s",
    max_tasks: Annotated[
        int | None, typer.Option(help="Run at most this many tasks per cycle.")
    ] = None,
    jitter: Annotated[
        str, typer.Option(help="Sleep a random time up to this first (for cron).")
    ] = "0",
) -> None:
    """Run one harvest cycle: if eligible, run queued tasks until done or preempted.

    Tasks are capped (CPU, memory) by the policy; when eligibility is lost a task is
    told to checkpoint, stopped within the grace period and resumed on a later cycle.
    A second cycle started while one runs exits at once (a lock in the state dir,
    released by the kernel however its holder exits); a task left running by a cycle
    that was killed is taken back at once and resumed from its checkpoint.
    Prints a harvest-cycle record per cycle. SIGTERM preempts the task and exits.
    """
    import random
    import signal
    import threading

    from fogctl.harvest.cycle import run_cycle, run_loop
    from fogctl.harvest.policy import parse_duration

    state = current_state()
    log = output.notice
    wait = parse_duration(jitter, "--jitter")
    stop = threading.Event()
    if wait > 0 and stop.wait(random.uniform(0, wait)):
        return
    if loop:
        run_loop(
            state,
            interval=parse_duration(interval, "--interval"),
            stop=stop,
            log=log,
            emit=output.write_json_line if output.current().json_lines else output.emit_one,
        )
        return

    got: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        # checkpoint the running task, never kill it: work since the last checkpoint
        # would be lost and the task would wait for its lease to expire
        got.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        output.emit_one(run_cycle(state, stop=stop, max_tasks=max_tasks, log=log))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if signal.SIGINT in got:
        raise typer.Exit(130)


@app.command(
    "add",
    epilog=examples(
        "fogctl harvest add examples/harvest-sum.yaml",
        "fogctl harvest split job.yaml --chunks 4 -o chunks/ && fogctl harvest add chunks/*.yaml",
    ),
)
@output.with_output
def add(
    jobs: Annotated[list[str], typer.Argument(help="Job spec files (YAML, JSON Lines) or -.")],
) -> None:
    """Queue job specs for harvesting (what 'fogctl submit --harvest' does); prints tasks."""
    from fogctl.harvest.queue import enqueue, get_task
    from fogctl.jobs import load_specs

    specs = [s for j in jobs for s in load_specs(j)]
    state = current_state()
    output.emit([get_task(state, t) for t in enqueue(state, specs)])


@app.command(
    "list",
    epilog=examples("fogctl harvest list", "fogctl harvest list --state preempted --json"),
)
@output.with_output
def list_cmd(
    state_filter: Annotated[
        list[str] | None, typer.Option("--state", help="Only tasks in this state (repeatable).")
    ] = None,
) -> None:
    """List the harvest queue: each task's state, attempts, preemptions, CPU and energy."""
    from fogctl.harvest.queue import TRANSITIONS, list_tasks

    for s in state_filter or []:
        if s not in TRANSITIONS:
            raise typer.BadParameter(f"--state: {s!r} is not one of {', '.join(TRANSITIONS)}")
    output.emit(
        list_tasks(current_state(), state_filter or ()),
        columns=[
            "id",
            "name",
            "executor",
            "state",
            "attempts",
            "preemptions",
            "cpu_seconds",
            "energy_j",
            "result",
        ],
    )


@app.command(
    epilog=examples(
        "fogctl harvest split job.yaml --chunks 8 -o chunks/",
        "fogctl harvest split job.yaml --chunks 4 --range 0:1000000 -o chunks/",
    )
)
@output.with_output
def split(
    job: Annotated[Path, typer.Argument(help="An indexed job spec (YAML).")],
    chunks: Annotated[int, typer.Option(help="How many jobs to make.")],
    index_range: Annotated[
        str | None,
        typer.Option(
            "--range",
            help="START:END, END exclusive (default: 0:completions, else the job's env "
            "FOGCTL_INDEX_START:FOGCTL_INDEX_END).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the chunk files.")] = Path(
        "."
    ),
) -> None:
    """Split an index-range job into N chunk jobs NAME-0 .. NAME-(N-1), one file each."""
    from fogctl.harvest.partition import parse_range
    from fogctl.harvest.partition import split as do_split

    rng = parse_range(index_range) if index_range else None
    output.emit(do_split(job, chunks, out, rng))


@app.command(
    epilog=examples(
        "fogctl harvest merge sum",
        "fogctl harvest merge render -o frames.out --json | jq .results",
    )
)
@output.with_output
def merge(
    name: Annotated[str, typer.Argument(help="The job name given to split.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the chunks' outputs here, in order.")
    ] = None,
) -> None:
    """Gather the finished chunks of a split job: results in index order, outputs joined."""
    from fogctl.harvest.partition import merge as do_merge

    output.emit_one(do_merge(current_state(), name, out))


@app.command(epilog=examples("fogctl harvest calibrate", "fogctl harvest calibrate --seconds 5"))
@output.with_output
def calibrate(
    seconds: Annotated[
        float, typer.Option(help="Seconds per measurement (idle, then busy).")
    ] = 2.0,
) -> None:
    """Fit the power model P = alpha + beta x CPU from RAPL counters and save it.

    Exits 3 when the machine has no readable RAPL (powercap) counters; the documented
    defaults then stay in use.
    """
    from fogctl.harvest.engine import set_policy
    from fogctl.harvest.power import calibrate as do_calibrate

    model = do_calibrate(seconds)
    set_policy(current_state(), {"power_alpha": model.alpha, "power_beta": model.beta})
    output.emit_one(
        {"kind": "harvest-power", "alpha": model.alpha, "beta": model.beta, "source": model.source}
    )
