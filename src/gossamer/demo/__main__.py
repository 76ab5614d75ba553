"""`python -m gossamer.demo <component>`: run one component of the demo application.

Only wiring: parse the component's `DEMO_*` variables (a bad value exits 2 naming it), set up
logging, run until SIGTERM, exit 0 after a clean drain. A listener that cannot bind exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from gossamer.demo import config

COMPONENTS = {
    "web": "HTTP/1.1 front end; calls emoji and voting over gRPC",
    "emoji": "gRPC catalogue of items (ListAll, FindByShortcode)",
    "voting": "gRPC vote counter (Vote, Leaderboard); voting for :doughnut: always fails",
    "vote-bot": "load generator: steady votes and reads against web, forever",
}


def _parser() -> argparse.ArgumentParser:
    lines = ["components and their environment variables (default in brackets):"]
    for name, summary in COMPONENTS.items():
        lines.append(f"\n  {name}: {summary}")
        for var in config.COMPONENT_ENV[name]:
            default = f"[{var.default}]" if var.default else "[unset]"
            lines.append(f"    {var.name:<26} {var.meaning} {default}")
    parser = argparse.ArgumentParser(
        prog="python -m gossamer.demo",
        description="Run one component of Gossamer's demo application.",
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("component", choices=list(COMPONENTS), help="which component to run")
    return parser


def _load(component: str) -> tuple[config.LogSettings, Callable[[], Coroutine[Any, Any, None]]]:
    """The component's log settings and its main coroutine, configuration already parsed."""
    # Imports are deferred so a bad variable is reported before grpc is even loaded.
    if component == "web":
        web_config = config.web_config()
        from gossamer.demo import web

        return web_config.log, lambda: web.serve(web_config)
    if component == "emoji":
        service_config = config.service_config()
        from gossamer.demo import emoji

        return service_config.log, lambda: emoji.serve(service_config)
    if component == "voting":
        voting_config = config.voting_config()
        from gossamer.demo import voting

        return voting_config.service.log, lambda: voting.serve(voting_config)
    bot_config = config.vote_bot_config()
    from gossamer.demo import votebot

    return bot_config.log, lambda: votebot.run(bot_config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config.prefer_native_grpc_resolver()
    try:
        log_settings, main_coroutine = _load(args.component)
    except config.DemoConfigError as error:
        print(f"gossamer.demo {args.component}: configuration error: {error}", file=sys.stderr)
        return 2
    from gossamer.demo.logs import configure_logging, fields

    configure_logging(log_settings, args.component)
    log = logging.getLogger("gossamer.demo")
    try:
        asyncio.run(main_coroutine())
    except OSError as error:
        # Typically a port already in use: say which, and fail rather than limp on.
        log.error("cannot start", extra=fields(error=str(error)))
        return 1
    finally:
        # Closing the loop restores SIGTERM's default action; a second SIGTERM while the
        # interpreter winds down must not turn a clean exit into death by signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
