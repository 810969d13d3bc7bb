"""The Subscribe protocol's client-side rules, shared by Worker and
AsyncWorker (no I/O here): a handler's outcome as a verb, the lease
extension schedule, verb batching, reconnect backoff and which stream
endings are worth a reconnect."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import grpc

from redrive.errors import RedriveError, Retry, Terminate
from redrive.policy import DeadLetterPolicy, RetryPolicy, Start, register_request
from redrive.v1 import broker_pb2, common_pb2

log = logging.getLogger("redrive")

MAX_VERBS_PER_MESSAGE = 10_000
MAX_REASON_BYTES = 4096
MAX_ERROR_CODE_BYTES = 128

# Stream endings that mean "the daemon or the network went away" (reconnect)
# rather than "this registration is wrong" (stop and report).
RECONNECT_CODES = frozenset({
    grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
})


def _clip(text: str, limit: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


ACK = broker_pb2.Ack()


def outcome_verb(delivery_id: int, error: Optional[BaseException]) -> broker_pb2.Verb:
    """The verb answering a handler that returned (error None) or raised."""
    if error is None:
        return broker_pb2.Verb(delivery_id=delivery_id, ack=ACK)
    if isinstance(error, Terminate):
        return broker_pb2.Verb(delivery_id=delivery_id, terminate=broker_pb2.Terminate(
            reason=_clip(error.reason, MAX_REASON_BYTES),
            error_code=_clip(error.error_code, MAX_ERROR_CODE_BYTES)))
    if isinstance(error, Retry):
        nack = broker_pb2.Nack(reason=_clip(error.reason, MAX_REASON_BYTES),
                               error_code=_clip(error.error_code, MAX_ERROR_CODE_BYTES))
        if error.delay_ms is not None:
            nack.delay_ms = max(0, min(int(error.delay_ms), 86_400_000))
        return broker_pb2.Verb(delivery_id=delivery_id, nack=nack)
    reason = str(error) or type(error).__name__
    return broker_pb2.Verb(delivery_id=delivery_id, nack=broker_pb2.Nack(
        reason=_clip(reason, MAX_REASON_BYTES),
        error_code=_clip(type(error).__name__, MAX_ERROR_CODE_BYTES)))


def verb_messages(verbs: List[broker_pb2.Verb]) -> Iterator[broker_pb2.SubscribeRequest]:
    """Verbs as few SubscribeRequest{verbs} messages as the limit allows."""
    for i in range(0, len(verbs), MAX_VERBS_PER_MESSAGE):
        yield broker_pb2.SubscribeRequest(
            verbs=broker_pb2.Verbs(verbs=verbs[i:i + MAX_VERBS_PER_MESSAGE]))


STOP_REQUEST = broker_pb2.SubscribeRequest(stop=broker_pb2.Stop())


class LeaseTracker:
    """The unsettled deliveries of one stream and when each needs an EXTEND:
    at half the lease after it arrived, then every half lease until it is
    settled. Not thread-safe: the owner holds its lock."""

    def __init__(self, lease_ms: int) -> None:
        self.half_s = max(lease_ms, 2) / 2000.0
        self._due: Dict[int, float] = {}
        self._next = float("inf")  # a lower bound of min(_due.values())

    def __len__(self) -> int:
        return len(self._due)

    def add(self, delivery_id: int, now: float) -> None:
        due = now + self.half_s
        self._due[delivery_id] = due
        if due < self._next:
            self._next = due

    def settle(self, delivery_id: int) -> bool:
        """False when the id was not unsettled here."""
        return self._due.pop(delivery_id, None) is not None

    def next_due(self) -> float:
        return self._next if self._due else float("inf")

    def take_due(self, now: float) -> List[broker_pb2.Verb]:
        """EXTEND verbs for every delivery due by `now`, rescheduled."""
        if now < self._next:
            return []
        verbs = []
        nxt = float("inf")
        for did, due in self._due.items():
            if due <= now:
                due = now + self.half_s
                self._due[did] = due
                verbs.append(broker_pb2.Verb(delivery_id=did, extend=broker_pb2.Extend()))
            if due < nxt:
                nxt = due
        self._next = nxt
        return verbs


class Backoff:
    """Capped exponential backoff with jitter: the n-th wait is uniform in
    [d/2, d] with d = min(initial * 2**n, maximum)."""

    def __init__(self, initial_ms: int, max_ms: int) -> None:
        self.initial_s = initial_ms / 1000.0
        self.max_s = max_ms / 1000.0
        self._n = 0

    def reset(self) -> None:
        self._n = 0

    def next(self) -> float:
        d = min(self.initial_s * (2 ** min(self._n, 30)), self.max_s)
        self._n += 1
        return d / 2 + random.random() * d / 2


def monotonic() -> float:
    return time.monotonic()


def channel_options(reconnect_initial_ms: int, reconnect_max_ms: int) -> List[Tuple[str, int]]:
    """gRPC's own connection backoff (1 s growing to 120 s by default) held
    to the worker's, so a restarted daemon is found as soon as the worker
    retries."""
    return [("grpc.initial_reconnect_backoff_ms", reconnect_initial_ms),
            ("grpc.max_reconnect_backoff_ms", reconnect_max_ms)]


@dataclass
class Spec:
    """One handle() registration: what to register and what to run."""

    channel: str
    handler_id: str
    fn: Callable[..., Any]
    request: broker_pb2.SubscribeRequest
    max_in_flight: int
    lease_ms: int

    @property
    def name(self) -> str:
        return "%s/%s" % (self.channel, self.handler_id)


def make_spec(channel: str, handler_id: str, fn: Callable[..., Any],
              policy: Union[RetryPolicy, common_pb2.RetryPolicy, None],
              dead_letter: Union[DeadLetterPolicy, common_pb2.DeadLetterPolicy, None],
              max_in_flight: int, lease_ms: int, start: Start, consumer_label: str) -> Spec:
    if not 1 <= max_in_flight <= 10_000:
        raise ValueError("max_in_flight %d is outside 1..10000" % max_in_flight)
    if not 1_000 <= lease_ms <= 86_400_000:
        raise ValueError("lease_ms %d is outside 1000..86400000" % lease_ms)
    req = register_request(channel, handler_id, policy, dead_letter, max_in_flight, lease_ms,
                           start, consumer_label)
    return Spec(channel, handler_id, fn, req, max_in_flight, lease_ms)


class SubscriptionBook:
    """What Worker and AsyncWorker keep and log alike about one handle()
    registration across its streams: registrations, notices, drains, and
    what to do when a stream ends (reconnect after a backoff, or stop with
    the error). Used from the subscription's own thread or loop only."""

    def __init__(self, spec: Spec, reconnect_initial_ms: int, reconnect_max_ms: int) -> None:
        self.spec = spec
        self.error: Optional[RedriveError] = None
        self.connects = 0
        self.last_registered: Optional[broker_pb2.Registered] = None
        self._backoff = Backoff(reconnect_initial_ms, reconnect_max_ms)

    def note_registered(self, registered: broker_pb2.Registered) -> None:
        self.connects += 1
        self.last_registered = registered
        log.info("redrive %s: registered (max_in_flight %d, lease %d ms)", self.spec.name,
                 registered.max_in_flight, registered.lease_ms)

    def note_notices(self, notices: broker_pb2.Notices) -> None:
        for n in notices.notices:
            log.debug("redrive %s: notice for delivery %d: %s", self.spec.name, n.delivery_id,
                      n.message)

    def note_drain(self, drain: broker_pb2.Drain) -> float:
        """Returns the grace in seconds."""
        log.info("redrive %s: the daemon drains (%s, grace %d ms): finishing running handlers",
                 self.spec.name, drain.reason, drain.grace_ms)
        return drain.grace_ms / 1000.0

    def after_stream(self, code: grpc.StatusCode, details: str,
                     was_registered: bool) -> Optional[float]:
        """Seconds to wait before reconnecting, or None (and `error` set)
        when the ending says the registration itself is refused."""
        if code not in RECONNECT_CODES:
            self.error = RedriveError(code, details)
            log.error("redrive %s: the stream ended with %s: %s; not reconnecting",
                      self.spec.name, code.name, details)
            return None
        if was_registered:
            self._backoff.reset()
        delay = self._backoff.next()
        log.warning("redrive %s: the stream ended (%s: %s); reconnecting in %.2fs",
                    self.spec.name, code.name, details, delay)
        return delay


class HandlerRegistry:
    """handle() of Worker and AsyncWorker: one Spec per registration,
    given to the subclass's _add_subscription()."""

    _started = False
    _subs: "List[Any]"  # the subclass's subscriptions (SubscriptionBook)

    def _add_subscription(self, spec: Spec) -> None:
        raise NotImplementedError

    def stats(self) -> Dict[str, int]:
        """Per handler ("channel/handler_id"): how many times it registered
        (1 + the reconnects that succeeded)."""
        return {s.spec.name: s.connects for s in self._subs}

    def registrations(self) -> Dict[str, broker_pb2.Registered]:
        """Per handler: the daemon's last `registered` answer (effective
        settings and the Redis names: stream, group, retry and DLQ streams)."""
        return {s.spec.name: s.last_registered for s in self._subs
                if s.last_registered is not None}

    def handle(self, channel: str, handler_id: str, fn: Optional[Callable[..., Any]] = None, *,
               policy: Union[RetryPolicy, common_pb2.RetryPolicy, None] = None,
               dead_letter: Union[DeadLetterPolicy, common_pb2.DeadLetterPolicy, None] = None,
               max_in_flight: int = 64, lease_ms: int = 30_000, start: Start = None,
               consumer_label: str = "") -> Any:
        """Registers `fn` for (channel, handler_id) (a plain function for
        Worker, a coroutine function for AsyncWorker); without fn, returns a
        decorator. `policy`: the retry policy (None: the daemon's default,
        5 retries); `start`: "new" (default), "backlog" or an entry id, for
        a group that does not exist yet. Before start() only."""
        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            if self._started:
                raise RuntimeError("%s.handle() after start()" % type(self).__name__)
            self._add_subscription(make_spec(channel, handler_id, f, policy, dead_letter,
                                             max_in_flight, lease_ms, start, consumer_label))
            return f
        if fn is None:
            return add
        add(fn)
        return None
