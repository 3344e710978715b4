"""fogctl schedule from the command line: the three shapes, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import GIB, node, nodes_jsonl, spec_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODES = str(EXAMPLES / "nodes.jsonl")
BATCH = str(EXAMPLES / "batch.yaml")
DAG = str(EXAMPLES / "dag.yaml")
FAST = ("--time-limit", "0.15")


def check_plan(recs: list[dict[str, Any]], jobs: set[str]) -> None:
    assert {r["job"] for r in recs} == jobs
    assert all(r["kind"] == "assignment" for r in recs)
    assert sorted(r["order"] for r in recs) == list(range(len(recs)))
    for r in recs:
        assert r["node"] is not None and r["finish"] > r["start"] >= 0
        assert set(r["objectives"]) == {"latency_ms", "balance", "trust", "cost", "price"}
        assert r["spec"]["metadata"]["name"] == r["job"]


BATCH_JOBS = {
    "ingest",
    "transform",
    "report",
    "train-0",
    "train-1",
    "thumbnails",
    "backup",
    "alerts",
}


def test_places_with_nodes_option(cli: Any) -> None:
    res = cli("schedule", "--nodes", NODES, "--jobs", BATCH, "--json", *FAST)
    assert res.code == 0, res.stderr
    recs = res.records()
    check_plan(recs, BATCH_JOBS)
    by = {r["job"]: r for r in recs}
    # dependencies run in order, the gang starts together in one region
    assert by["transform"]["start"] >= by["ingest"]["finish"]
    assert by["report"]["start"] >= by["transform"]["finish"]
    assert by["train-0"]["start"] == by["train-1"]["start"]
    lines = Path(NODES).read_text().splitlines()
    regions = {json.loads(line)["id"]: json.loads(line).get("region") for line in lines}
    assert regions[by["train-0"]["node"]] == regions[by["train-1"]["node"]]
    # SLA-S deadlines are met; the phone on 10% battery gets nothing
    assert by["alerts"]["finish"] <= 30 and by["ingest"]["finish"] <= 300
    assert "phone-08" not in {r["node"] for r in recs}
    assert "placed 8 job(s)" in res.stderr


def test_reads_nodes_from_stdin_as_positional_dash(cli: Any) -> None:
    text = Path(NODES).read_text()
    res = cli("schedule", "--jobs", BATCH, "-", "--json", *FAST, input=text)
    assert res.code == 0, res.stderr
    check_plan(res.records(), BATCH_JOBS)
    # the dash may come first too, and a path works as the positional
    res = cli("schedule", "-", "--jobs", BATCH, "--json", *FAST, input=text)
    assert res.code == 0, res.stderr
    res = cli("schedule", NODES, "--jobs", BATCH, "--json", *FAST)
    assert res.code == 0, res.stderr
    check_plan(res.records(), BATCH_JOBS)
    # the JSON Lines copy of the batch, as `fogctl submit --help` cites it
    jsonl = str(EXAMPLES / "batch.jsonl")
    res = cli("schedule", "--jobs", jsonl, NODES, "--json", *FAST)
    assert res.code == 0, res.stderr
    check_plan(res.records(), BATCH_JOBS)


def test_subcommands_are_not_taken_for_nodes(cli: Any) -> None:
    res = cli("schedule", "price", "--nodes", NODES, "--jobs", BATCH, "--json")
    assert res.code == 0, res.stderr
    quotes = res.records()
    assert {q["kind"] for q in quotes} == {"quote"}
    assert {q["job"] for q in quotes} == BATCH_JOBS and all(q["cheapest"] for q in quotes)
    res = cli("schedule", "sim", "--jobs", "60", "--nodes", "8", "--algorithms", "ffd", "--json")
    assert res.code == 0, res.stderr
    (rec,) = res.records()
    assert rec["kind"] == "simulation" and rec["algorithm"] == "ffd" and rec["completed"] == 60


def test_heuristic_algorithms_and_heft(cli: Any) -> None:
    for algo in ("greedy-latency", "least-loaded", "trust-first", "cost", "ffd", "round-robin"):
        res = cli("schedule", "--nodes", NODES, "--jobs", BATCH, "--algorithm", algo, "--json")
        assert res.code == 0, (algo, res.stderr)
        check_plan(res.records(), BATCH_JOBS)
    res = cli("schedule", "--nodes", NODES, "--jobs", DAG, "--algorithm", "heft", "--json")
    assert res.code == 0, res.stderr
    recs = {r["job"]: r for r in res.records()}
    assert recs["train"]["start"] >= max(recs["features-a"]["finish"], recs["features-b"]["finish"])
    assert "makespan" in res.stderr and "HEFT" in res.stderr


def test_greedy_latency_uses_lowest_latency(cli: Any, write: Any) -> None:
    nodes = write(
        "n.jsonl",
        nodes_jsonl([node("far", 8, 8, latency_ms=90), node("near", 8, 8, latency_ms=3)]),
    )
    jobs = write("j.yaml", spec_yaml([{"name": "a"}, {"name": "b"}]))
    res = cli("schedule", "--nodes", nodes, "--jobs", jobs, "-a", "greedy-latency", "--json")
    assert {r["node"] for r in res.records()} == {"near"}


def test_front_prefer_pick_and_plot(cli: Any, tmp_path: Path) -> None:
    png = tmp_path / "front.png"
    res = cli(
        "schedule",
        "--nodes",
        NODES,
        "--jobs",
        BATCH,
        "--front",
        "--plot",
        str(png),
        "--json",
        *FAST,
    )
    assert res.code == 0, res.stderr
    sols = res.records()
    assert len(sols) > 1 and {s["kind"] for s in sols} == {"solution"}
    assert sum(s["chosen"] for s in sols) == 1 and sum(s["knee"] for s in sols) == 1
    assert all(set(s["assignments"]) == BATCH_JOBS for s in sols)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "front.svg"
    res = cli("schedule", "--nodes", NODES, "--jobs", BATCH, "--plot", str(svg), "--json", *FAST)
    assert res.code == 0 and b"<svg" in svg.read_bytes()
    # --pick latency chooses the front's lowest latency
    best = min(s["objectives"]["latency"] for s in sols)
    res = cli(
        "schedule",
        "--nodes",
        NODES,
        "--jobs",
        BATCH,
        "--front",
        "--pick",
        "latency",
        "--json",
        *FAST,
    )
    chosen = [s for s in res.records() if s["chosen"]]
    assert chosen[0]["objectives"]["latency"] == pytest.approx(best, rel=0.2)
    lat = min(s["objectives"]["latency"] for s in res.records())
    assert chosen[0]["objectives"]["latency"] == lat
    res = cli(
        "schedule",
        "--nodes",
        NODES,
        "--jobs",
        BATCH,
        "--front",
        "--prefer",
        "trust=1",
        "--json",
        *FAST,
    )
    recs = res.records()
    top = max(s["objectives"]["trust"] for s in recs)
    assert next(s for s in recs if s["chosen"])["objectives"]["trust"] == top


def test_infeasible_names_jobs_and_exits_2(cli: Any, write: Any) -> None:
    jobs = write(
        "big.yaml",
        spec_yaml(
            [
                {"name": "monster", "cpu": 500},
                {"name": "child", "dependsOn": ["afterok:monster"]},
                {"name": "fine"},
            ]
        ),
    )
    res = cli("schedule", "--nodes", NODES, "--jobs", jobs, "--json")
    assert res.code == 2
    assert "monster" in res.stderr and "--allow-partial" in res.stderr
    assert "Traceback" not in res.stderr
    err = json.loads(res.stderr.strip().splitlines()[-1])
    assert err["kind"] == "error" and err["exit"] == 2
    res = cli("schedule", "--nodes", NODES, "--jobs", jobs, "--allow-partial", "--json", *FAST)
    assert res.code == 0, res.stderr
    by = {r["job"]: r for r in res.records()}
    assert by["fine"]["node"] is not None
    assert by["monster"]["node"] is None and "more than any node" in by["monster"]["unplaced"]
    assert by["child"]["unplaced"] == "depends on unplaced job monster"
    # the partial plan feeds fogctl submit: what was placed runs, the rest is named
    sub = cli("submit", "--check", "--json", "-", input=res.stdout)
    assert sub.code == 0, sub.stderr
    assert [r["id"] for r in sub.records()] == ["fine"]
    assert "job monster skipped" in sub.stderr and "job child skipped" in sub.stderr


def test_cycle_and_gang_errors(cli: Any, write: Any) -> None:
    cyc = write(
        "cycle.yaml",
        spec_yaml(
            [
                {"name": "a", "dependsOn": ["afterok:b"]},
                {"name": "b", "dependsOn": ["afterany:a"]},
            ]
        ),
    )
    res = cli("schedule", "--nodes", NODES, "--jobs", cyc)
    assert res.code == 2 and "dependency cycle" in res.stderr and "a" in res.stderr
    gang = write(
        "gang.yaml",
        spec_yaml([{"name": f"w{i}", "cpu": 20, "gang": "huge"} for i in range(4)]),
    )
    res = cli("schedule", "--nodes", NODES, "--jobs", gang)
    assert res.code == 2 and "gang huge" in res.stderr and "w0" in res.stderr


def test_not_enough_capacity_overall(cli: Any, write: Any) -> None:
    nodes = write("n.jsonl", nodes_jsonl([node("a", 4, 8), node("b", 4, 8)]))
    jobs = write("j.yaml", spec_yaml([{"name": f"j{i}", "cpu": 3} for i in range(3)]))
    res = cli("schedule", "--nodes", nodes, "--jobs", jobs)
    assert res.code == 2 and "not enough free capacity" in res.stderr
    res = cli("schedule", "--nodes", nodes, "--jobs", jobs, "--allow-partial", "--json", *FAST)
    assert res.code == 0
    recs = res.records()
    assert sum(r["node"] is None for r in recs) == 1
    assert [r["unplaced"] for r in recs if r["node"] is None] == ["no room left on any node"]


def test_preemption_names_the_evicted_jobs(cli: Any, write: Any) -> None:
    nodes = write(
        "n.jsonl",
        nodes_jsonl(
            [
                node("a", 4, 8, cpu_util=0.75, memory_util=0.25, latency_ms=5),
                node("b", 4, 8, cpu_util=1.0, memory_util=0.5, latency_ms=9),
            ]
        ),
    )
    running = write(
        "running.yaml",
        spec_yaml(
            [
                {"name": "batch-1", "cpu": 2, "nodeName": "b", "priorityClassName": "low"},
                {"name": "batch-2", "cpu": 2, "nodeName": "b", "priorityClassName": "best-effort"},
                {"name": "vip", "cpu": 3, "nodeName": "a", "sla": "S", "priorityClassName": "low"},
            ]
        ),
    )
    urgent = write(
        "urgent.yaml",
        spec_yaml(
            [
                {
                    "name": "urgent",
                    "cpu": 2,
                    "sla": "S",
                    "priorityClassName": "high",
                    "activeDeadlineSeconds": 120,
                    "estimateSeconds": 30,
                }
            ]
        ),
    )
    # without --running the busy nodes' cores are free (soft headroom); strict: full
    assert cli("schedule", "--nodes", nodes, "--jobs", urgent).code == 0
    assert cli("schedule", "--nodes", nodes, "--jobs", urgent, "--headroom", "strict").code == 2
    res = cli("schedule", "--nodes", nodes, "--jobs", urgent, "--running", running, "--json")
    assert res.code == 0, res.stderr
    (rec,) = res.records()
    assert rec["node"] == "b" and rec["preempts"] == ["batch-2"]
    # SLA-A work does not preempt
    relaxed = write("relaxed.yaml", spec_yaml([{"name": "meh", "cpu": 2, "sla": "A"}]))
    res = cli("schedule", "--nodes", nodes, "--jobs", relaxed, "--running", running)
    assert res.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", BATCH], "no nodes"),
        (["--nodes", NODES], "no jobs"),
        (["--nodes", NODES, "--jobs", BATCH, "--algorithm", "magic"], "--algorithm"),
        (["--nodes", NODES, "--jobs", BATCH, "--prefer", "speed=2"], "--prefer"),
        (["--nodes", NODES, "--jobs", BATCH, "--pick", "best"], "--pick"),
        (["--nodes", NODES, "--jobs", BATCH, "--plot", "front.gif"], "--plot"),
        (["--nodes", NODES, "--jobs", BATCH, "--objectives", "speed"], "unknown objective"),
        (["--nodes", NODES, "--jobs", BATCH, "--time-limit", "0"], "--time-limit"),
        (["--nodes", NODES, "--jobs", "/nonexistent.yaml"], "no such file"),
        (["--nodes", "-", "--jobs", "-"], "only one of"),
        ([NODES, "--nodes", NODES, "--jobs", BATCH], "give nodes once"),
        (["--nodes", BATCH, "--jobs", BATCH], "not JSON"),
    ],
)
def test_bad_usage_is_one_line_exit_2(cli: Any, args: list[str], message: str) -> None:
    res = cli("schedule", *args, input="")
    assert res.code == 2, res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_node_record_names_file_and_line(cli: Any, write: Any) -> None:
    nodes = write(
        "n.jsonl",
        nodes_jsonl([node("a")]) + '{"kind":"node","id":"b","cpu":"lots","memory":1}\n',
    )
    res = cli("schedule", "--nodes", nodes, "--jobs", BATCH)
    assert res.code == 2 and "n.jsonl:2" in res.stderr and "cpu" in res.stderr
    other = write("o.jsonl", '{"kind":"assignment","job":"x"}\n')
    res = cli("schedule", "--nodes", other, "--jobs", BATCH)
    assert res.code == 2 and "o.jsonl:1" in res.stderr and "node" in res.stderr


def test_plan_feeds_the_job_spec_reader(cli: Any, write: Any) -> None:
    """The plan's records are what `fogctl submit -` reads: specs with their node."""
    from fogctl.jobs import load_specs

    res = cli("schedule", "--nodes", NODES, "--jobs", BATCH, "--json", *FAST)
    plan = write("plan.jsonl", res.stdout)
    specs = {s.id: s for s in load_specs(plan)}
    by = {r["job"]: r for r in res.records()}
    assert set(specs) == BATCH_JOBS
    assert all(specs[j].node == by[j]["node"] for j in specs)


def test_price_options(cli: Any) -> None:
    res = cli("schedule", "price", "--nodes", NODES, "--jobs", BATCH, "--all", "--json")
    quotes = res.records()
    ingest = [q for q in quotes if q["job"] == "ingest"]
    assert len(ingest) > 3 and sum(q["cheapest"] for q in ingest) == 1
    prices = [q["price"] for q in ingest]
    assert prices == sorted(prices) and ingest[0]["cheapest"]
    res = cli("schedule", "price", "--nodes", NODES, "--jobs", BATCH, "--bid", "reserved", "--json")
    assert {q["bid"] for q in res.records()} == {"reserved"}
    res = cli("schedule", "price", "--jobs", BATCH, "-", "--json", input=Path(NODES).read_text())
    assert res.code == 0 and len(res.records()) == len(BATCH_JOBS)
    res = cli("schedule", "price", "--nodes", NODES, "--jobs", BATCH, "--bid", "auction")
    assert res.code == 2
    assert GIB  # the helpers module is shared


def test_sim_compares_algorithms(cli: Any) -> None:
    res = cli(
        "schedule",
        "sim",
        "--jobs",
        "150",
        "--nodes",
        "10",
        "--load",
        "0.7",
        "--algorithms",
        "greedy-latency,ffd,nsga2",
        "--budget-ms",
        "10",
        "--json",
    )
    assert res.code == 0, res.stderr
    recs = res.records()
    assert [r["algorithm"] for r in recs] == ["greedy-latency", "ffd", "nsga2"]
    for r in recs:
        assert r["completed"] == 150
        assert set(r["on_time"]) >= {"S", "all"}
        assert 0 < r["utilization"]["cpu"] <= 1.0
    assert cli("schedule", "sim", "--algorithms", "magic").code == 2
    assert cli("schedule", "sim", "--load", "3").code == 2


def test_places_on_this_machine_from_its_own_node_record(
    cli: Any, fresh_state: Any, write: Any
) -> None:
    """The real local node record (psutil capacity, as `fogctl status --json` and
    `fogctl dht providers --json` write it) piped into the scheduler."""
    from fogctl.node import node_record

    rec = node_record(fresh_state)
    assert rec.cpu and rec.memory
    jobs = write("one.yaml", spec_yaml([{"name": "tiny", "cpu": 0.01, "memory": "8Mi"}]))
    res = cli("schedule", "--jobs", jobs, "-", "--json", *FAST, input=nodes_jsonl([rec]))
    # however busy the machine is, a job that fits its cores is placed (soft headroom)
    assert res.code == 0, res.stderr
    (a,) = res.records()
    assert a["node"] == rec.id
    assert a["objectives"]["latency_ms"] == 100.0  # not measured: the default
    # and job specs on stdin with nodes from a file
    text = Path(jobs).read_text()
    res = cli("schedule", "--jobs", "-", "--nodes", NODES, "--json", *FAST, input=text)
    assert res.code == 0 and res.records()[0]["job"] == "tiny"
