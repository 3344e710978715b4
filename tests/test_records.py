from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.records import (
    ErrorRecord,
    NodeRecord,
    iter_json_lines,
    read_records,
    record_from_dict,
    to_json_line,
)


def test_node_record_round_trips_through_json() -> None:
    rec = NodeRecord(id="ab" * 20, cpu=4.0, memory=8 << 30, addresses=("/ip4/127.0.0.1/udp/1",))
    line = to_json_line(rec)
    data = json.loads(line)
    assert data["kind"] == "node"
    assert next(iter(data)) == "kind"
    assert record_from_dict(data) == rec


def test_reader_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text('{"kind":"node","id":"x"}\n\n{"kind": oops}\n')
    with pytest.raises(InvalidInput, match=r"in\.jsonl:3: not JSON"):
        list(read_records(f))


def test_reader_rejects_non_objects_and_wrong_types(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text("[1, 2]\n")
    with pytest.raises(InvalidInput, match=r":1: expected a JSON object"):
        list(read_records(f))
    f.write_text('{"kind":"node","id":"x","cpu":"lots"}\n')
    with pytest.raises(InvalidInput, match=r":1: field 'cpu': expected a number"):
        list(read_records(f))
    f.write_text('{"kind":"node"}\n')
    with pytest.raises(InvalidInput, match=r":1: missing field 'id'"):
        list(read_records(f))


def test_reader_kind_filter_and_unknown_fields(tmp_path: Path) -> None:
    stream = io.StringIO('{"kind":"node","id":"n1","future_field":1}\n{"kind":"other","a":1}\n')
    out = list(read_records(stream))
    assert out[0] == NodeRecord(id="n1")
    assert out[1] == {"kind": "other", "a": 1}
    with pytest.raises(InvalidInput, match=r":1: expected a record of kind error"):
        list(read_records(io.StringIO('{"kind":"node","id":"n"}\n'), kinds={"error"}))


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        list(iter_json_lines(tmp_path / "nope.jsonl"))


def test_error_record_fields() -> None:
    assert json.loads(to_json_line(ErrorRecord("usage", 2, "bad"))) == {
        "kind": "error",
        "code": "usage",
        "exit": 2,
        "message": "bad",
    }


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_reader_parses_or_raises_invalid_input(text: str) -> None:
    try:
        for rec in read_records(io.StringIO(text)):
            assert rec is not None
    except InvalidInput:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "cpu", "memory", "addresses", "trust", "components", "x"]),
        st.one_of(
            st.none(), st.integers(), st.floats(allow_nan=False), st.text(), st.lists(st.text())
        ),
    )
)
def test_fuzz_node_fields_parse_or_raise(fields: dict[str, object]) -> None:
    line = json.dumps({"kind": "node", **fields})
    with contextlib.suppress(InvalidInput):
        list(read_records(io.StringIO(line)))


def test_comments_only_where_asked_and_names_in_errors() -> None:
    text = '# a spec file may say why\n{"kind":"node","id":"n1"}\n'
    got = list(iter_json_lines(io.StringIO(text), name="jobs.jsonl", comments=True))
    assert got == [("jobs.jsonl", 2, {"kind": "node", "id": "n1"})]
    with pytest.raises(InvalidInput, match=r"^jobs\.jsonl:1: not JSON"):
        list(iter_json_lines(io.StringIO(text), name="jobs.jsonl"))
