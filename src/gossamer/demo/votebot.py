"""The vote-bot: steady traffic at web, forever, whatever happens to web.

A ticker issues `DEMO_BOT_RPS` tokens a second into a queue no longer than the number of
workers; each worker owns one keep-alive connection and sends one request per token. When
every worker is busy (web slow or down) new tokens are dropped and counted as `skipped`, so
the bot never builds a backlog or bursts to catch up. A worker whose request failed at the
transport level backs off (exponentially, jittered) before taking the next token. Every
`DEMO_BOT_REPORT_INTERVAL` a summary line reports what the last interval did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields

from gossamer.demo.config import VoteBotConfig
from gossamer.demo.httpclient import HttpClientError, KeepAliveConnection
from gossamer.demo.lifecycle import StopSignal
from gossamer.demo.logs import fields
from gossamer.demo.traffic import ExponentialBackoff, next_target

log = logging.getLogger("gossamer.demo.votebot")

USER_AGENT = "gossamer-demo-vote-bot/1"


@dataclass
class BotCounts:
    sent: int = 0
    ok: int = 0
    http_4xx: int = 0
    http_5xx: int = 0
    errors: int = 0  # no response at all: refused, reset, timed out, malformed
    skipped: int = 0  # ticks dropped because every worker was busy or backing off

    def minus(self, earlier: BotCounts) -> BotCounts:
        return BotCounts(
            **{
                f.name: getattr(self, f.name) - getattr(earlier, f.name)
                for f in dataclass_fields(self)
            }
        )


class VoteBot:
    def __init__(self, config: VoteBotConfig, stop: StopSignal, rng: random.Random) -> None:
        self._config = config
        self._stop = stop
        self._rng = rng
        self._tokens: asyncio.Queue[None] = asyncio.Queue(maxsize=config.concurrency)
        self._counts = BotCounts()
        self._busy: set[asyncio.Task[None]] = set()
        self._web_reachable: bool | None = None

    async def run(self) -> None:
        workers = [
            asyncio.create_task(self._worker(), name=f"vote-bot-worker-{n}")
            for n in range(self._config.concurrency)
        ]
        reporter = asyncio.create_task(self._report_periodically())
        await self._tick_until_stopped()
        # Let requests in flight finish (bounded by the grace period); idle workers just go.
        for worker in workers:
            if worker not in self._busy:
                worker.cancel()
        _, pending = await asyncio.wait(workers, timeout=self._config.shutdown_grace)
        for worker in pending:
            worker.cancel()
        await asyncio.wait(workers, timeout=1.0)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        self._log_summary("final summary", self._counts, None)

    async def _tick_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self._config.rps
        next_tick = loop.time()
        while not self._stop.is_set():
            try:
                self._tokens.put_nowait(None)
            except asyncio.QueueFull:
                self._counts.skipped += 1
            next_tick += period
            now = loop.time()
            if next_tick < now - 1.0:
                next_tick = now  # fell far behind (a paused process): restart, do not burst
            await self._stop.sleep(next_tick - now)

    async def _worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = KeepAliveConnection(self._config.web_addr, USER_AGENT)
        backoff = ExponentialBackoff()
        try:
            while not self._stop.is_set():
                await self._tokens.get()
                self._busy.add(task)
                try:
                    delivered = await self._send_one(connection)
                finally:
                    self._busy.discard(task)
                if delivered:
                    backoff.reset()
                else:
                    await self._stop.sleep(backoff.next_delay(self._rng))
        finally:
            await connection.close()

    async def _send_one(self, connection: KeepAliveConnection) -> bool:
        """Send the next request; returns whether web answered at all."""
        target = next_target(self._rng, self._config.failing_share)
        self._counts.sent += 1
        try:
            result = await connection.get(target, self._config.request_timeout)
        except HttpClientError as error:
            self._counts.errors += 1
            self._note_reachability(False, str(error))
            return False
        self._note_reachability(True, "")
        if result.status >= 500:
            self._counts.http_5xx += 1
        elif result.status >= 400:
            self._counts.http_4xx += 1
        else:
            self._counts.ok += 1
        return True

    def _note_reachability(self, reachable: bool, error: str) -> None:
        # Log changes, not every failure: at 5 rps a per-request line would bury everything.
        if reachable == self._web_reachable:
            return
        self._web_reachable = reachable
        addr = str(self._config.web_addr)
        if reachable:
            log.info("web is answering", extra=fields(web=addr))
        else:
            log.warning("web unreachable; backing off", extra=fields(web=addr, error=error))

    async def _report_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._config.report_interval
        previous = replace(self._counts)
        started = loop.time()
        while True:
            await asyncio.sleep(interval)
            current = replace(self._counts)
            now = loop.time()
            self._log_summary("summary", current.minus(previous), now - started)
            previous, started = current, now

    def _log_summary(self, message: str, counts: BotCounts, seconds: float | None) -> None:
        answered = counts.ok + counts.http_4xx + counts.http_5xx
        summary: dict[str, object] = {
            f.name: getattr(counts, f.name) for f in dataclass_fields(counts)
        }
        if seconds is not None:
            summary["interval_s"] = round(seconds, 1)
            summary["rps"] = round(counts.sent / seconds, 2) if seconds > 0 else 0.0
        # Success as the mesh counts it for HTTP: answered and not 5xx.
        summary["success_rate"] = (
            round((counts.ok + counts.http_4xx) / answered, 3) if answered else "n/a"
        )
        log.info(message, extra=fields(web=str(self._config.web_addr), **summary))


async def run(config: VoteBotConfig) -> None:
    stop = StopSignal.install()
    bot = VoteBot(config, stop, random.Random(config.seed))
    log.info(
        "ready",
        extra=fields(
            web=str(config.web_addr),
            rps=config.rps,
            concurrency=config.concurrency,
            failing_share=config.failing_share,
        ),
    )
    runner = asyncio.create_task(bot.run())
    received = await stop.wait()
    log.info("shutting down", extra=fields(signal=received, grace_s=config.shutdown_grace))
    await runner
    log.info("stopped")
