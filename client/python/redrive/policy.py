"""Registration settings: the retry and dead-letter policies and where a new
consumer group starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from redrive.v1 import broker_pb2, common_pb2


@dataclass(frozen=True)
class RetryPolicy:
    """A handler's retry policy (None fields: the daemon's defaults).
    `max_retries` retries after the first attempt, then the DLQ."""

    max_retries: Optional[int] = None
    unlimited: bool = False
    initial_backoff_ms: Optional[int] = None
    multiplier: Optional[float] = None
    max_backoff_ms: Optional[int] = None
    jitter: Optional[float] = None

    def to_proto(self) -> common_pb2.RetryPolicy:
        p = common_pb2.RetryPolicy(unlimited=self.unlimited)
        if self.max_retries is not None:
            p.max_retries = self.max_retries
        if self.initial_backoff_ms is not None:
            p.initial_backoff_ms = self.initial_backoff_ms
        if self.multiplier is not None:
            p.multiplier = self.multiplier
        if self.max_backoff_ms is not None:
            p.max_backoff_ms = self.max_backoff_ms
        if self.jitter is not None:
            p.jitter = self.jitter
        return p


@dataclass(frozen=True)
class DeadLetterPolicy:
    """max_len 0 = the daemon's default; overflow "evict_oldest" or "hold"."""

    max_len: int = 0
    overflow: str = ""

    def to_proto(self) -> common_pb2.DeadLetterPolicy:
        kinds = {"": common_pb2.DeadLetterPolicy.OVERFLOW_UNSPECIFIED,
                 "evict_oldest": common_pb2.DeadLetterPolicy.OVERFLOW_EVICT_OLDEST,
                 "hold": common_pb2.DeadLetterPolicy.OVERFLOW_HOLD}
        if self.overflow not in kinds:
            raise ValueError("DeadLetterPolicy.overflow: %r is not one of %s"
                             % (self.overflow, sorted(kinds)))
        return common_pb2.DeadLetterPolicy(max_len=self.max_len, overflow=kinds[self.overflow])


#: `start=` of handle(): "new" (entries added after the group is created, the
#: default), "backlog" (every entry from the first) or an entry id ("<ms>-<seq>").
Start = Optional[str]


def start_proto(start: Start) -> Optional[broker_pb2.StartPosition]:
    if start is None or start == "new":
        return None
    if start == "backlog":
        return broker_pb2.StartPosition(kind=broker_pb2.StartPosition.START_BACKLOG)
    return broker_pb2.StartPosition(kind=broker_pb2.StartPosition.START_AT_ID, entry_id=start)


def register_request(channel: str, handler_id: str,
                     policy: Union[RetryPolicy, common_pb2.RetryPolicy, None],
                     dead_letter: Union[DeadLetterPolicy, common_pb2.DeadLetterPolicy, None],
                     max_in_flight: int, lease_ms: int, start: Start,
                     consumer_label: str) -> broker_pb2.SubscribeRequest:
    reg = broker_pb2.Register(channel=channel, handler_id=handler_id,
                              max_in_flight=max_in_flight, lease_ms=lease_ms,
                              consumer_label=consumer_label)
    if policy is not None:
        reg.retry_policy.CopyFrom(policy.to_proto() if isinstance(policy, RetryPolicy) else policy)
    if dead_letter is not None:
        reg.dead_letter_policy.CopyFrom(dead_letter.to_proto()
                                        if isinstance(dead_letter, DeadLetterPolicy)
                                        else dead_letter)
    sp = start_proto(start)
    if sp is not None:
        reg.start.CopyFrom(sp)
    return broker_pb2.SubscribeRequest(register=reg)
