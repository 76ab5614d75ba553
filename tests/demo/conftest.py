"""Fixtures for the demo's tests: `demo` starts components for one test, `backends` is an
emoji and a voting process shared by a module (tests read vote counts as deltas)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demo.harness import DemoProcess, DemoProcesses


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcesses]:
    processes = DemoProcesses(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def module_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcesses]:
    processes = DemoProcesses(tmp_path_factory.mktemp("demo"))
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def backends(module_demo: DemoProcesses) -> tuple[DemoProcess, DemoProcess]:
    return module_demo.start_backends()
