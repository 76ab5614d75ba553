"""The resource model: Kubernetes-shaped objects, their kinds, validation and YAML.

Pure: no I/O, nothing from gossamer outside `gossamer.core`. Both modes use it: local mode's
store and CLI, and (later) the Kubernetes backend, which parses API server objects leniently.

- `Resource`, `ObjectMeta`: the generic, frozen value; `Resource.from_dict`/`to_dict`.
- `KindInfo`, `KindRegistry`, `BUILTIN_KINDS`: which kinds exist and how each is parsed.
- Kinds: `service` (Service, ServiceAccount), `pod` (Pod), `workload` (Workload),
  `httproute` and `grpcroute` (Gateway API routes, their shared parts in `routes`).
- `traffic_annotations`: retries, timeouts, failure accrual and opaque ports from
  annotations, validated with their kinds; `gateway_durations`: `10s`, `500ms`.
- `load_documents`, `dump_documents`: multi-document YAML with located errors.
- `selector_matches`, `parse_selector`: equality label selectors.
- Errors: `ResourceError` and its kinds `FieldError`, `ValidationError`, `UnknownKindError`,
  `ManifestError`.
"""

from gossamer.core.resources.builtin import BUILTIN_KINDS
from gossamer.core.resources.errors import (
    FieldError,
    FieldPath,
    ManifestError,
    ResourceError,
    UnknownKindError,
    ValidationError,
    format_path,
)
from gossamer.core.resources.manifests import dump_documents, load_documents
from gossamer.core.resources.metadata import DEFAULT_NAMESPACE, ObjectMeta
from gossamer.core.resources.pod import (
    Container,
    ContainerPort,
    EnvVar,
    PodPhase,
    PodSpec,
    PodStatus,
    ProxyStatus,
)
from gossamer.core.resources.registry import KindInfo, KindRegistry, ResourcePart
from gossamer.core.resources.resource import Resource, describe_object, validate
from gossamer.core.resources.selectors import format_selector, parse_selector, selector_matches
from gossamer.core.resources.service import ServicePort, ServiceSpec
from gossamer.core.resources.workload import (
    APP_LABEL,
    WORKLOAD_LABEL,
    WorkloadSpec,
    WorkloadStatus,
)

__all__ = [
    "APP_LABEL",
    "BUILTIN_KINDS",
    "DEFAULT_NAMESPACE",
    "WORKLOAD_LABEL",
    "Container",
    "ContainerPort",
    "EnvVar",
    "FieldError",
    "FieldPath",
    "KindInfo",
    "KindRegistry",
    "ManifestError",
    "ObjectMeta",
    "PodPhase",
    "PodSpec",
    "PodStatus",
    "ProxyStatus",
    "Resource",
    "ResourceError",
    "ResourcePart",
    "ServicePort",
    "ServiceSpec",
    "UnknownKindError",
    "ValidationError",
    "WorkloadSpec",
    "WorkloadStatus",
    "describe_object",
    "dump_documents",
    "format_path",
    "format_selector",
    "load_documents",
    "parse_selector",
    "selector_matches",
    "validate",
]
