"""YAML manifests: multi-document loading, located errors, and dumping back."""

from __future__ import annotations

import pytest

from gossamer.core.resources import (
    ManifestError,
    Resource,
    dump_documents,
    load_documents,
)
from gossamer.core.resources.manifests import MAX_ALIASES
from tests.core.manifests import POD, SERVICE, WORKLOAD

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: admin
    port: 70000
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
"""


def load_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as raised:
        load_documents(text, "app.yaml")
    return raised.value


def test_multi_document_manifest_loads_in_order() -> None:
    resources = load_documents(MANIFEST.replace("70000", "9990"), "app.yaml")
    assert [(r.kind, r.namespace, r.name) for r in resources] == [
        ("Service", "demo", "web"),
        ("ServiceAccount", "default", "web"),
    ]


def test_field_error_points_at_its_line() -> None:
    error = load_error(MANIFEST)
    assert str(error) == (
        "app.yaml:14:5 (document 1): Service demo/web: spec.ports[1].port: "
        "must be an integer from 1 to 65535 (got 70000)"
    )
    assert (error.line, error.column, error.document) == (14, 5, 1)


def test_missing_field_points_at_its_parent() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - name: a\n"
    assert str(load_error(text)) == (
        "app.yaml:7:5 (document 1): Service default/web: spec.ports[0].port: required"
    )


def test_errors_in_later_documents_name_the_document() -> None:
    text = MANIFEST.replace("70000", "9990") + "---\napiVersion: v1\nkind: Pod\nmetadata: {}\n"
    assert str(load_error(text)) == (
        "app.yaml:23:1 (document 3): Pod (unnamed): metadata.name: required"
    )


def test_malformed_yaml_reports_pyyaml_line_and_column() -> None:
    error = load_error("apiVersion: v1\nkind: Service\nmetadata:\n  name: [web\n")
    assert error.line == 5 and error.column == 1
    assert str(error).startswith("app.yaml:5:1: invalid YAML: while parsing a flow sequence")
    error = load_error("apiVersion: v1\nkind: Service\n  metadata: x\n")
    assert str(error) == "app.yaml:3:11: invalid YAML: mapping values are not allowed here"
    error = load_error("a: 'unterminated\n")
    assert error.line is not None and "invalid YAML" in str(error)
    assert "invalid YAML" in str(load_error("\ttab: 1\n"))


def test_duplicate_keys_are_an_error() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n"
    assert str(load_error(text)) == (
        "app.yaml:5:3: invalid YAML: while reading a mapping: duplicate key 'name'"
    )


KNOWN_KINDS = (
    "known kinds: GRPCRoute (gateway.networking.k8s.io/v1), "
    "HTTPRoute (gateway.networking.k8s.io/v1), Pod (v1), Service (v1), ServiceAccount (v1), "
    "Workload (local.gossamer.dev/v1alpha1)"
)
NOT_AN_OBJECT = "must be a mapping with apiVersion and kind"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", f"app.yaml:1 (document 1): {NOT_AN_OBJECT} (got a list)"),
        ("just text\n", f"app.yaml:1 (document 1): {NOT_AN_OBJECT} (got a str)"),
        ("kind: Service\nmetadata: {name: a}\n", "app.yaml:1 (document 1): apiVersion: required"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "app.yaml:1 (document 1): kind: required"),
        (
            "apiVersion: v1\nkind: Service\n",
            "app.yaml:1 (document 1): Service (unnamed): metadata: required",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
            "app.yaml:3:1 (document 1): Service (unnamed): metadata.name: required",
        ),
        (
            "apiVersion: x/v1\nkind: Foo\nmetadata: {name: a}\n",
            f"app.yaml:2:1 (document 1): unknown kind Foo (apiVersion x/v1); {KNOWN_KINDS}",
        ),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {}\n",
            "app.yaml:4:1 (document 1): ServiceAccount default/a: spec: unknown field",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
            "spec:\n  ports:\n  - port: 80\n    prot: TCP\n",
            "app.yaml:7:5 (document 1): Service default/a: spec.ports[0].prot: "
            'unknown field (did you mean "port"?)',
        ),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"
            "  labels:\n    enabled: yes\n",
            "app.yaml:6:5 (document 1): ServiceAccount default/a: metadata.labels.enabled: "
            "must be a string (got true; quote it to make it a string)",
        ),
    ],
)
def test_document_errors(text: str, expected: str) -> None:
    assert str(load_error(text)).startswith(expected)


def test_empty_documents_are_skipped() -> None:
    assert load_documents("") == []
    assert load_documents("---\n---\n# only a comment\n") == []
    text = "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n"
    assert [r.name for r in load_documents(text)] == ["a"]


def test_timestamps_stay_strings() -> None:
    text = (
        "apiVersion: v1\nkind: ServiceAccount\n"
        "metadata: {name: a, creationTimestamp: 2024-05-01T12:00:00Z}\n"
    )
    (account,) = load_documents(text)
    assert account.metadata.creation_timestamp == "2024-05-01T12:00:00Z"


def test_aliases_are_capped() -> None:
    lines = ["a: &x [1]"] + [f"k{i}: *x" for i in range(MAX_ALIASES + 1)]
    error = load_error("\n".join(lines) + "\n")
    assert f"more than {MAX_ALIASES} aliases" in str(error)


def test_dump_then_load_gives_the_same_resources() -> None:
    resources = [Resource.from_dict(example) for example in (SERVICE, POD, WORKLOAD)]
    text = dump_documents(resources)
    assert text.startswith("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n")
    assert load_documents(text) == resources


def test_dump_quotes_strings_that_would_read_back_as_other_types() -> None:
    (service,) = load_documents(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
        "  annotations: {a.dev/x: 'yes', a.dev/y: '5', a.dev/z: '2024-05-01T12:00:00Z'}\n"
        "spec: {ports: [{port: 80}]}\n"
    )
    assert load_documents(dump_documents([service])) == [service]


def test_next_line_character_survives_a_round_trip() -> None:
    """Found by Hypothesis: PyYAML writes U+0085 raw, then reads it as a line break."""
    (account,) = load_documents(
        "apiVersion: v1\nkind: ServiceAccount\n"
        'metadata: {name: a, annotations: {a.dev/x: "a\\Nb"}}\n'
    )
    assert account.metadata.annotations["a.dev/x"] == "a\x85b"
    assert load_documents(dump_documents([account])) == [account]
