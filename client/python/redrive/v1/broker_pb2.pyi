from redrive.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
SOURCE_FORMAT_BINARY_V1: SourceFormat
SOURCE_FORMAT_FIELDS: SourceFormat
SOURCE_FORMAT_LEGACY_JSON: SourceFormat
SOURCE_FORMAT_RAW: SourceFormat
SOURCE_FORMAT_UNSPECIFIED: SourceFormat

class Ack(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class Deliveries(_message.Message):
    __slots__ = ["deliveries"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ["attempt", "channel", "content_type", "correlation_id", "delivery_id", "entry_id", "fields", "headers", "lease_deadline_unix_ms", "max_attempts", "original_entry_id", "payload", "previous_error", "previous_error_code", "source_format", "stream", "trace"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ERROR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    channel: str
    content_type: str
    correlation_id: str
    delivery_id: int
    entry_id: str
    fields: _containers.RepeatedCompositeFieldContainer[StreamField]
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    lease_deadline_unix_ms: int
    max_attempts: int
    original_entry_id: str
    payload: bytes
    previous_error: str
    previous_error_code: str
    source_format: SourceFormat
    stream: str
    trace: _common_pb2.TraceContext
    def __init__(self, delivery_id: _Optional[int] = ..., channel: _Optional[str] = ..., stream: _Optional[str] = ..., entry_id: _Optional[str] = ..., original_entry_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., content_type: _Optional[str] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., previous_error: _Optional[str] = ..., previous_error_code: _Optional[str] = ..., lease_deadline_unix_ms: _Optional[int] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., correlation_id: _Optional[str] = ..., source_format: _Optional[_Union[SourceFormat, str]] = ..., fields: _Optional[_Iterable[_Union[StreamField, _Mapping]]] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ["grace_ms", "reason"]
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grace_ms: int
    reason: str
    def __init__(self, grace_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Extend(_message.Message):
    __slots__ = ["lease_ms"]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    lease_ms: int
    def __init__(self, lease_ms: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ["delay_ms", "error_code", "reason"]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    error_code: str
    reason: str
    def __init__(self, reason: _Optional[str] = ..., error_code: _Optional[str] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ["code", "delivery_id", "message"]
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ALREADY_SETTLED: Notice.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_UNSPECIFIED: Notice.Code
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    INVALID_VERB: Notice.Code
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_DELIVERY: Notice.Code
    code: Notice.Code
    delivery_id: int
    message: str
    def __init__(self, delivery_id: _Optional[int] = ..., code: _Optional[_Union[Notice.Code, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Notices(_message.Message):
    __slots__ = ["notices"]
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    notices: _containers.RepeatedCompositeFieldContainer[Notice]
    def __init__(self, notices: _Optional[_Iterable[_Union[Notice, _Mapping]]] = ...) -> None: ...

class OutgoingMessage(_message.Message):
    __slots__ = ["content_type", "correlation_id", "headers", "payload", "reply_to", "trace"]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    correlation_id: str
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    payload: bytes
    reply_to: str
    trace: _common_pb2.TraceContext
    def __init__(self, payload: _Optional[bytes] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., content_type: _Optional[str] = ..., correlation_id: _Optional[str] = ..., reply_to: _Optional[str] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ...) -> None: ...

class PublishBatchRequest(_message.Message):
    __slots__ = ["channel", "max_len", "messages"]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    channel: str
    max_len: int
    messages: _containers.RepeatedCompositeFieldContainer[OutgoingMessage]
    def __init__(self, channel: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[OutgoingMessage, _Mapping]]] = ..., max_len: _Optional[int] = ...) -> None: ...

class PublishBatchResponse(_message.Message):
    __slots__ = ["correlation_ids", "entry_ids", "stream"]
    CORRELATION_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    correlation_ids: _containers.RepeatedScalarFieldContainer[str]
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    stream: str
    def __init__(self, entry_ids: _Optional[_Iterable[str]] = ..., stream: _Optional[str] = ..., correlation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ["channel", "max_len", "message"]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    max_len: int
    message: OutgoingMessage
    def __init__(self, channel: _Optional[str] = ..., message: _Optional[_Union[OutgoingMessage, _Mapping]] = ..., max_len: _Optional[int] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ["correlation_id", "entry_id", "stream"]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    entry_id: str
    stream: str
    def __init__(self, entry_id: _Optional[str] = ..., stream: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ["auto_ack", "channel", "consumer_label", "dead_letter_policy", "handler_id", "lease_ms", "max_in_flight", "retry_policy", "start"]
    AUTO_ACK_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_LABEL_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_POLICY_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    auto_ack: bool
    channel: str
    consumer_label: str
    dead_letter_policy: _common_pb2.DeadLetterPolicy
    handler_id: str
    lease_ms: int
    max_in_flight: int
    retry_policy: _common_pb2.RetryPolicy
    start: StartPosition
    def __init__(self, channel: _Optional[str] = ..., handler_id: _Optional[str] = ..., retry_policy: _Optional[_Union[_common_pb2.RetryPolicy, _Mapping]] = ..., dead_letter_policy: _Optional[_Union[_common_pb2.DeadLetterPolicy, _Mapping]] = ..., max_in_flight: _Optional[int] = ..., lease_ms: _Optional[int] = ..., start: _Optional[_Union[StartPosition, _Mapping]] = ..., consumer_label: _Optional[str] = ..., auto_ack: bool = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ["auto_ack", "channel", "dead_letter_policy", "handler_id", "instance_id", "lease_ms", "max_in_flight", "names", "retry_policy", "start"]
    AUTO_ACK_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_POLICY_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    auto_ack: bool
    channel: str
    dead_letter_policy: _common_pb2.DeadLetterPolicy
    handler_id: str
    instance_id: str
    lease_ms: int
    max_in_flight: int
    names: _common_pb2.RedisNames
    retry_policy: _common_pb2.RetryPolicy
    start: StartPosition
    def __init__(self, channel: _Optional[str] = ..., handler_id: _Optional[str] = ..., retry_policy: _Optional[_Union[_common_pb2.RetryPolicy, _Mapping]] = ..., dead_letter_policy: _Optional[_Union[_common_pb2.DeadLetterPolicy, _Mapping]] = ..., max_in_flight: _Optional[int] = ..., lease_ms: _Optional[int] = ..., start: _Optional[_Union[StartPosition, _Mapping]] = ..., auto_ack: bool = ..., names: _Optional[_Union[_common_pb2.RedisNames, _Mapping]] = ..., instance_id: _Optional[str] = ...) -> None: ...

class StartPosition(_message.Message):
    __slots__ = ["entry_id", "kind"]
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_AT_ID: StartPosition.Kind
    START_BACKLOG: StartPosition.Kind
    START_NEW: StartPosition.Kind
    START_UNSPECIFIED: StartPosition.Kind
    entry_id: str
    kind: StartPosition.Kind
    def __init__(self, kind: _Optional[_Union[StartPosition.Kind, str]] = ..., entry_id: _Optional[str] = ...) -> None: ...

class Stop(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class StreamField(_message.Message):
    __slots__ = ["name", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: bytes
    value: bytes
    def __init__(self, name: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ["register", "stop", "verbs"]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    VERBS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    stop: Stop
    verbs: Verbs
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., verbs: _Optional[_Union[Verbs, _Mapping]] = ..., stop: _Optional[_Union[Stop, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ["deliveries", "drain", "notices", "registered"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    deliveries: Deliveries
    drain: Drain
    notices: Notices
    registered: Registered
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., deliveries: _Optional[_Union[Deliveries, _Mapping]] = ..., notices: _Optional[_Union[Notices, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class TailRequest(_message.Message):
    __slots__ = ["after_id", "channel", "from_start", "max_entries"]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    after_id: str
    channel: str
    from_start: bool
    max_entries: int
    def __init__(self, channel: _Optional[str] = ..., from_start: bool = ..., after_id: _Optional[str] = ..., max_entries: _Optional[int] = ...) -> None: ...

class TailResponse(_message.Message):
    __slots__ = ["delivery", "started"]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    delivery: Delivery
    started: TailStarted
    def __init__(self, started: _Optional[_Union[TailStarted, _Mapping]] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ...) -> None: ...

class TailStarted(_message.Message):
    __slots__ = ["after_id"]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    after_id: str
    def __init__(self, after_id: _Optional[str] = ...) -> None: ...

class Terminate(_message.Message):
    __slots__ = ["error_code", "reason"]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    error_code: str
    reason: str
    def __init__(self, reason: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class Verb(_message.Message):
    __slots__ = ["ack", "delivery_id", "extend", "nack", "terminate"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EXTEND_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_FIELD_NUMBER: _ClassVar[int]
    ack: Ack
    delivery_id: int
    extend: Extend
    nack: Nack
    terminate: Terminate
    def __init__(self, delivery_id: _Optional[int] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., nack: _Optional[_Union[Nack, _Mapping]] = ..., extend: _Optional[_Union[Extend, _Mapping]] = ..., terminate: _Optional[_Union[Terminate, _Mapping]] = ...) -> None: ...

class Verbs(_message.Message):
    __slots__ = ["verbs"]
    VERBS_FIELD_NUMBER: _ClassVar[int]
    verbs: _containers.RepeatedCompositeFieldContainer[Verb]
    def __init__(self, verbs: _Optional[_Iterable[_Union[Verb, _Mapping]]] = ...) -> None: ...

class SourceFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
