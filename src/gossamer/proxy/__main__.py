"""`python -m gossamer.proxy`: the sidecar's own entry point.

Pods start the proxy this way rather than through the `gossamer` CLI so that the sidecar
does not import click and the CLI's other commands (about 5 MB of RSS it never uses).
"""

import sys

from gossamer.proxy.config import ConfigError, ProxyConfig


def main() -> int:
    try:
        config = ProxyConfig.from_env()
    except ConfigError as error:
        print(f"gossamer proxy: {error}", file=sys.stderr)
        return 2
    from gossamer.proxy.main import run

    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
