"""Service names inside pods: `/etc/netns/<pod netns>/hosts`, which `ip netns exec` mounts.

Every process of a pod is started with `ip netns exec`, which bind-mounts the files of
`/etc/netns/<netns>/` over `/etc`. A pod's hosts file lists every Service with a virtual IP
as `NAME.NS.svc.cluster.local`, `NAME.NS.svc` and `NAME.NS`, plus the short `NAME` for the
pod's own namespace (glibc applies no search domains to the hosts file, so the short forms
are written out). Its `resolv.conf` points at loopback, where nothing answers: a name not in
the hosts file fails at once inside the pod instead of asking the host's resolver.

A bind mount pins the file's inode, so a running pod only sees changes written into the
same file: `write_in_place` rewrites it without replacing it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ETC_NETNS = Path("/etc/netns")
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
RESOLV_CONF = (
    "# gossamer: pod names come from /etc/hosts; no DNS server\n"
    "nameserver 127.0.0.1\n"
    "options timeout:1 attempts:1\n"
)


@dataclass(frozen=True, slots=True, order=True)
class ServiceAddress:
    """A Service's name and virtual IP, as a hosts file lists it."""

    namespace: str
    name: str
    cluster_ip: str


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """Who reads a hosts file: the pod's namespace, name and address."""

    namespace: str
    name: str
    pod_ip: str


def service_names(service: ServiceAddress, pod_namespace: str, domain: str) -> list[str]:
    names = [
        f"{service.name}.{service.namespace}.svc.{domain}",
        f"{service.name}.{service.namespace}.svc",
        f"{service.name}.{service.namespace}",
    ]
    if service.namespace == pod_namespace:
        names.append(service.name)
    return names


def render_hosts(
    pod: PodIdentity,
    services: Iterable[ServiceAddress],
    domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> str:
    """The hosts file of one pod (sorted, so the same inputs give the same bytes)."""
    lines = [
        "# Written by gossamer: the pod's own name and every Service of the mesh.",
        "127.0.0.1\tlocalhost",
        f"{pod.pod_ip}\t{pod.name}",
    ]
    for service in sorted(services):
        names = " ".join(service_names(service, pod.namespace, domain))
        lines.append(f"{service.cluster_ip}\t{names}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> bool:
    """Make `path` hold `text`, keeping its inode; False if it already did."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with os.fdopen(fd, "r+b", closefd=False) as handle:
            if handle.read() == data:
                return False
            handle.seek(0)
            handle.write(data)
            handle.truncate()
        return True
    finally:
        os.close(fd)


def netns_etc_dir(netns: str) -> Path:
    return ETC_NETNS / netns


def install_pod_files(netns: str, hosts: str) -> Path:
    """Create `/etc/netns/<netns>/{hosts,resolv.conf}` before the pod's first process."""
    directory = netns_etc_dir(netns)
    directory.mkdir(parents=True, exist_ok=True)
    write_in_place(directory / "hosts", hosts)
    write_in_place(directory / "resolv.conf", RESOLV_CONF)
    return directory


def remove_pod_files(netns: str) -> None:
    shutil.rmtree(netns_etc_dir(netns), ignore_errors=True)
