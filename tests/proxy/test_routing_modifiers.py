"""Gateway API header modifiers (pure)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from gossamer.api.gen import policy_pb2 as pb
from gossamer.proxy.routing import CompiledRoutes, HeaderModifiers, apply_header_modifiers


def modifier(
    set: dict[str, str] | None = None,
    add: list[tuple[str, str]] | None = None,
    remove: list[str] | None = None,
) -> pb.HeaderModifier:
    return pb.HeaderModifier(
        set=[pb.Header(name=n, value=v) for n, v in (set or {}).items()],
        add=[pb.Header(name=n, value=v) for n, v in (add or [])],
        remove=remove or [],
    )


HEADERS = [(b"Host", b"web"), (b"X-Env", b"a"), (b"accept", b"*/*"), (b"x-env", b"b")]


def test_set_replaces_every_value_of_the_name_case_insensitively() -> None:
    out = apply_header_modifiers(list(HEADERS), [modifier(set={"x-ENV": "prod"})])
    assert out == [(b"Host", b"web"), (b"accept", b"*/*"), (b"x-ENV", b"prod")]


def test_set_of_an_absent_header_adds_it() -> None:
    out = apply_header_modifiers(list(HEADERS), [modifier(set={"x-new": "1"})])
    assert out == [*HEADERS, (b"x-new", b"1")]


def test_add_appends_and_keeps_existing_values() -> None:
    out = apply_header_modifiers(list(HEADERS), [modifier(add=[("X-Env", "c"), ("X-Env", "d")])])
    assert out == [*HEADERS, (b"X-Env", b"c"), (b"X-Env", b"d")]


def test_remove_deletes_every_value_case_insensitively() -> None:
    out = apply_header_modifiers(list(HEADERS), [modifier(remove=["X-ENV", "absent"])])
    assert out == [(b"Host", b"web"), (b"accept", b"*/*")]


def test_within_a_modifier_set_then_add_then_remove() -> None:
    m = modifier(set={"a": "1", "b": "1"}, add=[("a", "2"), ("c", "3")], remove=["b"])
    assert apply_header_modifiers([(b"A", b"0"), (b"B", b"0")], [m]) == [
        (b"a", b"1"),
        (b"a", b"2"),
        (b"c", b"3"),
    ]


def test_modifiers_apply_in_order() -> None:
    first = modifier(add=[("x", "1")])
    second = modifier(set={"X": "2"}, add=[("y", "1")])
    third = modifier(remove=["y"], add=[("x", "3")])
    out = apply_header_modifiers([], [first, second, third])
    assert out == [(b"X", b"2"), (b"x", b"3")]


def test_nothing_to_do_returns_the_same_list() -> None:
    headers = list(HEADERS)
    assert apply_header_modifiers(headers, HeaderModifiers.NONE) is headers
    assert apply_header_modifiers(headers, []) is headers
    assert apply_header_modifiers(headers, [modifier()]) is headers
    assert HeaderModifiers.compile([modifier()]) is HeaderModifiers.NONE


def test_the_given_list_is_left_alone() -> None:
    headers = list(HEADERS)
    out = apply_header_modifiers(headers, [modifier(set={"x-env": "p"}, add=[("z", "1")])])
    assert out is not headers and headers == HEADERS


def test_headers_that_would_break_framing_are_left_out() -> None:
    m = modifier(
        set={"bad name": "x", "ok": "fine"},
        add=[("x-inject", "a\r\nEvil: 1"), ("x-nul", "a\x00b"), ("", "v"), ("x-ok", " v ")],
    )
    assert apply_header_modifiers([], [m]) == [(b"ok", b"fine"), (b"x-ok", b"v")]


def test_a_rules_modifiers_are_compiled_once_into_the_selection() -> None:
    rule = pb.RouteRule(
        backends=[pb.Backend(authority="web:80", weight=1)],
        request_header_modifiers=[modifier(set={"l5d-dst": "web"})],
        response_header_modifiers=[modifier(remove=["server"])],
    )
    policy = pb.OutboundPolicy(routes=[pb.Route(name="r", kind="HTTPRoute", rules=[rule])])
    s = CompiledRoutes(policy, random.Random(1)).routes[0]
    assert apply_header_modifiers([(b"L5D-Dst", b"x")], s.request_modifiers) == [
        (b"l5d-dst", b"web")
    ]
    assert apply_header_modifiers([(b"Server", b"nginx")], s.response_modifiers) == []


names = st.sampled_from(["a", "A", "b", "B", "c"])
values = st.sampled_from(["1", "2", "3"])


@given(
    headers=st.lists(st.tuples(names, values), max_size=6),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("set"), names, values),
            st.tuples(st.just("add"), names, values),
            st.tuples(st.just("remove"), names, st.just("")),
        ),
        max_size=8,
    ),
)
def test_the_folded_step_agrees_with_applying_each_operation_in_turn(
    headers: list[tuple[str, str]], ops: list[tuple[str, str, str]]
) -> None:
    """One modifier per operation, so the order is exactly the given one."""
    expected = [(n.encode(), v.encode()) for n, v in headers]
    mods = []
    for op, name, value in ops:
        key = name.lower().encode()
        if op in ("set", "remove"):
            expected = [h for h in expected if h[0].lower() != key]
        if op in ("set", "add"):
            expected.append((name.encode(), value.encode()))
        if op == "set":
            mods.append(modifier(set={name: value}))
        elif op == "add":
            mods.append(modifier(add=[(name, value)]))
        else:
            mods.append(modifier(remove=[name]))
    got = apply_header_modifiers([(n.encode(), v.encode()) for n, v in headers], mods)
    assert got == expected
