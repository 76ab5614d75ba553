from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutboundPolicyRequest(_message.Message):
    __slots__ = ("target", "context_token")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    target: str
    context_token: str
    def __init__(self, target: _Optional[str] = ..., context_token: _Optional[str] = ...) -> None: ...

class OutboundPolicy(_message.Message):
    __slots__ = ("exists", "service", "namespace", "port", "opaque", "routes", "failure_accrual")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    OPAQUE_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_ACCRUAL_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    service: str
    namespace: str
    port: int
    opaque: bool
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    failure_accrual: FailureAccrual
    def __init__(self, exists: _Optional[bool] = ..., service: _Optional[str] = ..., namespace: _Optional[str] = ..., port: _Optional[int] = ..., opaque: _Optional[bool] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., failure_accrual: _Optional[_Union[FailureAccrual, _Mapping]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("name", "namespace", "kind", "hostnames", "rules")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOSTNAMES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    kind: str
    hostnames: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedCompositeFieldContainer[RouteRule]
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., kind: _Optional[str] = ..., hostnames: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[RouteRule, _Mapping]]] = ...) -> None: ...

class RouteRule(_message.Message):
    __slots__ = ("matches", "request_header_modifiers", "response_header_modifiers", "backends", "retry", "timeouts")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADER_MODIFIERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADER_MODIFIERS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[RequestMatch]
    request_header_modifiers: _containers.RepeatedCompositeFieldContainer[HeaderModifier]
    response_header_modifiers: _containers.RepeatedCompositeFieldContainer[HeaderModifier]
    backends: _containers.RepeatedCompositeFieldContainer[Backend]
    retry: RetryPolicy
    timeouts: Timeouts
    def __init__(self, matches: _Optional[_Iterable[_Union[RequestMatch, _Mapping]]] = ..., request_header_modifiers: _Optional[_Iterable[_Union[HeaderModifier, _Mapping]]] = ..., response_header_modifiers: _Optional[_Iterable[_Union[HeaderModifier, _Mapping]]] = ..., backends: _Optional[_Iterable[_Union[Backend, _Mapping]]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., timeouts: _Optional[_Union[Timeouts, _Mapping]] = ...) -> None: ...

class RequestMatch(_message.Message):
    __slots__ = ("path", "headers", "query_params", "method", "grpc")
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_PARAMS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    GRPC_FIELD_NUMBER: _ClassVar[int]
    path: PathMatch
    headers: _containers.RepeatedCompositeFieldContainer[ValueMatch]
    query_params: _containers.RepeatedCompositeFieldContainer[ValueMatch]
    method: str
    grpc: GrpcMethodMatch
    def __init__(self, path: _Optional[_Union[PathMatch, _Mapping]] = ..., headers: _Optional[_Iterable[_Union[ValueMatch, _Mapping]]] = ..., query_params: _Optional[_Iterable[_Union[ValueMatch, _Mapping]]] = ..., method: _Optional[str] = ..., grpc: _Optional[_Union[GrpcMethodMatch, _Mapping]] = ...) -> None: ...

class PathMatch(_message.Message):
    __slots__ = ("kind", "value")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PREFIX: _ClassVar[PathMatch.Kind]
        EXACT: _ClassVar[PathMatch.Kind]
        REGEX: _ClassVar[PathMatch.Kind]
    PREFIX: PathMatch.Kind
    EXACT: PathMatch.Kind
    REGEX: PathMatch.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: PathMatch.Kind
    value: str
    def __init__(self, kind: _Optional[_Union[PathMatch.Kind, str]] = ..., value: _Optional[str] = ...) -> None: ...

class ValueMatch(_message.Message):
    __slots__ = ("name", "value", "regex")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    regex: bool
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., regex: _Optional[bool] = ...) -> None: ...

class GrpcMethodMatch(_message.Message):
    __slots__ = ("service", "method", "regex")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    service: str
    method: str
    regex: bool
    def __init__(self, service: _Optional[str] = ..., method: _Optional[str] = ..., regex: _Optional[bool] = ...) -> None: ...

class HeaderModifier(_message.Message):
    __slots__ = ("set", "add", "remove")
    SET_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    set: _containers.RepeatedCompositeFieldContainer[Header]
    add: _containers.RepeatedCompositeFieldContainer[Header]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, set: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., add: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Backend(_message.Message):
    __slots__ = ("authority", "service", "namespace", "port", "weight")
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    authority: str
    service: str
    namespace: str
    port: int
    weight: int
    def __init__(self, authority: _Optional[str] = ..., service: _Optional[str] = ..., namespace: _Optional[str] = ..., port: _Optional[int] = ..., weight: _Optional[int] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("http_statuses", "grpc_codes", "limit", "timeout_ms")
    HTTP_STATUSES_FIELD_NUMBER: _ClassVar[int]
    GRPC_CODES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    http_statuses: _containers.RepeatedCompositeFieldContainer[StatusRange]
    grpc_codes: _containers.RepeatedScalarFieldContainer[int]
    limit: int
    timeout_ms: int
    def __init__(self, http_statuses: _Optional[_Iterable[_Union[StatusRange, _Mapping]]] = ..., grpc_codes: _Optional[_Iterable[int]] = ..., limit: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class StatusRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Timeouts(_message.Message):
    __slots__ = ("request_ms", "response_ms")
    REQUEST_MS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MS_FIELD_NUMBER: _ClassVar[int]
    request_ms: int
    response_ms: int
    def __init__(self, request_ms: _Optional[int] = ..., response_ms: _Optional[int] = ...) -> None: ...

class FailureAccrual(_message.Message):
    __slots__ = ("consecutive_failures", "min_backoff_ms", "max_backoff_ms", "jitter_ratio")
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    MIN_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_RATIO_FIELD_NUMBER: _ClassVar[int]
    consecutive_failures: int
    min_backoff_ms: int
    max_backoff_ms: int
    jitter_ratio: float
    def __init__(self, consecutive_failures: _Optional[int] = ..., min_backoff_ms: _Optional[int] = ..., max_backoff_ms: _Optional[int] = ..., jitter_ratio: _Optional[float] = ...) -> None: ...
