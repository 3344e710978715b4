"""fogctl schedule: multi-objective placement of jobs on nodes (NSGA-II/III, heuristics).

``fogctl schedule [NODES] --jobs FILE`` places (NODES is a file of node records or
``-`` for stdin, same as ``--nodes``); ``fogctl schedule price`` and ``fogctl schedule
sim`` are subcommands. A custom group class tells the two apart: the first positional
word is a subcommand only if it names one.
"""

from __future__ import annotations

from typing import Any

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from typer._click import exceptions as click_exceptions
from typer._click.core import Command, Context
from typer.core import TyperGroup

NODES_KEY = "fogctl.schedule.nodes"


class ScheduleGroup(TyperGroup):
    """A group whose first positional word is the NODES input unless it names a
    subcommand (so ``fogctl schedule --jobs b.yaml -`` reads nodes from stdin)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            raise click_exceptions.NoArgsIsHelpError(ctx)
        args = list(args)
        takes_value = {
            opt
            for p in self.params
            if getattr(p, "param_type_name", "") == "option"
            and not getattr(p, "is_flag", False)
            and not getattr(p, "count", False)
            for opt in (*p.opts, *p.secondary_opts)
        }
        i = 0
        while i < len(args):
            tok = args[i]
            if tok == "--":
                if i + 1 < len(args) and self.get_command(ctx, args[i + 1]) is None:
                    ctx.meta[NODES_KEY] = args[i + 1]
                    del args[i : i + 2]
                break
            if tok.startswith("-") and tok != "-":
                i += 2 if (tok in takes_value and "=" not in tok) else 1
                continue
            if self.get_command(ctx, tok) is None:
                ctx.meta[NODES_KEY] = tok
                del args[i]
            break
        rest = Command.parse_args(self, ctx, args)
        if rest:
            ctx._protected_args, ctx.args = rest[:1], rest[1:]
        return ctx.args

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [*Command.collect_usage_pieces(self, ctx), "[NODES] | COMMAND [ARGS]..."]


app = typer.Typer(
    cls=ScheduleGroup,
    no_args_is_help=True,
)

ALGORITHM_HELP = (
    "auto (NSGA-III for 4-5 objectives, NSGA-II for 1-3), nsga2, nsga3, "
    "greedy-latency, least-loaded, trust-first, cost, ffd, round-robin or heft."
)


@app.callback(
    invoke_without_command=True,
    epilog=examples(
        "fogctl schedule --nodes nodes.jsonl --jobs examples/batch.yaml > plan.jsonl",
        "fogctl dht providers --json | fogctl schedule --jobs batch.yaml - | fogctl submit -",
        "fogctl schedule --jobs batch.yaml --nodes nodes.jsonl --front --plot pareto.png",
        "",
        "# a whole pipeline: providers found in the DHT, a plan, the jobs run on it",
        "fogctl dht serve --port 8468 --bootstrap HOST:8468 &",
        "fogctl jobs image busybox",
        "fogctl dht providers --json > providers.jsonl",
        "fogctl schedule providers.jsonl --jobs examples/batch.yaml > plan.jsonl",
        "fogctl submit --wait - < plan.jsonl",
        "",
        "fogctl schedule --nodes nodes.jsonl --jobs batch.yaml --front | jq -c .objectives",
        "fogctl schedule --nodes nodes.jsonl --jobs batch.yaml --prefer latency=3,cost=1",
        "fogctl schedule --nodes nodes.jsonl --jobs batch.yaml --pick trust --plot front.svg",
        "fogctl schedule --nodes nodes.jsonl --jobs examples/dag.yaml --algorithm heft",
        "fogctl schedule --nodes nodes.jsonl --jobs urgent.yaml --running plan.jsonl",
        "fogctl schedule --nodes nodes.jsonl --jobs big.yaml --allow-partial",
        "fogctl schedule --nodes nodes.jsonl --jobs batch.yaml --headroom strict",
        "fogctl schedule --nodes nodes.jsonl --jobs batch.yaml --generations 50 --seed 7",
    ),
)
@output.with_output
def place(
    ctx: typer.Context,
    nodes: str | None = typer.Option(
        None, "--nodes", "-n", metavar="FILE", help="Node records (JSON Lines); - is stdin."
    ),
    jobs: str | None = typer.Option(
        None,
        "--jobs",
        "-j",
        metavar="FILE",
        help="Job specs in the fogctl submit schema (YAML or JSON Lines); - is stdin.",
    ),
    running: str | None = typer.Option(
        None,
        "--running",
        metavar="FILE",
        help="Running jobs an SLA-S job may preempt: a previous plan's assignment records.",
    ),
    algorithm: str = typer.Option("auto", "--algorithm", "-a", help=ALGORITHM_HELP),
    objectives: str = typer.Option(
        "latency,balance,trust,cost,price",
        "--objectives",
        metavar="LIST",
        help="Objectives to optimise, comma-separated.",
    ),
    prefer: str | None = typer.Option(
        None,
        "--prefer",
        metavar="WEIGHTS",
        help="Choose the plan by weights over normalised objectives, e.g. latency=3,cost=1.",
    ),
    pick: str = typer.Option(
        "knee",
        "--pick",
        help="Choose the knee of the front, or the best plan for one objective.",
    ),
    front: bool = typer.Option(
        False, "--front", help="Write the whole Pareto front as solution records."
    ),
    plot: str | None = typer.Option(
        None, "--plot", metavar="FILE", help="Draw the front to FILE (.png, .svg or .pdf)."
    ),
    allow_partial: bool = typer.Option(
        False,
        "--allow-partial",
        help="Place what fits; jobs left out get node null and a reason in unplaced.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the search."),
    time_limit: float | None = typer.Option(
        None,
        "--time-limit",
        metavar="SECONDS",
        help="Time for the whole placement, heuristics and search (default: by problem "
        "size, under 2 s).",
    ),
    headroom: str = typer.Option(
        "soft",
        "--headroom",
        help="soft: a node's measured cpu use only makes it a worse choice (slower, "
        "pricier, less balanced); strict: it also takes cores away.",
    ),
    generations: int | None = typer.Option(
        None,
        "--generations",
        min=1,
        max=100_000,
        help="Run at most N generations and no time limit: the same --seed then gives "
        "the same plan on any machine.",
    ),
) -> None:
    """Place a batch of jobs on nodes and write one assignment record per job.

    NODES (or --nodes) is a file of node records, or - to read them from stdin, as
    written by 'fogctl dht providers --json'. The search minimises latency, load
    imbalance, operating cost and market price and maximises trust, under capacity,
    SLA-S deadlines, gang groups (all members in one region) and dependencies.

    Search: a problem with at most 65,536 possible assignments is solved exactly
    (every assignment evaluated: the whole Pareto front). Otherwise every heuristic
    runs first and seeds the search, so the front never loses to them; on small and
    medium problems each linear objective's optimum is solved as an integer program
    (HiGHS) and each weighting of them starts a local search from its linear
    relaxation. Then NSGA-III (or NSGA-II) evolves the front with a repair operator
    that keeps every plan feasible, until its hypervolume grows by less than 1% in 5
    generations or the time limit nears, and local search polishes the front. On
    small instances the front is within a few percent of the exact optimum of each
    objective and of their weighted sums.

    Objectives: latency (mean ms from the submitter to the jobs' nodes), balance
    (variance of cpu and memory utilisation across nodes after placement), trust
    (mean trust of the nodes used, maximised), cost (the operators' running cost)
    and price (the marketplace price, see 'fogctl schedule price'). --objectives
    optimises a subset; the default algorithm is NSGA-III with reference directions
    for 4-5 objectives and NSGA-II for 1-3.

    Model: the batch is placed at once onto each node's free capacity: its cores
    minus those the --running jobs request, and memory x (1 - memory_util). A
    node's measured cpu_util is a soft penalty (jobs there run slower, cost more and
    unbalance the cluster), so a busy node still takes a job that fits its cores;
    --headroom strict offers only cpu x (1 - cpu_util). A job starts when its dependencies
    (dependsOn) have finished and their results have crossed the network, after its
    node's dispatch latency, and runs estimateSeconds (default 60) times the node's
    slowdown (busy or hot nodes run slower). For SLA class S, activeDeadlineSeconds
    is a hard deadline counted from now. A gang's members go to nodes of one region
    and start together. Nodes on battery below 15% or at 85 C and above take no work.

    Output: one assignment record per job, in start order, with the predicted start
    and finish (seconds from now), the job's objective values and its spec, which
    'fogctl submit -' runs on the chosen node. --front writes every plan of the
    Pareto front as a solution record instead; --pick and --prefer choose the plan
    (default: the knee). A summary goes to stderr: generations and why the search
    stopped, front size, hypervolume against the best heuristic's, makespan (when the
    last job finishes) against HEFT's.

    Jobs that cannot be placed (larger than any node, a dependency cycle, a gang
    bigger than any region, a deadline no node can meet) are named and the command
    exits 2; with --allow-partial the rest is placed and the left-out jobs get node
    null and a reason. An SLA-S job that fits nowhere may preempt lower-priority
    jobs listed with --running (assignment records or specs with nodeName); its
    record names them in preempts.
    """
    if ctx.invoked_subcommand is not None:
        return
    from fogctl.errors import InvalidInput
    from fogctl.schedule import engine
    from fogctl.schedule.select import PICKS, parse_prefer

    positional = ctx.meta.get(NODES_KEY)
    if positional is not None and nodes is not None:
        raise InvalidInput("give nodes once: --nodes FILE or a NODES argument, not both")
    nodes = nodes if nodes is not None else positional
    if nodes is None:
        raise InvalidInput("no nodes: give --nodes FILE, or - to read node records from stdin")
    if jobs is None:
        raise InvalidInput("no jobs: give --jobs FILE (job specs, YAML or JSON Lines)")
    stdin_users = [s for s in (nodes, jobs, running) if s == "-"]
    if len(stdin_users) > 1:
        raise InvalidInput("only one of NODES, --jobs and --running can be - (stdin)")
    if pick not in PICKS:
        raise InvalidInput(f"--pick: choose from {', '.join(PICKS)}, got {pick!r}")
    weights = parse_prefer(prefer) if prefer is not None else None
    names = tuple(o.strip() for o in objectives.split(",") if o.strip())
    if plot is not None:
        from fogctl.schedule.plot import check_path

        check_path(plot)
    if time_limit is not None and not time_limit > 0:
        raise InvalidInput("--time-limit must be a positive number of seconds")
    node_records = engine.load_nodes(nodes)
    job_list = engine.load_jobs(jobs)
    running_list = engine.load_running(running) if running is not None else []
    plan = engine.schedule(
        node_records,
        job_list,
        algorithm=algorithm,
        objectives=names,
        prefer=weights,
        pick=pick,
        running=running_list,
        allow_partial=allow_partial,
        seed=seed,
        time_limit=time_limit,
        generations=generations,
        headroom=headroom,
    )
    for msg in plan.notices:
        output.notice(msg)
    output.notice(_summary(plan))
    if plot is not None:
        from fogctl.schedule.plot import plot_front

        chosen_names = list(plan.objectives)
        cols = [("latency", "balance", "trust", "cost", "price").index(n) for n in chosen_names]
        plot_front(
            plot,
            plan.front[:, cols],
            chosen_names,
            chosen=plan.chosen,
            heuristics={h: [p[c] for c in cols] for h, p in plan.heuristic_points.items()},
            title=f"{plan.algorithm}: {len(plan.front)} plans, {plan.stats.get('jobs')} jobs",
        )
        output.notice(f"wrote {plot}")
    if front:
        output.emit(
            plan.solutions,
            columns=["index", "objectives", "makespan", "heuristics", "knee", "chosen"],
        )
    else:
        output.emit(
            plan.assignments,
            columns=["job", "node", "order", "start", "finish", "preempts", "unplaced"],
        )


def _summary(plan: Any) -> str:
    s = plan.stats
    placed = sum(1 for a in plan.assignments if a.node is not None)
    used = len({a.node for a in plan.assignments if a.node is not None})
    left = len(plan.assignments) - placed
    text = (
        f"placed {placed} job(s) on {used} of {s.get('nodes')} usable node(s) with {plan.algorithm}"
    )
    if s.get("stopped") == "exact":
        text += f" (exact front of {s['front']} plans: every assignment evaluated"
    elif "generations" in s:
        why = {"plateau": "front stopped improving", "time": "time limit"}.get(
            s.get("stopped", ""), "generation limit"
        )
        text += f" ({s['generations']} generations, {why}, front of {s['front']} plans"
    if "generations" in s:
        if "hypervolume" in s:
            text += (
                f", hypervolume {s['hypervolume']:.3f} vs best heuristic "
                f"{s['hypervolume_best_heuristic']:.3f}"
            )
        text += ")"
    text += f"; makespan {s.get('makespan', 0):g}s"
    if "heft_makespan" in s:
        text += f" (HEFT {s['heft_makespan']:g}s)"
    if left:
        text += f"; {left} left out"
    return text + f"; {s.get('seconds', 0):.2f}s"


@app.command(
    epilog=examples(
        "fogctl schedule price --nodes nodes.jsonl --jobs job.yaml",
        "fogctl schedule price --nodes nodes.jsonl --jobs job.yaml --all --bid spot",
        "fogctl dht providers --json | fogctl schedule price --jobs job.yaml -",
    )
)
@output.with_output
def price(
    nodes_arg: str | None = typer.Argument(
        None, metavar="NODES", help="Node records (JSON Lines); - is stdin."
    ),
    nodes: str | None = typer.Option(
        None, "--nodes", "-n", metavar="FILE", help="Node records (JSON Lines); - is stdin."
    ),
    jobs: str = typer.Option(
        ..., "--jobs", "-j", metavar="FILE", help="Job specs (YAML or JSON Lines)."
    ),
    every: bool = typer.Option(False, "--all", help="Quote every node with room, cheapest first."),
    bid: str | None = typer.Option(
        None, "--bid", help="Only nodes selling this bid type: spot, on-demand or reserved."
    ),
    headroom: str = typer.Option(
        "soft",
        "--headroom",
        help="soft: a node's measured cpu use only makes it a worse choice (slower, "
        "pricier, less balanced); strict: it also takes cores away.",
    ),
) -> None:
    """Quote what each job costs on the marketplace: one quote record per job.

    price = rate per core-hour (the node's asking price, or its tier's default) x
    cores x hours x bid factor (spot 0.6, reserved 0.8, on-demand 1) x utilisation
    surge (up to 1.5) x trust premium (0.85-1.15) x SLA class (S 1.5, A 1.2, B 1),
    plus memory per GiB-hour. By default the cheapest node with room; --all lists all.
    """
    from fogctl.errors import InvalidInput
    from fogctl.schedule import engine
    from fogctl.schedule.model import BIDS

    if nodes_arg is not None and nodes is not None:
        raise InvalidInput("give nodes once: --nodes FILE or a NODES argument, not both")
    source = nodes if nodes is not None else nodes_arg
    if source is None:
        raise InvalidInput("no nodes: give --nodes FILE, or - to read node records from stdin")
    if source == "-" and jobs == "-":
        raise InvalidInput("only one of NODES and --jobs can be - (stdin)")
    if bid is not None and bid not in BIDS:
        raise InvalidInput(f"--bid: choose from {', '.join(BIDS)}, got {bid!r}")
    quotes = engine.quote_jobs(
        engine.load_nodes(source),
        engine.load_jobs(jobs),
        every_node=every,
        bid=bid,
        headroom=headroom,
    )
    output.emit(quotes, columns=["job", "node", "bid", "tier", "hours", "price", "cheapest"])


@app.command(
    epilog=examples(
        "fogctl schedule sim",
        "fogctl schedule sim --jobs 2000 --nodes 50 --load 0.7 --algorithms nsga2,ffd",
        "fogctl schedule sim --node-file nodes.jsonl --mtbf 600 --json | jq .on_time.S",
    )
)
@output.with_output
def sim(
    jobs: int = typer.Option(1000, "--jobs", min=1, max=100_000, help="Jobs to generate."),
    nodes: int = typer.Option(30, "--nodes", min=1, max=5_000, help="Nodes to generate."),
    node_file: str | None = typer.Option(
        None, "--node-file", metavar="FILE", help="Use these node records instead (- is stdin)."
    ),
    load: float = typer.Option(
        0.7, "--load", help="Offered cpu load as a share of the cluster's free cpu."
    ),
    algorithms: str = typer.Option(
        "nsga2,greedy-latency,least-loaded,trust-first,cost,ffd,round-robin,heft",
        "--algorithms",
        metavar="LIST",
        help="Algorithms to compare, comma-separated.",
    ),
    mtbf: float = typer.Option(
        3600.0, "--mtbf", metavar="SECONDS", help="Mean time between failures of a node."
    ),
    mttr: float = typer.Option(
        300.0, "--mttr", metavar="SECONDS", help="Mean time to repair a failed node."
    ),
    interval: float = typer.Option(
        5.0, "--interval", metavar="SECONDS", help="How often the queue is scheduled."
    ),
    preempt: bool = typer.Option(
        True, "--preempt/--no-preempt", help="Let SLA-S jobs evict lower-priority work."
    ),
    budget_ms: float = typer.Option(
        30.0, "--budget-ms", help="Time limit of one NSGA placement call, milliseconds."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of workload and failures."),
) -> None:
    """Simulate a fog cluster and compare algorithms: one simulation record each.

    A discrete-event simulation: Poisson arrivals at --load, lognormal run times,
    node failures and repairs (running jobs restart elsewhere), scheduling of the
    queue every --interval seconds. Reports SLA on-time % per class (S deadlines
    are hard, A and B measured), cpu and memory utilisation, makespan, mean wait,
    restarts, preemptions and the mean time of one placement.
    """
    from fogctl.errors import InvalidInput
    from fogctl.schedule.sim import SimConfig, simulate

    names = [a.strip() for a in algorithms.split(",") if a.strip()]
    if not names:
        raise InvalidInput("--algorithms: name at least one algorithm")
    for value, flag in ((mtbf, "--mtbf"), (mttr, "--mttr"), (interval, "--interval")):
        if not value > 0:
            raise InvalidInput(f"{flag} must be a positive number of seconds")
    if not budget_ms > 0:
        raise InvalidInput("--budget-ms must be positive")
    records = None
    if node_file is not None:
        from fogctl.schedule.engine import load_nodes

        records = load_nodes(node_file)
    cfg = SimConfig(
        jobs=jobs,
        nodes=nodes,
        load=load,
        mtbf=mtbf,
        mttr=mttr,
        interval=interval,
        preempt=preempt,
        seed=seed,
        budget=budget_ms / 1000.0,
        node_records=records,
    )
    results = simulate(names, cfg)
    if output.current().json_lines:
        output.emit(results)
        return
    # a table: the per-class on-time shares and utilisations as columns of their own
    output.emit(
        [
            {
                "algorithm": r.algorithm,
                "S ok%": round(r.on_time["S"], 1),
                "all ok%": round(r.on_time["all"], 1),
                "cpu": round(r.utilization["cpu"], 2),
                "mem": round(r.utilization["memory"], 2),
                "makespan": round(r.makespan),
                "wait": round(r.mean_wait, 1),
                "restart": r.restarts,
                "preempt": r.preemptions,
                "ms": round(r.schedule_ms, 1),
            }
            for r in results
        ]
    )
