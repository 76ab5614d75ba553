"""Service names for every pod: keeps each pod's hosts file in step with the Services.

Pods register when their namespace exists and before their first process starts; every
change to the set of Service addresses rewrites the hosts file of every registered pod in
place (see `gossamer.local.hosts` for why in place).
"""

from __future__ import annotations

from collections.abc import Iterable

from gossamer.local.hosts import (
    PodIdentity,
    ServiceAddress,
    install_pod_files,
    netns_etc_dir,
    remove_pod_files,
    render_hosts,
    write_in_place,
)


class ClusterDNS:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._services: tuple[ServiceAddress, ...] = ()
        self._pods: dict[str, PodIdentity] = {}

    def add_pod(self, netns: str, pod: PodIdentity) -> None:
        self._pods[netns] = pod
        install_pod_files(netns, render_hosts(pod, self._services, self.domain))

    def remove_pod(self, netns: str) -> None:
        self._pods.pop(netns, None)
        remove_pod_files(netns)

    def set_services(self, services: Iterable[ServiceAddress]) -> int:
        """Record the Services' addresses; returns how many hosts files changed."""
        current = tuple(sorted(services))
        if current == self._services:
            return 0
        self._services = current
        changed = 0
        for netns, pod in self._pods.items():
            path = netns_etc_dir(netns) / "hosts"
            if path.parent.is_dir() and write_in_place(
                path, render_hosts(pod, current, self.domain)
            ):
                changed += 1
        return changed
