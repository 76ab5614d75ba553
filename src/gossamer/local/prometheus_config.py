"""What local mode's Prometheus is told: its config file and the scrape targets it watches.

Prometheus scrapes every meshed pod's proxy at `<podIP>:4191/metrics` every 5 s. The targets
come from a file-based service discovery file that the supervisor rewrites whenever pods
change; each target carries the labels Linkerd's Prometheus gives a proxy (`namespace`,
`pod`, and `deployment` = the workload's name), so Linkerd-style PromQL works unchanged.
Pure: rendering only; `supervisor.prometheus` writes the files and runs the process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

PROXY_JOB = "gossamer-proxy"
SCRAPE_INTERVAL = "5s"
RETENTION = "6h"
ADMIN_PORT = 4191


@dataclass(frozen=True, slots=True, order=True)
class ScrapeTarget:
    """One meshed pod's proxy."""

    namespace: str
    pod: str
    workload: str
    pod_ip: str

    def to_file_sd(self) -> dict[str, object]:
        return {
            "targets": [f"{self.pod_ip}:{ADMIN_PORT}"],
            "labels": {
                "namespace": self.namespace,
                "pod": self.pod,
                "deployment": self.workload,
                "container": "gossamer-proxy",
            },
        }


def render_targets(targets: Iterable[ScrapeTarget]) -> str:
    """The file_sd JSON document for these targets (sorted: same pods, same bytes)."""
    return json.dumps([target.to_file_sd() for target in sorted(targets)], indent=1) + "\n"


def render_config(targets_dir: Path, listen: str) -> str:
    """prometheus.yml: the proxies (from file_sd in `targets_dir`) and Prometheus itself."""
    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "4s",
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "scrape_configs": [
            {
                "job_name": PROXY_JOB,
                "metrics_path": "/metrics",
                "file_sd_configs": [
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": SCRAPE_INTERVAL}
                ],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": [listen]}]},
        ],
    }
    return "# Written by gossamer up; rewritten on every start.\n" + yaml.safe_dump(
        config, sort_keys=False
    )


def command_line(
    binary: str, config_file: Path, data_dir: Path, listen: str, retention: str = RETENTION
) -> list[str]:
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={listen}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
