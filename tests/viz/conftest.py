"""Fixtures of the viz tests: one real Prometheus scraping canned proxies, per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.viz.mesh import fake_pods
from tests.viz.support import PrometheusProcess, running_prometheus


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), fake_pods()) as running:
        yield running
