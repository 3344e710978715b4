"""Parsers of what tor sends back (GETINFO status lines, control endpoints), fuzzed."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.tor.control import parse_endpoint
from fogctl.tor.daemon import _bootstrap, _split_kv


class FakeCtl:
    def __init__(self, phase: str) -> None:
        self.phase = phase

    def get_info(self, key: str, default: Any = None) -> str:
        assert key == "status/bootstrap-phase"
        return self.phase


def test_bootstrap_phase_line() -> None:
    line = 'NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info"'
    assert _bootstrap(FakeCtl(line)) == (75, "Loaded enough directory info")
    assert _split_kv('A=1 B="x y" C') == ["A=1", 'B="x y"', "C"]
    assert _bootstrap(FakeCtl("")) == (0, "")


@given(st.text(max_size=200))
def test_bootstrap_parser_takes_any_text(text: str) -> None:
    pct, summary = _bootstrap(FakeCtl(text))
    assert isinstance(pct, int) and isinstance(summary, str)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("9051", ("127.0.0.1", 9051)),
        ("127.0.0.1:9151", ("127.0.0.1", 9151)),
        ("[::1]:9051", ("::1", 9051)),
        ("/run/tor/control", ("unix", "/run/tor/control")),
        ("unix:///run/tor/control", ("unix", "/run/tor/control")),
    ],
)
def test_endpoints(text: str, want: tuple[str, Any]) -> None:
    assert parse_endpoint(text) == want


@given(st.text(max_size=60))
def test_endpoint_parser_parses_or_is_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_endpoint(text)
