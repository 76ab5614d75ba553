"""Properties over generated objects: canonical round trips, and no input crashes a parser."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.core.resources import (
    Resource,
    ResourceError,
    dump_documents,
    format_selector,
    load_documents,
    parse_selector,
    selector_matches,
)
from tests.core.manifests import POD, SERVICE, WORKLOAD, mutated

dns_label = st.from_regex(r"\A[a-z]([-a-z0-9]{0,14}[a-z0-9])?\Z")
label_key = st.builds(
    lambda prefix, name: f"{prefix}/{name}" if prefix else name,
    st.one_of(st.none(), st.from_regex(r"\A[a-z0-9]{1,8}\.(dev|io)\Z")),
    st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?\Z"),
)
non_empty_label_value = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?\Z")
label_value = st.one_of(st.just(""), non_empty_label_value)
labels = st.dictionaries(label_key, label_value, max_size=4)
port_number = st.integers(1, 65535)
port_name = st.from_regex(r"\A[a-z]{1,6}[0-9]{0,3}\Z")
app_protocol = st.one_of(
    st.none(),
    st.sampled_from(["http", "kubernetes.io/h2c", "grpc", "linkerd.io/opaque"]),
    st.text(min_size=1, max_size=10),
)


@st.composite
def service_ports(draw: st.DrawFn) -> list[dict[str, Any]]:
    numbers = draw(st.lists(port_number, min_size=1, max_size=4, unique=True))
    names = draw(st.lists(dns_label, min_size=len(numbers), max_size=len(numbers), unique=True))
    ports = []
    for number, name in zip(numbers, names, strict=True):
        port: dict[str, Any] = {"port": number}
        if len(numbers) > 1 or draw(st.booleans()):
            port["name"] = name
        port["targetPort"] = draw(st.one_of(port_number, port_name))
        port["protocol"] = draw(st.sampled_from(["TCP", "UDP", "SCTP"]))
        protocol = draw(app_protocol)
        if protocol is not None:
            port["appProtocol"] = protocol
        ports.append(port)
    return ports


@st.composite
def canonical_services(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(dns_label), "namespace": draw(dns_label)}
    for field, strategy in (
        ("labels", labels),
        ("annotations", st.dictionaries(label_key, st.text(max_size=20), max_size=3)),
    ):
        value = draw(strategy)
        if value:
            metadata[field] = value
    spec: dict[str, Any] = {
        "type": draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"])),
        "ports": draw(service_ports()),
    }
    selector = draw(labels)
    if selector:
        spec["selector"] = selector
    cluster_ip = draw(st.one_of(st.none(), st.just("None"), st.ip_addresses().map(str)))
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


@st.composite
def canonical_workloads(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": draw(st.integers(0, 50)),
        "command": draw(st.lists(st.text(max_size=10), min_size=1, max_size=4)),
        "serviceAccountName": draw(dns_label),
        "mesh": draw(st.booleans()),
    }
    ports = draw(st.lists(port_number, max_size=3, unique=True))
    env = draw(
        st.dictionaries(
            st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,8}\Z"), st.text(max_size=10), max_size=3
        )
    )
    if ports:
        spec["ports"] = ports
    if env:
        spec["env"] = env
    return {
        "apiVersion": "local.gossamer.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": draw(dns_label), "namespace": "default"},
        "spec": spec,
    }


@settings(max_examples=200)
@given(canonical_services())
def test_canonical_services_round_trip_exactly(document: dict[str, Any]) -> None:
    parsed = Resource.from_dict(document)
    assert parsed.to_dict() == document
    assert load_documents(dump_documents([parsed])) == [parsed]


@given(canonical_workloads())
def test_canonical_workloads_round_trip_exactly(document: dict[str, Any]) -> None:
    parsed = Resource.from_dict(document)
    assert parsed.to_dict() == document
    assert load_documents(dump_documents([parsed])) == [parsed]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
PATHS = [
    "spec", "spec.ports", "spec.ports.0", "spec.ports.0.port", "spec.ports.0.targetPort",
    "spec.selector", "metadata", "metadata.labels", "metadata.name", "status",
]  # fmt: skip


@settings(max_examples=300)
@given(
    base=st.sampled_from([SERVICE, POD, WORKLOAD]),
    path=st.sampled_from(PATHS),
    junk=json_values,
    strict=st.booleans(),
)
def test_any_value_anywhere_is_accepted_or_refused_cleanly(
    base: dict[str, Any], path: str, junk: object, strict: bool
) -> None:
    try:
        document = mutated(base, path, junk)
    except (KeyError, IndexError, TypeError):
        return  # the path does not exist in this kind
    with contextlib.suppress(ResourceError):
        Resource.from_dict(document, strict=strict)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_is_loaded_or_refused_cleanly(text: str) -> None:
    with contextlib.suppress(ResourceError):
        load_documents(text)


@given(labels, labels)
def test_selector_matches_exactly_when_it_is_a_subset(
    selector: dict[str, str], object_labels: dict[str, str]
) -> None:
    expected = set(selector.items()) <= set(object_labels.items())
    assert selector_matches(selector, object_labels) == expected
    assert selector_matches(selector, {**object_labels, **selector})


@given(st.dictionaries(label_key, non_empty_label_value, max_size=4))
def test_selector_text_round_trips(selector: dict[str, str]) -> None:
    assert parse_selector(format_selector(selector)) == selector
