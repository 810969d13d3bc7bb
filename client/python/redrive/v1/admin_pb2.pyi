from redrive.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
ORDER_NEWEST_FIRST: Order
ORDER_OLDEST_FIRST: Order
ORDER_UNSPECIFIED: Order

class AttemptRecord(_message.Message):
    __slots__ = ["attempt", "consumer", "error", "error_code", "outcome", "unix_ms"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    consumer: str
    error: str
    error_code: str
    outcome: str
    unix_ms: int
    def __init__(self, attempt: _Optional[int] = ..., unix_ms: _Optional[int] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., consumer: _Optional[str] = ...) -> None: ...

class CancelRedriveJobRequest(_message.Message):
    __slots__ = ["job_id"]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ConsumerInfo(_message.Message):
    __slots__ = ["idle_ms", "local", "name", "pending"]
    IDLE_MS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    idle_ms: int
    local: bool
    name: str
    pending: int
    def __init__(self, name: _Optional[str] = ..., pending: _Optional[int] = ..., idle_ms: _Optional[int] = ..., local: bool = ...) -> None: ...

class CountDeadLettersRequest(_message.Message):
    __slots__ = ["filter", "handler"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ...) -> None: ...

class CountDeadLettersResponse(_message.Message):
    __slots__ = ["count"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ["attempts", "content_type", "dead_lettered_unix_ms", "eggai_format", "entry_id", "first_failure_unix_ms", "handler_id", "headers", "history", "last_error", "last_error_code", "original_entry_id", "payload", "payload_size", "payload_truncated", "quarantined", "reason", "redrive_count", "source_channel"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EGGAI_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_FAILURE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REDRIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    content_type: str
    dead_lettered_unix_ms: int
    eggai_format: bool
    entry_id: str
    first_failure_unix_ms: int
    handler_id: str
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    history: _containers.RepeatedCompositeFieldContainer[AttemptRecord]
    last_error: str
    last_error_code: str
    original_entry_id: str
    payload: bytes
    payload_size: int
    payload_truncated: bool
    quarantined: bool
    reason: str
    redrive_count: int
    source_channel: str
    def __init__(self, entry_id: _Optional[str] = ..., reason: _Optional[str] = ..., source_channel: _Optional[str] = ..., handler_id: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_code: _Optional[str] = ..., first_failure_unix_ms: _Optional[int] = ..., dead_lettered_unix_ms: _Optional[int] = ..., original_entry_id: _Optional[str] = ..., history: _Optional[_Iterable[_Union[AttemptRecord, _Mapping]]] = ..., payload: _Optional[bytes] = ..., payload_truncated: bool = ..., payload_size: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., content_type: _Optional[str] = ..., redrive_count: _Optional[int] = ..., quarantined: bool = ..., eggai_format: bool = ...) -> None: ...

class DeadLetterFilter(_message.Message):
    __slots__ = ["from_unix_ms", "reasons", "to_unix_ms"]
    FROM_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    TO_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    from_unix_ms: int
    reasons: _containers.RepeatedScalarFieldContainer[str]
    to_unix_ms: int
    def __init__(self, reasons: _Optional[_Iterable[str]] = ..., from_unix_ms: _Optional[int] = ..., to_unix_ms: _Optional[int] = ...) -> None: ...

class DeleteDeadLettersRequest(_message.Message):
    __slots__ = ["entry_ids", "handler"]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDeadLettersResponse(_message.Message):
    __slots__ = ["deleted", "not_found"]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    not_found: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[int] = ..., not_found: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteHandlerRequest(_message.Message):
    __slots__ = ["expected_dead_letters", "expected_retry_entries", "force", "handler"]
    EXPECTED_DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RETRY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    expected_dead_letters: int
    expected_retry_entries: int
    force: bool
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., force: bool = ..., expected_retry_entries: _Optional[int] = ..., expected_dead_letters: _Optional[int] = ...) -> None: ...

class DeleteHandlerResponse(_message.Message):
    __slots__ = ["dead_letters", "deleted_keys", "destroyed_groups", "handler", "retry_entries", "unpaused", "unregistered"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    DELETED_KEYS_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    RETRY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    UNPAUSED_FIELD_NUMBER: _ClassVar[int]
    UNREGISTERED_FIELD_NUMBER: _ClassVar[int]
    dead_letters: int
    deleted_keys: _containers.RepeatedScalarFieldContainer[str]
    destroyed_groups: _containers.RepeatedScalarFieldContainer[str]
    handler: HandlerRef
    retry_entries: int
    unpaused: bool
    unregistered: bool
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., destroyed_groups: _Optional[_Iterable[str]] = ..., deleted_keys: _Optional[_Iterable[str]] = ..., retry_entries: _Optional[int] = ..., dead_letters: _Optional[int] = ..., unregistered: bool = ..., unpaused: bool = ...) -> None: ...

class EntryIds(_message.Message):
    __slots__ = ["entry_ids"]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetDeadLetterRequest(_message.Message):
    __slots__ = ["entry_id", "handler"]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., entry_id: _Optional[str] = ...) -> None: ...

class GetRedriveJobRequest(_message.Message):
    __slots__ = ["job_id"]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class HandlerCounters(_message.Message):
    __slots__ = ["acks", "dead_letters", "deliveries", "extends", "lease_expiries", "nacks", "retries_scheduled", "terminates"]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    EXTENDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRIES_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    TERMINATES_FIELD_NUMBER: _ClassVar[int]
    acks: int
    dead_letters: int
    deliveries: int
    extends: int
    lease_expiries: int
    nacks: int
    retries_scheduled: int
    terminates: int
    def __init__(self, deliveries: _Optional[int] = ..., acks: _Optional[int] = ..., nacks: _Optional[int] = ..., terminates: _Optional[int] = ..., extends: _Optional[int] = ..., lease_expiries: _Optional[int] = ..., retries_scheduled: _Optional[int] = ..., dead_letters: _Optional[int] = ...) -> None: ...

class HandlerInfo(_message.Message):
    __slots__ = ["connected_streams", "consumers", "counters", "dead_letter_policy", "dlq_depth", "handler", "in_flight", "lag", "names", "oldest_dead_letter_age_ms", "paused", "pending", "retry_depth", "retry_policy"]
    CONNECTED_STREAMS_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_POLICY_FIELD_NUMBER: _ClassVar[int]
    DLQ_DEPTH_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    OLDEST_DEAD_LETTER_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RETRY_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    connected_streams: int
    consumers: _containers.RepeatedCompositeFieldContainer[ConsumerInfo]
    counters: HandlerCounters
    dead_letter_policy: _common_pb2.DeadLetterPolicy
    dlq_depth: int
    handler: HandlerRef
    in_flight: int
    lag: int
    names: _common_pb2.RedisNames
    oldest_dead_letter_age_ms: int
    paused: bool
    pending: int
    retry_depth: int
    retry_policy: _common_pb2.RetryPolicy
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., names: _Optional[_Union[_common_pb2.RedisNames, _Mapping]] = ..., connected_streams: _Optional[int] = ..., consumers: _Optional[_Iterable[_Union[ConsumerInfo, _Mapping]]] = ..., pending: _Optional[int] = ..., lag: _Optional[int] = ..., retry_depth: _Optional[int] = ..., dlq_depth: _Optional[int] = ..., oldest_dead_letter_age_ms: _Optional[int] = ..., paused: bool = ..., retry_policy: _Optional[_Union[_common_pb2.RetryPolicy, _Mapping]] = ..., dead_letter_policy: _Optional[_Union[_common_pb2.DeadLetterPolicy, _Mapping]] = ..., in_flight: _Optional[int] = ..., counters: _Optional[_Union[HandlerCounters, _Mapping]] = ...) -> None: ...

class HandlerRef(_message.Message):
    __slots__ = ["channel", "handler_id"]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    handler_id: str
    def __init__(self, channel: _Optional[str] = ..., handler_id: _Optional[str] = ...) -> None: ...

class LegacyMigration(_message.Message):
    __slots__ = ["handler_id", "retry_entries", "target_stream"]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TARGET_STREAM_FIELD_NUMBER: _ClassVar[int]
    handler_id: str
    retry_entries: int
    target_stream: str
    def __init__(self, handler_id: _Optional[str] = ..., retry_entries: _Optional[int] = ..., target_stream: _Optional[str] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ["cursor", "filter", "handler", "order", "page_size", "preview_bytes"]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_BYTES_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    filter: DeadLetterFilter
    handler: HandlerRef
    order: Order
    page_size: int
    preview_bytes: int
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ..., order: _Optional[_Union[Order, str]] = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., preview_bytes: _Optional[int] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ["dead_letters", "next_cursor"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_cursor: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ListHandlersRequest(_message.Message):
    __slots__ = ["channel"]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: str
    def __init__(self, channel: _Optional[str] = ...) -> None: ...

class ListHandlersResponse(_message.Message):
    __slots__ = ["handlers"]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    handlers: _containers.RepeatedCompositeFieldContainer[HandlerInfo]
    def __init__(self, handlers: _Optional[_Iterable[_Union[HandlerInfo, _Mapping]]] = ...) -> None: ...

class MigrateLegacyKeysRequest(_message.Message):
    __slots__ = ["channel", "dry_run"]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    channel: str
    dry_run: bool
    def __init__(self, channel: _Optional[str] = ..., dry_run: bool = ...) -> None: ...

class MigrateLegacyKeysResponse(_message.Message):
    __slots__ = ["dry_run", "legacy_dlq_stream", "legacy_retry_stream", "migrations", "unattributed_dead_letters"]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    LEGACY_DLQ_STREAM_FIELD_NUMBER: _ClassVar[int]
    LEGACY_RETRY_STREAM_FIELD_NUMBER: _ClassVar[int]
    MIGRATIONS_FIELD_NUMBER: _ClassVar[int]
    UNATTRIBUTED_DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    legacy_dlq_stream: str
    legacy_retry_stream: str
    migrations: _containers.RepeatedCompositeFieldContainer[LegacyMigration]
    unattributed_dead_letters: int
    def __init__(self, migrations: _Optional[_Iterable[_Union[LegacyMigration, _Mapping]]] = ..., unattributed_dead_letters: _Optional[int] = ..., legacy_retry_stream: _Optional[str] = ..., legacy_dlq_stream: _Optional[str] = ..., dry_run: bool = ...) -> None: ...

class PauseHandlerRequest(_message.Message):
    __slots__ = ["handler"]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ["expected_count", "handler"]
    EXPECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    expected_count: int
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., expected_count: _Optional[int] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ["purged"]
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class RedriveDeadLettersRequest(_message.Message):
    __slots__ = ["all", "dry_run", "filter", "handler", "ids", "include_quarantined", "rate_per_second", "reset_attempts", "target"]
    ALL_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RESET_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    all: bool
    dry_run: bool
    filter: DeadLetterFilter
    handler: HandlerRef
    ids: EntryIds
    include_quarantined: bool
    rate_per_second: int
    reset_attempts: bool
    target: RedriveTarget
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., ids: _Optional[_Union[EntryIds, _Mapping]] = ..., all: bool = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., target: _Optional[_Union[RedriveTarget, _Mapping]] = ..., reset_attempts: bool = ..., dry_run: bool = ..., rate_per_second: _Optional[int] = ..., include_quarantined: bool = ...) -> None: ...

class RedriveDeadLettersResponse(_message.Message):
    __slots__ = ["ids_truncated", "job", "would_move", "would_move_count", "would_skip", "would_skip_count"]
    IDS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    WOULD_MOVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WOULD_MOVE_FIELD_NUMBER: _ClassVar[int]
    WOULD_SKIP_COUNT_FIELD_NUMBER: _ClassVar[int]
    WOULD_SKIP_FIELD_NUMBER: _ClassVar[int]
    ids_truncated: bool
    job: RedriveJob
    would_move: _containers.RepeatedScalarFieldContainer[str]
    would_move_count: int
    would_skip: _containers.RepeatedScalarFieldContainer[str]
    would_skip_count: int
    def __init__(self, job: _Optional[_Union[RedriveJob, _Mapping]] = ..., would_move: _Optional[_Iterable[str]] = ..., would_skip: _Optional[_Iterable[str]] = ..., would_move_count: _Optional[int] = ..., would_skip_count: _Optional[int] = ..., ids_truncated: bool = ...) -> None: ...

class RedriveJob(_message.Message):
    __slots__ = ["created_unix_ms", "error", "failed", "handler", "job_id", "moved", "rate_per_second", "skipped", "state", "target", "total", "updated_unix_ms"]
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    CANCELLED: RedriveJob.State
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED: RedriveJob.State
    FAILED_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    PENDING: RedriveJob.State
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RUNNING: RedriveJob.State
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_UNSPECIFIED: RedriveJob.State
    SUCCEEDED: RedriveJob.State
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    created_unix_ms: int
    error: str
    failed: int
    handler: HandlerRef
    job_id: str
    moved: int
    rate_per_second: int
    skipped: int
    state: RedriveJob.State
    target: RedriveTarget
    total: int
    updated_unix_ms: int
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[RedriveJob.State, str]] = ..., handler: _Optional[_Union[HandlerRef, _Mapping]] = ..., target: _Optional[_Union[RedriveTarget, _Mapping]] = ..., total: _Optional[int] = ..., moved: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., error: _Optional[str] = ..., rate_per_second: _Optional[int] = ...) -> None: ...

class RedriveTarget(_message.Message):
    __slots__ = ["channel", "kind"]
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_CHANNEL: RedriveTarget.Kind
    TARGET_HANDLER_RETRY: RedriveTarget.Kind
    TARGET_SOURCE_CHANNEL: RedriveTarget.Kind
    TARGET_UNSPECIFIED: RedriveTarget.Kind
    channel: str
    kind: RedriveTarget.Kind
    def __init__(self, kind: _Optional[_Union[RedriveTarget.Kind, str]] = ..., channel: _Optional[str] = ...) -> None: ...

class ResumeHandlerRequest(_message.Message):
    __slots__ = ["handler"]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    handler: HandlerRef
    def __init__(self, handler: _Optional[_Union[HandlerRef, _Mapping]] = ...) -> None: ...

class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
