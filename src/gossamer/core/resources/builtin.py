"""The kinds Gossamer knows, in one registry. A new kind is added to this list."""

from __future__ import annotations

from gossamer.core.resources.pod import POD
from gossamer.core.resources.registry import KindRegistry
from gossamer.core.resources.service import SERVICE, SERVICE_ACCOUNT
from gossamer.core.resources.workload import WORKLOAD

BUILTIN_KINDS = KindRegistry([SERVICE, SERVICE_ACCOUNT, POD, WORKLOAD])
