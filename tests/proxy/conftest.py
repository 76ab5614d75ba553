"""The proxy's tests run on uvloop, the loop the proxy runs on in production.

uvloop's transports differ from asyncio's in details that matter here (flow-control
callbacks, `set_protocol`, half-close), so testing on the default loop would prove less.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if os.environ.get("GOSSAMER_TEST_LOOP") == "asyncio":  # to compare with asyncio's loop
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}
