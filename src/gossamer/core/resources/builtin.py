"""The kinds Gossamer knows, in one registry. A new kind is added to this list."""

from __future__ import annotations

from dataclasses import replace

from gossamer.core.resources.grpcroute import GRPC_ROUTE
from gossamer.core.resources.httproute import HTTP_ROUTE
from gossamer.core.resources.pod import POD
from gossamer.core.resources.registry import KindRegistry
from gossamer.core.resources.service import SERVICE, SERVICE_ACCOUNT
from gossamer.core.resources.traffic_annotations import check_service_annotations
from gossamer.core.resources.workload import WORKLOAD

# A Service's retry, timeout, failure-accrual and opaque-port annotations are validated with it.
_SERVICE = replace(SERVICE, check_annotations=check_service_annotations)

BUILTIN_KINDS = KindRegistry([_SERVICE, SERVICE_ACCOUNT, POD, WORKLOAD, HTTP_ROUTE, GRPC_ROUTE])
