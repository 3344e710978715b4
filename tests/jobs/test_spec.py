"""The job spec parser: fogctl-job(5)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.jobs import PRIORITY_CLASSES, load_specs, parse_memory, parse_spec

FULL = """\
apiVersion: fogctl/v1
kind: Job
metadata:
  name: train
  labels: {team: ml}
image: fogctl-test/busybox:1
command: [sh, -c]
args: ["echo $X; touch out.txt"]
env: {X: "1", Y: 2}
resources:
  requests: {cpu: 500m, memory: 128Mi}
  limits: {cpu: 2, memory: 1Gi, pids: 64}
backoffLimit: 3
activeDeadlineSeconds: 600
priorityClassName: high
sla: S
completions: 4
parallelism: 2
dependsOn: ["afterok:prep", {job: clean, type: afterany}]
gang: g1
estimateSeconds: 42
checkpoint: {path: /ckpt, intervalSeconds: 30, signal: SIGUSR1, gracePeriodSeconds: 5}
network: bridge
inputs: [{source: data.csv, path: in/data.csv}]
outputs: [out.txt]
executor: docker
nodeName: n1
"""


def test_full_spec_fields(tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text(FULL)
    (spec,) = load_specs(f)
    assert spec.id == "train" and spec.labels == {"team": "ml"}
    assert spec.cpu == 0.5 and spec.cpu_limit == 2.0
    assert spec.memory == 128 * 2**20 and spec.memory_limit == 2**30
    assert spec.pids == 64 and spec.backoff_limit == 3 and spec.deadline_seconds == 600
    assert spec.priority == PRIORITY_CLASSES["high"] and spec.sla == "S"
    assert spec.depends_on == (("prep", "afterok"), ("clean", "afterany"))
    assert spec.env == {"X": "1", "Y": "2"}
    assert spec.checkpoint is not None and spec.checkpoint.signal == "SIGUSR1"
    assert spec.inputs[0].source == str(tmp_path / "data.csv")
    assert spec.node == "n1" and spec.estimate_seconds == 42.0
    assert parse_spec(spec.raw) == spec
    assert json.loads(json.dumps(spec.raw)) == spec.raw


def test_defaults_and_limits_only() -> None:
    spec = parse_spec(
        {
            "metadata": {"name": "a"},
            "wasm": "x.wat",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
        }
    )
    assert spec.cpu == 0.25 and spec.memory == 64 * 2**20
    assert spec.network == "none" and spec.backoff_limit == 0 and spec.priority == 500
    assert spec.kind == "wasm"


def test_several_documents_and_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text(
        "metadata: {name: a}\nimage: i\n---\nmetadata: {name: b}\nimage: i\n"
        "resources:\n  limits:\n    memory: lots\n"
    )
    with pytest.raises(InvalidInput, match=r"b.yaml:8: field 'resources.limits.memory'"):
        load_specs(f)
    f.write_text("metadata: {name: a}\nimage: i\n---\nmetadata: {name: b}\nimage: i\n")
    assert [s.id for s in load_specs(f)] == ["a", "b"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("privileged: true", "privileged"),
        ("volumes: [/:/host]", "volumes"),
        ("hostNetwork: true", "hostNetwork"),
        ("network: host", "network"),
        ("securityContext: {runAsUser: 0}", "securityContext"),
        ("user: root", "user"),
    ],
)
def test_hostile_fields_refused(tmp_path: Path, extra: str, field: str) -> None:
    f = tmp_path / "h.yaml"
    f.write_text(f"metadata: {{name: h}}\nimage: i\n{extra}\n")
    with pytest.raises(InvalidInput, match=rf"h.yaml:3: field '{field}': refused"):
        load_specs(f)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"metadata": {"name": "x"}}, "image"),
        ({"metadata": {"name": "x"}, "image": "i", "wasm": "m.wat"}, "image"),
        ({"metadata": {"name": "Bad Name"}, "image": "i"}, "metadata.name"),
        ({"metadata": {"name": "x"}, "image": "i; rm -rf /"}, "image"),
        ({"metadata": {"name": "x"}, "image": "i", "colour": 1}, "colour"),
        ({"metadata": {"name": "x"}, "image": "i", "command": "echo hi"}, "command"),
        (
            {"metadata": {"name": "x"}, "image": "i", "resources": {"limits": {"memory": "9Pi"}}},
            "resources.limits.memory",
        ),
        (
            {"metadata": {"name": "x"}, "image": "i", "resources": {"limits": {"cpu": 1e9}}},
            "resources.limits.cpu",
        ),
        (
            {"metadata": {"name": "x"}, "image": "i", "resources": {"limits": {"pids": 10**9}}},
            "resources.limits.pids",
        ),
        (
            {"metadata": {"name": "x"}, "image": "i", "activeDeadlineSeconds": -1},
            "activeDeadlineSeconds",
        ),
        ({"metadata": {"name": "x"}, "image": "i", "backoffLimit": 10**6}, "backoffLimit"),
        ({"metadata": {"name": "x"}, "image": "i", "outputs": ["../../etc/passwd"]}, "outputs[0]"),
        (
            {"metadata": {"name": "x"}, "image": "i", "dependsOn": ["afterwhenever:y"]},
            "dependsOn[0]",
        ),
        (
            {"metadata": {"name": "x"}, "image": "i", "checkpoint": {"path": "rel"}},
            "checkpoint.path",
        ),
        ({"metadata": {"name": "x"}, "image": "i", "env": {"1BAD": "v"}}, "env.1BAD"),
        (
            {"metadata": {"name": "x"}, "image": "i", "priorityClassName": "urgent"},
            "priorityClassName",
        ),
    ],
)
def test_invalid_specs_name_the_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=rf"<spec>: field '{re.escape(field)}"):
        parse_spec(obj)


def test_shell_metacharacters_are_kept_as_plain_arguments() -> None:
    spec = parse_spec(
        {
            "metadata": {"name": "x"},
            "image": "i",
            "command": ["echo", "$(reboot); `id` && rm -rf /"],
        }
    )
    assert spec.command == ("echo", "$(reboot); `id` && rm -rf /")


def test_json_lines_and_assignments() -> None:
    spec = {"metadata": {"name": "j1"}, "wasm": "/m.wat"}
    lines = [
        json.dumps({"kind": "assignment", "job": "j1", "node": "n7", "spec": spec}),
        json.dumps({"metadata": {"name": "j2"}, "image": "i"}),
    ]
    specs = load_specs(io.StringIO("\n".join(lines) + "\n"))
    assert [(s.id, s.node) for s in specs] == [("j1", "n7"), ("j2", None)]
    bad = json.dumps(
        {"kind": "assignment", "job": "j1", "node": None, "unplaced": "no capacity", "spec": spec}
    )
    with pytest.raises(InvalidInput, match=r"<stdin>:1: .*not placed: no capacity"):
        load_specs(io.StringIO(bad + "\n"))
    left_out: list[tuple[str, str]] = []  # a partial plan: skipped and reported
    specs = load_specs(io.StringIO(bad + "\n" + lines[1] + "\n"), unplaced=left_out)
    assert [s.id for s in specs] == ["j2"] and left_out == [("j1", "no capacity")]
    with pytest.raises(InvalidInput, match=r"<stdin>:2: field 'bogus'"):
        load_specs(io.StringIO(lines[1] + "\n" + json.dumps({**spec, "bogus": 1}) + "\n"))


def test_duplicate_ids_and_aliases(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("metadata: {name: a}\nimage: i\n---\nmetadata: {name: a}\nimage: i\n")
    with pytest.raises(InvalidInput, match="appears twice"):
        load_specs(f)
    f.write_text("x: &a [1]\nmetadata: {name: a}\nimage: i\nargs: *a\n")
    with pytest.raises(InvalidInput, match="aliases"):
        load_specs(f)


def test_memory_units() -> None:
    assert parse_memory("256Mi") == 256 * 2**20
    assert parse_memory("1G") == 10**9
    assert parse_memory(8_000_000) == 8_000_000


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_yaml_parses_or_invalid(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        load_specs(io.StringIO(text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "metadata",
                "image",
                "wasm",
                "resources",
                "env",
                "command",
                "checkpoint",
                "inputs",
                "dependsOn",
            ]
        ),
        json_values,
        max_size=6,
    )
)
def test_fuzz_objects_parse_or_invalid(obj: dict[str, Any]) -> None:
    try:
        spec = parse_spec(obj)
    except InvalidInput:
        return
    assert parse_spec(spec.raw) == spec
