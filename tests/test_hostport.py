"""One HOST:PORT grammar for every command (fogctl.hostport)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.hostport import format_hostport, parse_hostport


@pytest.mark.parametrize(
    ("text", "kw", "want"),
    [
        ("example.org:80", {}, ("example.org", 80)),
        ("127.0.0.1:9000", {}, ("127.0.0.1", 9000)),
        ("[::1]:9000", {}, ("::1", 9000)),
        (":9000", {}, ("127.0.0.1", 9000)),
        (" host:1 ", {}, ("host", 1)),
        ("host", {"default_port": 4556}, ("host", 4556)),
        ("::1", {"default_port": 8468}, ("::1", 8468)),
        ("[fe80::1]", {"default_port": 8468}, ("fe80::1", 8468)),
        ("9051", {"port_alone": True}, ("127.0.0.1", 9051)),
        ("0.0.0.0:0", {"any_port": True}, ("0.0.0.0", 0)),
        (":4556", {"default_host": "", "any_port": True}, ("", 4556)),
        ("10.0.0.1:5", {"ip_only": True}, ("10.0.0.1", 5)),
    ],
)
def test_accepted_forms(text: str, kw: dict[str, object], want: tuple[str, int]) -> None:
    assert parse_hostport(text, **kw) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "kw", "says"),
    [
        ("host", {}, "is not HOST:PORT"),
        ("::1:9000", {}, "is not HOST:PORT"),  # ambiguous: write [::1]:9000
        ("host:0", {}, "1-65535"),
        ("host:65536", {}, "1-65535"),
        ("host:99999999999999999999", {}, "a number"),
        ("host:\uff18\uff10", {}, "a number"),  # fullwidth digits are not a port
        ("host:-1", {}, "a number"),
        ("[::1", {}, "[V6]:PORT"),
        ("[::1]x", {}, "[V6]:PORT"),
        ("a b:80", {}, "not a host name"),
        ("not-an-ip:80", {"ip_only": True}, "expected IP:PORT"),
        ("9051", {}, "is not HOST:PORT"),
    ],
)
def test_refused_forms_name_the_argument(text: str, kw: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_hostport(text, what="--peer", **kw)  # type: ignore[arg-type]
    assert exc.value.message.startswith("--peer: ") and says in exc.value.message


@given(st.text(max_size=60))
def test_any_text_parses_or_is_invalid_input(text: str) -> None:
    try:
        host, port = parse_hostport(text, default_port=1)
    except InvalidInput:
        return
    assert 1 <= port <= 65535 and host


@given(
    st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)),
    st.integers(1, 65535),
)
def test_format_round_trips(host: str, port: int) -> None:
    assert parse_hostport(format_hostport(host, port)) == (host, port)
