from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetterPolicy(_message.Message):
    __slots__ = ["max_len", "overflow"]
    class Overflow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_EVICT_OLDEST: DeadLetterPolicy.Overflow
    OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_HOLD: DeadLetterPolicy.Overflow
    OVERFLOW_UNSPECIFIED: DeadLetterPolicy.Overflow
    max_len: int
    overflow: DeadLetterPolicy.Overflow
    def __init__(self, max_len: _Optional[int] = ..., overflow: _Optional[_Union[DeadLetterPolicy.Overflow, str]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ["key", "value"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class RedisNames(_message.Message):
    __slots__ = ["consumer", "dlq_stream", "group", "retry_group", "retry_stream", "stream"]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    DLQ_STREAM_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    RETRY_GROUP_FIELD_NUMBER: _ClassVar[int]
    RETRY_STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    dlq_stream: str
    group: str
    retry_group: str
    retry_stream: str
    stream: str
    def __init__(self, stream: _Optional[str] = ..., group: _Optional[str] = ..., retry_stream: _Optional[str] = ..., retry_group: _Optional[str] = ..., dlq_stream: _Optional[str] = ..., consumer: _Optional[str] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ["defaults_applied", "initial_backoff_ms", "jitter", "max_backoff_ms", "max_retries", "multiplier", "unlimited"]
    DEFAULTS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    UNLIMITED_FIELD_NUMBER: _ClassVar[int]
    defaults_applied: bool
    initial_backoff_ms: int
    jitter: float
    max_backoff_ms: int
    max_retries: int
    multiplier: float
    unlimited: bool
    def __init__(self, max_retries: _Optional[int] = ..., unlimited: bool = ..., initial_backoff_ms: _Optional[int] = ..., multiplier: _Optional[float] = ..., max_backoff_ms: _Optional[int] = ..., jitter: _Optional[float] = ..., defaults_applied: bool = ...) -> None: ...

class TraceContext(_message.Message):
    __slots__ = ["traceparent", "tracestate"]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...
