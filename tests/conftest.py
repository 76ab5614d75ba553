"""Fixtures shared by the whole suite.

Sandbox: `node` is a fresh pod sandbox (a namespace with a bridge) per test, destroyed even
when the test fails; `make_pod(name)` adds a pod to it. Tests using them need root and
network namespaces: CI runs as root, so they fail (never skip) without it. Namespaces of
test runs that crashed are removed once per session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossamer.local.netns import Node, SandboxError, cleanup_leftovers, require_root
from gossamer.local.pod import Pod

# Namespaces of the test suite are named gsmt-<hex>[-<pod>]; other users pick other prefixes.
SANDBOX_PREFIX = "gsmt"


@pytest.fixture(scope="session")
def sandbox_host() -> None:
    """Fail with a clear message without root; clear leftovers of crashed test runs."""
    try:
        require_root()
    except SandboxError as error:
        pytest.fail(str(error), pytrace=False)
    cleanup_leftovers(SANDBOX_PREFIX)


@pytest.fixture
def node(sandbox_host: None, tmp_path: Path) -> Iterator[Node]:
    """A new sandbox node; process logs stay under the test's tmp_path."""
    with Node.create(prefix=SANDBOX_PREFIX, state_dir=tmp_path) as created:
        yield created


@pytest.fixture
def make_pod(node: Node) -> Callable[[str], Pod]:
    """`make_pod("web")` adds a pod to this test's node."""
    return node.add_pod
