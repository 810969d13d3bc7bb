"""What a handler receives: one delivery of one message."""

from __future__ import annotations

from typing import List, Optional, Tuple

from redrive.v1 import broker_pb2


class Message:
    """One delivery of a message, read-only. Fields are read from the
    delivery on access (cheap to create for handlers that look at little)."""

    __slots__ = ("_d",)

    def __init__(self, delivery: broker_pb2.Delivery) -> None:
        self._d = delivery

    @property
    def payload(self) -> bytes:
        return self._d.payload

    @property
    def headers(self) -> List[Tuple[str, str]]:
        """Application headers, in order (a key may repeat)."""
        return [(h.key, h.value) for h in self._d.headers]

    def header(self, key: str) -> Optional[str]:
        """The first header named `key`, or None."""
        for h in self._d.headers:
            if h.key == key:
                return h.value
        return None

    @property
    def content_type(self) -> str:
        return self._d.content_type

    @property
    def correlation_id(self) -> str:
        return self._d.correlation_id

    @property
    def traceparent(self) -> str:
        return self._d.trace.traceparent

    @property
    def tracestate(self) -> str:
        return self._d.trace.tracestate

    @property
    def trace(self) -> Tuple[str, str]:
        """(traceparent, tracestate); empty strings when the message has none."""
        return (self._d.trace.traceparent, self._d.trace.tracestate)

    @property
    def attempt(self) -> int:
        """1 for the first attempt."""
        return self._d.attempt

    @property
    def max_attempts(self) -> int:
        """0 = unlimited."""
        return self._d.max_attempts

    @property
    def original_entry_id(self) -> str:
        """The main-stream entry id the message first had."""
        return self._d.original_entry_id

    @property
    def entry_id(self) -> str:
        """The id of the entry delivered (a retry-stream id for retries)."""
        return self._d.entry_id

    @property
    def previous_error(self) -> str:
        """The previous attempt's error text ("" on the first attempt)."""
        return self._d.previous_error

    @property
    def previous_error_code(self) -> str:
        return self._d.previous_error_code

    @property
    def channel(self) -> str:
        return self._d.channel

    @property
    def stream(self) -> str:
        return self._d.stream

    @property
    def delivery_id(self) -> int:
        return self._d.delivery_id

    @property
    def lease_deadline_unix_ms(self) -> int:
        return self._d.lease_deadline_unix_ms

    @property
    def delivery(self) -> broker_pb2.Delivery:
        """The raw protocol message."""
        return self._d

    def __repr__(self) -> str:
        return "Message(entry_id=%r, attempt=%d, payload=%r)" % (
            self._d.entry_id, self._d.attempt, self._d.payload[:64])
