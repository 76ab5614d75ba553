"""Local mode's Prometheus: Debian's `prometheus`, run in the node namespace by the supervisor.

It listens on 127.0.0.1:9090 inside the node namespace (the host reaches it through the
supervisor's forwarder), keeps its data under `<state>/prometheus/data` for a few hours, and
scrapes the proxies listed in `<state>/prometheus/targets/pods.json`, which `set_targets`
rewrites (atomically: Prometheus never reads half a file) whenever pods change. If it exits
it is started again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from gossamer.local.backoff import RestartBackoff
from gossamer.local.pod import base_env
from gossamer.local.prometheus_config import (
    ScrapeTarget,
    command_line,
    render_config,
    render_targets,
)
from gossamer.local.supervisor.children import Child, spawn
from gossamer.local.supervisor.probes import http_status, wait_until

log = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
LISTEN_PORT = 9090


class PrometheusManager:
    def __init__(
        self,
        binary: str,
        directory: Path,
        owner: str,
        on_change: Callable[[], None],
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.owner = owner
        self._on_change = on_change
        self._child: Child | None = None
        self._task: asyncio.Task[None] | None = None
        self._targets_text: str | None = None

    @property
    def listen(self) -> str:
        return f"{LISTEN_HOST}:{LISTEN_PORT}"

    @property
    def targets_dir(self) -> Path:
        return self.directory / "targets"

    @property
    def pid(self) -> int:
        return self._child.pid if self._child is not None and self._child.running else 0

    def start(self) -> None:
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        (self.directory / "prometheus.yml").write_text(render_config(self.targets_dir, self.listen))
        if self._targets_text is None:
            self.set_targets([])
        self._task = asyncio.create_task(self._supervise(), name="prometheus")

    async def _supervise(self) -> None:
        backoff = RestartBackoff()
        argv = command_line(
            self.binary, self.directory / "prometheus.yml", self.directory / "data", self.listen
        )
        while True:
            self._child = await spawn(
                "prometheus",
                argv,
                env=base_env(),
                owner=self.owner,
                log=self.directory / "prometheus.log",
            )
            self._on_change()
            code = await self._child.wait()
            delay = backoff.delay_after_exit(self._child.ran_for())
            log.warning("prometheus exited with code %s; restarting in %.0fs", code, delay)
            self._on_change()
            await asyncio.sleep(delay)

    async def wait_ready(self, timeout: float) -> bool:
        async def ready() -> bool:
            return await http_status(LISTEN_HOST, LISTEN_PORT, "/-/ready") == 200

        return await wait_until(ready, interval=0.2, timeout=timeout)

    def set_targets(self, targets: list[ScrapeTarget]) -> None:
        text = render_targets(targets)
        if text == self._targets_text:
            return
        path = self.targets_dir / "pods.json"
        temporary = path.with_name(".pods.json.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        self._targets_text = text

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._child is not None:
            await self._child.stop(timeout=10.0)
