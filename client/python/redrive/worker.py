"""The synchronous worker: handler functions run on threads.

Each handle() registration is one Subscribe stream with its own reader
thread and a pool of at most `max_in_flight` threads, so never more than
`max_in_flight` of its handlers run at once. A handler that returns
ACKs, one that raises NACKs with the exception's text (`Retry` sets a
delay, `Terminate` dead-letters). Verbs ready together go out in one
`verbs` message; a delivery still running past half its lease is extended.
When the stream ends with UNAVAILABLE (daemon restart, network), the
subscription reconnects with capped exponential backoff and jitter and
registers again; verbs of handlers that ran on the old stream are dropped
(the daemon retries those deliveries). On the daemon's `drain` or stop():
`stop` is sent, running handlers get the grace to finish, the stream is
closed.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

import grpc

from redrive import _protocol as proto
from redrive.connection import Connection, Tls, as_connection
from redrive.message import Message
from redrive.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger("redrive")

Handler = Callable[[Message], Any]


class _Pool:
    """At most `size` threads run jobs from one queue. Threads are woken (or
    started) one at a time: a thread that takes a job while more wait wakes
    the next one, unless a wake-up is already on its way. A burst of slow
    jobs thus fans out to `size` threads within `size` wake-ups, while a
    burst of quick jobs is mostly run by the threads already awake (a
    wake-up per job costs more than a no-op handler; ThreadPoolExecutor
    costs ~25 us a job). Thread-safe."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._jobs: "collections.deque[Tuple[Callable[..., None], Tuple[Any, ...]]]" = \
            collections.deque()
        self._threads = 0
        self._idle = 0    # waiting threads not yet notified
        self._waking = 0  # threads notified or started that have not taken a job yet
        self._closed = False

    def submit_many(self, fn: Callable[..., None], args: Iterable[Tuple[Any, ...]]) -> None:
        with self._lock:
            self._jobs.extend((fn, a) for a in args)
            spawn = self._kick()
        if spawn:
            self._spawn()

    def _kick(self) -> bool:
        """Wakes an idle thread, or says to start one, unless a wake-up is
        already on its way. Holds _lock."""
        if self._waking:
            return False
        if self._idle:
            self._idle -= 1
            self._waking += 1
            self._cond.notify()
            return False
        if self._threads < self._size:
            self._threads += 1
            self._waking += 1
            return True
        return False

    def _spawn(self) -> None:
        threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        woken = True  # started by _kick
        while True:
            with self._lock:
                if woken:
                    self._waking -= 1
                    woken = False
                while not self._jobs:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    self._cond.wait()
                    if self._closed and not self._jobs:
                        self._threads -= 1
                        return
                    self._waking -= 1  # notified by _kick
                fn, args = self._jobs.popleft()
                spawn = self._kick() if self._jobs else False
            if spawn:
                self._spawn()
            fn(*args)

    def shutdown(self) -> None:
        """Threads end once the jobs queued before this are done."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()


class _Stream:
    """One Subscribe call: the verbs waiting to be sent, the unsettled
    deliveries (for lease extension and the graceful stop) and whether the
    call is over. Thread-safe. Its request iterator runs on gRPC's thread
    and is the only sender."""

    def __init__(self, spec: proto.Spec) -> None:
        self._spec = spec
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the sender waits here
        self._idle = threading.Condition(self._lock)  # stop() waits here
        self._pending: List[broker_pb2.Verb] = []
        self._leases = proto.LeaseTracker(spec.lease_ms)
        self._send_stop = False
        self._closing = False  # half-close once the pending verbs are sent
        self._dead = False
        self.registered: Optional[broker_pb2.Registered] = None
        self.call: Any = None

    # ------------------------------------------------------------ sender side

    def requests(self) -> Any:
        yield self._spec.request
        while True:
            with self._lock:
                while True:
                    if self._dead:
                        return
                    now = proto.monotonic()
                    extends = self._leases.take_due(now)
                    if self._pending or extends or self._send_stop:
                        break
                    if self._closing:
                        return
                    due = self._leases.next_due()
                    self._wake.wait(None if due == float("inf") else max(due - now, 0.001))
                verbs, self._pending = self._pending, []
                stop, self._send_stop = self._send_stop, False
            if stop:
                yield proto.STOP_REQUEST
            if extends:
                verbs.extend(extends)
            if verbs:
                yield from proto.verb_messages(verbs)

    # ------------------------------------------------------------ reader side

    def on_registered(self, registered: broker_pb2.Registered) -> None:
        with self._lock:
            self.registered = registered
            self._leases.half_s = max(registered.lease_ms, 2) / 2000.0

    def accept(self, deliveries: Any) -> bool:
        with self._lock:
            if self._dead:
                return False
            if len(self._leases) == 0:
                self._wake.notify()  # the sender sleeps without a deadline
            now = proto.monotonic()
            for d in deliveries:
                self._leases.add(d.delivery_id, now)
            return True

    def end(self) -> None:
        with self._lock:
            self._dead = True
            self._wake.notify_all()
            self._idle.notify_all()

    # ----------------------------------------------------------- handler side

    def settle(self, delivery_id: int, verb: broker_pb2.Verb) -> None:
        with self._lock:
            if self._dead:
                log.warning("redrive %s: dropped the verb for delivery %d: its stream ended "
                            "(the daemon retries it)", self._spec.name, delivery_id)
                return
            self._leases.settle(delivery_id)
            if not self._pending:
                self._wake.notify()
            self._pending.append(verb)
            if len(self._leases) == 0:
                self._idle.notify_all()

    # -------------------------------------------------------------- stopping

    def finish(self, grace_s: float) -> None:
        """Graceful end: send `stop`, wait for running handlers (at most
        grace_s), send their verbs, half-close; cancel the call if it does
        not end soon after."""
        deadline = proto.monotonic() + grace_s
        with self._lock:
            if self._dead:
                return
            self._send_stop = True
            self._wake.notify()
            while len(self._leases) and not self._dead:
                left = deadline - proto.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            running = len(self._leases)
            self._closing = True
            self._wake.notify()
        if running:
            log.warning("redrive %s: grace of %.1fs over with %d handlers running; closing the "
                        "stream (their verbs are dropped)", self._spec.name, grace_s, running)
            self.cancel()
            return
        with self._lock:  # the daemon ends the call once we half-closed
            end = proto.monotonic() + 5.0
            while not self._dead and proto.monotonic() < end:
                self._idle.wait(end - proto.monotonic())
            dead = self._dead
        if not dead:
            self.cancel()

    def cancel(self) -> None:
        call = self.call
        if call is not None:
            call.cancel()


class _Subscription(proto.SubscriptionBook):
    """One handle() registration: its reader thread and reconnect loop."""

    def __init__(self, worker: "Worker", spec: proto.Spec) -> None:
        super().__init__(spec, worker._reconnect_initial_ms, worker._reconnect_max_ms)
        self._worker = worker
        self._pool = _Pool(spec.max_in_flight, "redrive-" + spec.handler_id)
        self._lock = threading.Lock()
        self._stream: Optional[_Stream] = None
        self.stopping = threading.Event()
        self.registered = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="redrive-" + spec.name,
                                       daemon=True)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            stream = _Stream(self.spec)
            with self._lock:
                self._stream = stream
            if self.stopping.is_set():
                break
            # A channel per attempt: a fresh one connects at once, where a
            # channel that saw the daemon die keeps failing fast with the old
            # error until its own backoff (seconds) expires.
            channel = self._worker._conn.channel(self._worker._channel_options)
            code, details = self._serve(broker_pb2_grpc.BrokerStub(channel), stream)
            stream.end()
            channel.close()
            if self.stopping.is_set():
                break
            delay = self.after_stream(code, details, stream.registered is not None)
            if delay is None:
                self._worker._wake.set()
                self.registered.set()  # wait_registered() reports the error
                break
            self.stopping.wait(delay)
        self._pool.shutdown()

    def _serve(self, stub: broker_pb2_grpc.BrokerStub,
               stream: _Stream) -> "tuple[grpc.StatusCode, str]":
        call = stub.Subscribe(stream.requests(), metadata=self._worker._metadata)
        stream.call = call
        if self.stopping.is_set():
            call.cancel()
        try:
            for resp in call:
                kind = resp.WhichOneof("kind")
                if kind == "deliveries":
                    batch = resp.deliveries.deliveries
                    if stream.accept(batch):
                        self._pool.submit_many(self._run, [(stream, d) for d in batch])
                elif kind == "registered":
                    stream.on_registered(resp.registered)
                    self.note_registered(resp.registered)
                    self.registered.set()
                elif kind == "notices":
                    self.note_notices(resp.notices)
                elif kind == "drain":
                    threading.Thread(target=stream.finish, args=(self.note_drain(resp.drain),),
                                     daemon=True).start()
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as err:
            return err.code(), err.details() or ""

    def _run(self, stream: _Stream, delivery: broker_pb2.Delivery) -> None:
        error: Optional[BaseException] = None
        try:
            self.spec.fn(Message(delivery))
        except Exception as exc:  # the handler's failure is the NACK's reason
            error = exc
        stream.settle(delivery.delivery_id, proto.outcome_verb(delivery.delivery_id, error))

    def finish(self, grace_s: float) -> None:
        self.stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.finish(grace_s)


class Worker(proto.HandlerRegistry):
    """Runs handler functions for redrived deliveries, on threads.

        worker = Worker("unix:/run/redrive/redrive.sock")

        @worker.handle("orders", "billing", max_in_flight=8)
        def bill(msg: Message) -> None: ...

        worker.run()  # until SIGTERM/SIGINT or stop()

    Thread-safe. stop(grace) may be called from any thread.
    """

    def __init__(self, target: Union[str, Connection], *, token: Optional[str] = None,
                 tls: Optional[Tls] = None, reconnect_initial_ms: int = 100,
                 reconnect_max_ms: int = 5_000) -> None:
        self._conn = as_connection(target, token, tls)
        self._reconnect_initial_ms = reconnect_initial_ms
        self._reconnect_max_ms = reconnect_max_ms
        self._channel_options = proto.channel_options(reconnect_initial_ms, reconnect_max_ms)
        self._metadata = self._conn.metadata()
        self._subs: List[_Subscription] = []
        self._started = False
        self._stopped = False
        self._wake = threading.Event()  # a signal, stop() or a fatal stream end

    def _add_subscription(self, spec: proto.Spec) -> None:
        self._subs.append(_Subscription(self, spec))

    def start(self) -> None:
        """Connects every handler in the background and returns."""
        if self._started:
            raise RuntimeError("Worker.start() twice")
        if not self._subs:
            raise RuntimeError("Worker.start(): no handler; call handle() first")
        self._started = True
        for s in self._subs:
            s.thread.start()

    def wait_registered(self, timeout: Optional[float] = None) -> bool:
        """True once every handler has registered at least once, False on
        timeout; raises RedriveError when a registration was refused."""
        deadline = None if timeout is None else proto.monotonic() + timeout
        for s in self._subs:
            left = None if deadline is None else max(deadline - proto.monotonic(), 0)
            if not s.registered.wait(left):
                return False
            if s.error is not None:
                raise s.error
        return True

    def run(self, grace: float = 30.0, handle_signals: bool = True) -> None:
        """start(), then block until stop(), SIGTERM or SIGINT (with
        handle_signals, from the main thread), then stop(grace). Raises
        RedriveError when a handler's registration is refused."""
        previous = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self._wake.set())
        try:
            if not self._started:
                self.start()
            while not self._wake.wait(1.0):
                pass
            self.stop(grace)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        errors = [s.error for s in self._subs if s.error is not None]
        if errors:
            raise errors[0]

    def stop(self, grace: float = 30.0) -> None:
        """Sends `stop` on every stream, lets running handlers finish within
        `grace` seconds, closes the streams and the channel."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        finishing = [threading.Thread(target=s.finish, args=(grace,), daemon=True)
                     for s in self._subs]
        for t in finishing:
            t.start()
        for t in finishing:
            t.join()
        for s in self._subs:
            if s.thread.is_alive():
                s.thread.join(10.0)

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.stop()
