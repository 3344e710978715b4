"""`fogctl mesh` commands in-process: records out, one-line errors, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_keys_send_bundles_and_errors(cli: Any, tmp_path: Path) -> None:
    assert cli("init", "--json").code == 0
    pub = cli("mesh", "keys", "publish", "--name", "me", "--json")
    assert pub.code == 0
    key = pub.record()
    assert key["kind"] == "mesh-key" and key["node"] == "dtn://me/" and len(key["prekeys"]) > 100
    # trust our own published key from a file (as a peer would), then send to it
    f = tmp_path / "me.key"
    f.write_text(pub.stdout)
    res = cli("mesh", "keys", "trust", str(f), "--json")
    assert res.code == 0 and res.record()["trusted"] is True
    res = cli("mesh", "keys", "trust", str(f), "--fingerprint", "0000", "--json")
    assert res.code == 2 and "fingerprint" in res.stderr
    res = cli("mesh", "send", "--to", "dtn://me/", "--json", input="hello")
    assert res.code == 0, res.stderr
    sent = res.record()
    assert sent["encrypted"] is True and sent["destination"] == "dtn://me/inbox"
    listed = cli("mesh", "bundles", "--json").records()
    assert [b["id"] for b in listed] == [sent["id"]] and listed[0]["origin"] == "local"
    assert cli("mesh", "keys", "list", "--json").records()[0]["trusted"] is True


def test_bad_input_is_one_line_with_exit_codes(cli: Any) -> None:
    cli("init")
    res = cli("mesh", "send", "--to", "http://nope", "--plain", input="x")
    assert res.code == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    res = cli("mesh", "send", "--to", "dtn://stranger/", input="x")
    assert res.code == 4 and "trust" in res.stderr
    res = cli("mesh", "read", "nosuchid")
    assert res.code == 2
    res = cli("mesh", "sim", "--router", "teleport")
    assert res.code == 2
    res = cli("mesh", "serve", "--peer", "ftp://x")
    assert res.code == 2 and "peer" in res.stderr
    res = cli("mesh", "keys", "trust", "dtn://unknown/")
    assert res.code == 2
    res = cli("mesh", "serve", "--tls", "maybe")
    assert res.code == 2 and "--tls" in res.stderr and "Traceback" not in res.stderr
    res = cli("mesh", "keys", "pin", "dtn://", "ab" * 32)
    assert res.code == 2 and "Traceback" not in res.stderr


def test_sim_records_and_plot(cli: Any, tmp_path: Path) -> None:
    plot = tmp_path / "sim.png"
    res = cli(
        "mesh",
        "sim",
        "--nodes",
        "12",
        "--area",
        "300",
        "--duration",
        "900",
        "--lifetime",
        "300",
        "--router",
        "epidemic",
        "--router",
        "direct",
        "--plot",
        str(plot),
        "--json",
    )
    assert res.code == 0, res.stderr
    recs = res.records()
    assert [r["router"] for r in recs] == ["epidemic", "direct"]
    assert recs[0]["delivery_ratio"] >= recs[1]["delivery_ratio"]
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_sim_window_that_counts_nothing_is_refused(cli: Any) -> None:
    res = cli("mesh", "sim", "--nodes", "4", "--duration", "600")
    assert res.code == 2 and "--cooldown" in res.stderr and "Traceback" not in res.stderr


def test_trace_example_runs(cli: Any) -> None:
    trace = Path(__file__).parents[2] / "examples" / "mesh-trace.txt"
    res = cli(
        "mesh",
        "sim",
        "--trace",
        str(trace),
        "--duration",
        "600",
        "--interval",
        "20",
        "--lifetime",
        "300",
        "--json",
    )
    assert res.code == 0, res.stderr
    assert {r["nodes"] for r in res.records()} == {4}


def test_status_summarises_the_node(cli: Any) -> None:
    cli("init")
    cli("mesh", "send", "--to", "dtn://far/", "--plain", "--name", "near", input="x")
    res = cli("mesh", "status", "--name", "near", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["kind"] == "mesh-status" and rec["node"] == "dtn://near/"
    assert rec["bundles"] == 1 and 0 < rec["store_bytes"] <= rec["store_quota"]
    assert rec["drops"] == {} and rec["inbox"] == 0


def test_sim_spray_copies_bound_its_overhead(cli: Any) -> None:
    """--copies L: binary spray makes at most L - 1 relay copies per message."""
    args = ["mesh", "sim", "--nodes", "15", "--area", "300", "--duration", "1200"]
    args += ["--lifetime", "400", "--router", "spray", "--json"]
    few = cli(*args, "--copies", "2").records()[0]
    many = cli(*args, "--copies", "8").records()[0]
    assert few["overhead"] <= 1.0 + 1e-9  # one relay copy, plus the delivery itself
    assert few["overhead"] < many["overhead"] <= 7.0 + 1e-9
    res = cli("mesh", "sim", "--copies", "0")
    assert res.code == 2 and "--copies" in res.stderr


def test_serve_refuses_a_bad_copy_count(cli: Any) -> None:
    assert cli("init", "-q").code == 0
    res = cli("mesh", "serve", "--router", "spray", "--copies", "0", "--tcpcl", "off")
    assert res.code == 2 and "--copies 0" in res.stderr


def test_node_config_copies_reach_the_router(tmp_path: Path) -> None:
    from fogctl.mesh.node import MeshNode, NodeConfig
    from fogctl.mesh.routing import SprayAndWait
    from fogctl.state import State

    state = State.create(tmp_path / "n")[0]
    node = MeshNode(state, NodeConfig("n", router="spray", router_options={"copies": 3}))
    assert isinstance(node.agent.router, SprayAndWait) and node.agent.router.copies == 3
