from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResetRequest(_message.Message):
    __slots__ = ("request", "rule")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    request: CheckLimitRequest
    rule: str
    def __init__(self, request: _Optional[_Union[CheckLimitRequest, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("counters",)
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.RepeatedCompositeFieldContainer[ResetCounter]
    def __init__(self, counters: _Optional[_Iterable[_Union[ResetCounter, _Mapping]]] = ...) -> None: ...

class ResetCounter(_message.Message):
    __slots__ = ("rule", "limit_name", "tier", "backend", "deleted")
    RULE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    rule: str
    limit_name: str
    tier: str
    backend: str
    deleted: bool
    def __init__(self, rule: _Optional[str] = ..., limit_name: _Optional[str] = ..., tier: _Optional[str] = ..., backend: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class InspectRequest(_message.Message):
    __slots__ = ("request", "rule")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    request: CheckLimitRequest
    rule: str
    def __init__(self, request: _Optional[_Union[CheckLimitRequest, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class BackendsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackendsResponse(_message.Message):
    __slots__ = ("backends", "serving")
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[BackendStatus]
    serving: bool
    def __init__(self, backends: _Optional[_Iterable[_Union[BackendStatus, _Mapping]]] = ..., serving: _Optional[bool] = ...) -> None: ...

class BackendStatus(_message.Message):
    __slots__ = ("name", "kind", "breaker", "usable", "last_latency_us", "last_error", "transitions", "retry_in_ms", "members")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    USABLE_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_MS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    breaker: str
    usable: bool
    last_latency_us: int
    last_error: str
    transitions: int
    retry_in_ms: int
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., breaker: _Optional[str] = ..., usable: _Optional[bool] = ..., last_latency_us: _Optional[int] = ..., last_error: _Optional[str] = ..., transitions: _Optional[int] = ..., retry_in_ms: _Optional[int] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class DescriptorEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CheckLimitRequest(_message.Message):
    __slots__ = ("domain", "descriptors", "client_ip", "user", "api_key", "method", "path", "headers", "cost", "limits", "peer_ip", "forwarded_for")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PEER_IP_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FOR_FIELD_NUMBER: _ClassVar[int]
    domain: str
    descriptors: _containers.RepeatedCompositeFieldContainer[DescriptorEntry]
    client_ip: str
    user: str
    api_key: str
    method: str
    path: str
    headers: _containers.ScalarMap[str, str]
    cost: int
    limits: _containers.RepeatedCompositeFieldContainer[DeclaredLimit]
    peer_ip: str
    forwarded_for: str
    def __init__(self, domain: _Optional[str] = ..., descriptors: _Optional[_Iterable[_Union[DescriptorEntry, _Mapping]]] = ..., client_ip: _Optional[str] = ..., user: _Optional[str] = ..., api_key: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., cost: _Optional[int] = ..., limits: _Optional[_Iterable[_Union[DeclaredLimit, _Mapping]]] = ..., peer_ip: _Optional[str] = ..., forwarded_for: _Optional[str] = ...) -> None: ...

class DeclaredLimit(_message.Message):
    __slots__ = ("name", "key", "rate", "algorithm", "burst", "initial_tokens", "count_denied", "shadow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    INITIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COUNT_DENIED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: _containers.RepeatedScalarFieldContainer[str]
    rate: str
    algorithm: LimitStatus.Algorithm
    burst: int
    initial_tokens: int
    count_denied: bool
    shadow: bool
    def __init__(self, name: _Optional[str] = ..., key: _Optional[_Iterable[str]] = ..., rate: _Optional[str] = ..., algorithm: _Optional[_Union[LimitStatus.Algorithm, str]] = ..., burst: _Optional[int] = ..., initial_tokens: _Optional[int] = ..., count_denied: _Optional[bool] = ..., shadow: _Optional[bool] = ...) -> None: ...

class CheckLimitResponse(_message.Message):
    __slots__ = ("allowed", "code", "statuses", "headers", "shadowed", "degraded", "retry_after_ms", "reset_after_ms")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[CheckLimitResponse.Code]
        OK: _ClassVar[CheckLimitResponse.Code]
        OVER_LIMIT: _ClassVar[CheckLimitResponse.Code]
        UNAVAILABLE: _ClassVar[CheckLimitResponse.Code]
    CODE_UNSPECIFIED: CheckLimitResponse.Code
    OK: CheckLimitResponse.Code
    OVER_LIMIT: CheckLimitResponse.Code
    UNAVAILABLE: CheckLimitResponse.Code
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SHADOWED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    RESET_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    code: CheckLimitResponse.Code
    statuses: _containers.RepeatedCompositeFieldContainer[LimitStatus]
    headers: _containers.ScalarMap[str, str]
    shadowed: bool
    degraded: bool
    retry_after_ms: int
    reset_after_ms: int
    def __init__(self, allowed: _Optional[bool] = ..., code: _Optional[_Union[CheckLimitResponse.Code, str]] = ..., statuses: _Optional[_Iterable[_Union[LimitStatus, _Mapping]]] = ..., headers: _Optional[_Mapping[str, str]] = ..., shadowed: _Optional[bool] = ..., degraded: _Optional[bool] = ..., retry_after_ms: _Optional[int] = ..., reset_after_ms: _Optional[int] = ...) -> None: ...

class LimitStatus(_message.Message):
    __slots__ = ("rule", "limit_name", "algorithm", "limit", "window_ms", "remaining", "reset_after_ms", "retry_after_ms", "over_limit", "shadow", "tier", "failure", "backend")
    class Algorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ALGORITHM_UNSPECIFIED: _ClassVar[LimitStatus.Algorithm]
        FIXED_WINDOW: _ClassVar[LimitStatus.Algorithm]
        SLIDING_WINDOW: _ClassVar[LimitStatus.Algorithm]
        SLIDING_LOG: _ClassVar[LimitStatus.Algorithm]
        TOKEN_BUCKET: _ClassVar[LimitStatus.Algorithm]
        GCRA: _ClassVar[LimitStatus.Algorithm]
    ALGORITHM_UNSPECIFIED: LimitStatus.Algorithm
    FIXED_WINDOW: LimitStatus.Algorithm
    SLIDING_WINDOW: LimitStatus.Algorithm
    SLIDING_LOG: LimitStatus.Algorithm
    TOKEN_BUCKET: LimitStatus.Algorithm
    GCRA: LimitStatus.Algorithm
    class Failure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FAILURE_NONE: _ClassVar[LimitStatus.Failure]
        FAIL_OPEN: _ClassVar[LimitStatus.Failure]
        FAIL_CLOSED: _ClassVar[LimitStatus.Failure]
        LOCAL: _ClassVar[LimitStatus.Failure]
    FAILURE_NONE: LimitStatus.Failure
    FAIL_OPEN: LimitStatus.Failure
    FAIL_CLOSED: LimitStatus.Failure
    LOCAL: LimitStatus.Failure
    RULE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NAME_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    rule: str
    limit_name: str
    algorithm: LimitStatus.Algorithm
    limit: int
    window_ms: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int
    over_limit: bool
    shadow: bool
    tier: str
    failure: LimitStatus.Failure
    backend: str
    def __init__(self, rule: _Optional[str] = ..., limit_name: _Optional[str] = ..., algorithm: _Optional[_Union[LimitStatus.Algorithm, str]] = ..., limit: _Optional[int] = ..., window_ms: _Optional[int] = ..., remaining: _Optional[int] = ..., reset_after_ms: _Optional[int] = ..., retry_after_ms: _Optional[int] = ..., over_limit: _Optional[bool] = ..., shadow: _Optional[bool] = ..., tier: _Optional[str] = ..., failure: _Optional[_Union[LimitStatus.Failure, str]] = ..., backend: _Optional[str] = ...) -> None: ...
