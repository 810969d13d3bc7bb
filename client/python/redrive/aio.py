"""The asyncio worker (grpc.aio): coroutine handlers on one event loop.

The same semantics as redrive.Worker: each handle() registration is one
Subscribe stream; at most `max_in_flight` of its handlers run at once; returning ACKs, raising NACKs (`Retry`: with a delay,
`Terminate`: dead-letter); verbs ready together go in one message; EXTEND
past half the lease; reconnect with backoff and jitter, dropping the verbs
of handlers from a dead stream; graceful stop on `drain` or stop(grace).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import signal
import types
from typing import Any, Awaitable, Callable, Generator, List, Optional, Tuple, Union

import grpc
import grpc.aio

from redrive import _protocol as proto
from redrive.connection import Connection, Tls, as_connection
from redrive.message import Message
from redrive.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger("redrive")

AsyncHandler = Callable[[Message], Awaitable[Any]]


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Awaits the rest of a coroutine whose first step already ran and
    yielded `yielded` (what it waits on), passing values and exceptions
    (cancellation) through, as the Task running it would have."""
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # thrown into the awaiting Task: pass it on
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


class _AsyncStream:
    """One Subscribe call on the event loop: pending verbs, unsettled
    deliveries, and the writer task that sends them. Loop-confined."""

    def __init__(self, spec: proto.Spec, call: Any) -> None:
        self._spec = spec
        self.call = call
        self._pending: List[broker_pb2.Verb] = []
        self._leases = proto.LeaseTracker(spec.lease_ms)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._send_stop = False
        self._closing = False
        self.dead = False
        self.ended = asyncio.Event()
        self.registered: Optional[broker_pb2.Registered] = None

    async def writer(self) -> None:
        """Sends the registration, then verbs as they become ready."""
        try:
            await self.call.write(self._spec.request)
            while not self.dead:
                self._wake.clear()
                now = proto.monotonic()
                extends = self._leases.take_due(now)
                if self._pending or extends or self._send_stop:
                    verbs, self._pending = self._pending, []
                    if self._send_stop:
                        self._send_stop = False
                        await self.call.write(proto.STOP_REQUEST)
                    verbs.extend(extends)
                    for m in proto.verb_messages(verbs):
                        await self.call.write(m)
                    continue
                if self._closing:
                    await self.call.done_writing()
                    return
                due = self._leases.next_due()
                if due == float("inf"):
                    await self._wake.wait()
                else:
                    try:
                        await asyncio.wait_for(self._wake.wait(), max(due - now, 0.001))
                    except asyncio.TimeoutError:
                        pass
        except Exception as err:  # the call ended under us: the reader reports it
            log.debug("redrive %s: writer ended: %s", self._spec.name, err)

    def on_registered(self, registered: broker_pb2.Registered) -> None:
        self.registered = registered
        self._leases.half_s = max(registered.lease_ms, 2) / 2000.0

    def accept(self, deliveries: Any) -> None:
        if len(self._leases) == 0:
            self._wake.set()
        now = proto.monotonic()
        for d in deliveries:
            self._leases.add(d.delivery_id, now)
        self._idle.clear()

    def settle(self, delivery_id: int, verb: broker_pb2.Verb) -> None:
        if self.dead:
            log.warning("redrive %s: dropped the verb for delivery %d: its stream ended "
                        "(the daemon retries it)", self._spec.name, delivery_id)
            return
        self._leases.settle(delivery_id)
        self._pending.append(verb)
        self._wake.set()
        if len(self._leases) == 0:
            self._idle.set()

    def end(self) -> None:
        self.dead = True
        self._wake.set()
        self._idle.set()
        self.ended.set()

    async def finish(self, grace_s: float) -> None:
        """Send `stop`, wait for running handlers (at most grace_s), send
        their verbs, half-close; cancel if the call does not end soon."""
        if self.dead:
            return
        self._send_stop = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except asyncio.TimeoutError:
            pass
        running = 0 if self.dead else len(self._leases)
        self._closing = True
        self._wake.set()
        if running:
            log.warning("redrive %s: grace of %.1fs over with %d handlers running; closing the "
                        "stream (their verbs are dropped)", self._spec.name, grace_s, running)
            self.call.cancel()
            return
        try:
            await asyncio.wait_for(self.ended.wait(), 5.0)
        except asyncio.TimeoutError:
            self.call.cancel()


class _AsyncSubscription(proto.SubscriptionBook):
    def __init__(self, worker: "AsyncWorker", spec: proto.Spec) -> None:
        super().__init__(spec, worker._reconnect_initial_ms, worker._reconnect_max_ms)
        self._worker = worker
        self._waiting: "collections.deque[Tuple[_AsyncStream, broker_pb2.Delivery]]" = \
            collections.deque()
        self._running = 0
        self._starting = False
        self._stream: Optional[_AsyncStream] = None
        self._tasks: "set[asyncio.Task[Any]]" = set()
        self.stopping: Optional[asyncio.Event] = None
        self.registered: Optional[asyncio.Event] = None

    async def loop(self) -> None:
        assert self.stopping is not None and self.registered is not None
        while not self.stopping.is_set():
            # A channel per attempt (see redrive.worker).
            channel = self._worker._conn.aio_channel(self._worker._channel_options)
            call = broker_pb2_grpc.BrokerStub(channel).Subscribe(metadata=self._worker._metadata)
            stream = _AsyncStream(self.spec, call)
            self._stream = stream
            writer = asyncio.ensure_future(stream.writer())
            try:
                code, details = await self._serve(stream)
            finally:
                stream.end()
                writer.cancel()
                await channel.close()
            if self.stopping.is_set():
                break
            delay = self.after_stream(code, details, stream.registered is not None)
            if delay is None:
                self._worker._on_stop_needed()
                self.registered.set()  # wait_registered() reports the error
                break
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _serve(self, stream: _AsyncStream) -> "tuple[grpc.StatusCode, str]":
        call = stream.call
        try:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    break
                kind = resp.WhichOneof("kind")
                if kind == "deliveries":
                    batch = resp.deliveries.deliveries
                    stream.accept(batch)
                    for d in batch:
                        self._dispatch(stream, d)
                elif kind == "registered":
                    stream.on_registered(resp.registered)
                    self.note_registered(resp.registered)
                    assert self.registered is not None
                    self.registered.set()
                elif kind == "notices":
                    self.note_notices(resp.notices)
                elif kind == "drain":
                    task = asyncio.ensure_future(stream.finish(self.note_drain(resp.drain)))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            code = await call.code()
            return code, (await call.details()) or ""
        except grpc.RpcError as err:
            return err.code(), err.details() or ""
        except asyncio.CancelledError:
            call.cancel()
            raise

    # Handlers start eagerly: the coroutine's first step runs right here,
    # and a handler that finishes without suspending (the common short one)
    # costs no Task; one that suspends continues in a Task. At most
    # max_in_flight run at once (a counter and a queue: after a reconnect the
    # handlers of the old stream still count).

    def _dispatch(self, stream: _AsyncStream, delivery: broker_pb2.Delivery) -> None:
        self._waiting.append((stream, delivery))
        self._start_waiting()

    def _start_waiting(self) -> None:
        if self._starting:
            return  # an outer call's loop picks the rest up
        self._starting = True
        try:
            while self._waiting and self._running < self.spec.max_in_flight:
                stream, delivery = self._waiting.popleft()
                if stream.dead:
                    continue  # never started; the daemon redelivers it
                self._running += 1
                self._start(stream, delivery)
        finally:
            self._starting = False

    def _start(self, stream: _AsyncStream, delivery: broker_pb2.Delivery) -> None:
        try:
            result = self.spec.fn(Message(delivery))
            if not inspect.isawaitable(result):
                self._done(stream, delivery, None)
                return
            if inspect.iscoroutine(result):
                try:
                    yielded = result.send(None)
                except StopIteration:
                    self._done(stream, delivery, None)
                    return
                awaitable: Any = _resume(result, yielded)
            else:
                awaitable = result
        except Exception as exc:  # the handler's failure is the NACK's reason
            self._done(stream, delivery, exc)
            return
        task = asyncio.ensure_future(self._finish(awaitable, stream, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, awaitable: Any, stream: _AsyncStream,
                      delivery: broker_pb2.Delivery) -> None:
        error: Optional[BaseException] = None
        try:
            await awaitable
        except asyncio.CancelledError:
            self._running -= 1
            raise
        except Exception as exc:  # the handler's failure is the NACK's reason
            error = exc
        self._done(stream, delivery, error)

    def _done(self, stream: _AsyncStream, delivery: broker_pb2.Delivery,
              error: Optional[BaseException]) -> None:
        stream.settle(delivery.delivery_id, proto.outcome_verb(delivery.delivery_id, error))
        self._running -= 1
        if self._waiting:
            self._start_waiting()

    async def finish(self, grace_s: float) -> None:
        assert self.stopping is not None
        self.stopping.set()
        if self._stream is not None:
            await self._stream.finish(grace_s)


class AsyncWorker(proto.HandlerRegistry):
    """Runs coroutine handlers for redrived deliveries on an asyncio loop.

        worker = AsyncWorker("unix:/run/redrive/redrive.sock")

        @worker.handle("orders", "billing", max_in_flight=8)
        async def bill(msg: Message) -> None: ...

        await worker.run()  # until stop() (or SIGTERM/SIGINT)

    Loop-confined: create, run and stop it on one event loop.
    """

    def __init__(self, target: Union[str, Connection], *, token: Optional[str] = None,
                 tls: Optional[Tls] = None, reconnect_initial_ms: int = 100,
                 reconnect_max_ms: int = 5_000) -> None:
        self._conn = as_connection(target, token, tls)
        self._reconnect_initial_ms = reconnect_initial_ms
        self._reconnect_max_ms = reconnect_max_ms
        self._channel_options = proto.channel_options(reconnect_initial_ms, reconnect_max_ms)
        self._metadata = self._conn.metadata()
        self._subs: List[_AsyncSubscription] = []
        self._loops: List["asyncio.Task[None]"] = []
        self._started = False
        self._stopped = False
        self._signalled = False
        self._wake: Optional[asyncio.Event] = None

    def _add_subscription(self, spec: proto.Spec) -> None:
        self._subs.append(_AsyncSubscription(self, spec))

    async def start(self) -> None:
        """Connects every handler in the background and returns."""
        if self._started:
            raise RuntimeError("AsyncWorker.start() twice")
        if not self._subs:
            raise RuntimeError("AsyncWorker.start(): no handler; call handle() first")
        self._started = True
        self._wake = asyncio.Event()  # on the running loop (Python 3.9 binds one)
        if self._signalled:
            self._wake.set()
        for s in self._subs:
            s.stopping = asyncio.Event()
            s.registered = asyncio.Event()
            self._loops.append(asyncio.ensure_future(s.loop()))

    async def wait_registered(self, timeout: Optional[float] = None) -> bool:
        """True once every handler has registered at least once, False on
        timeout; raises RedriveError when a registration was refused."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.registered.wait() for s in self._subs
                                 if s.registered is not None)), timeout)
        except asyncio.TimeoutError:
            return False
        for s in self._subs:
            if s.error is not None:
                raise s.error
        return True

    def add_signal_handlers(self, grace: float = 30.0) -> None:
        """SIGTERM and SIGINT start stop(grace) (unix event loops)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        self._signal_grace = grace

    def _on_signal(self) -> None:
        self._signalled = True
        self._on_stop_needed()

    def _on_stop_needed(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self, grace: float = 30.0) -> None:
        """start(), then wait until stop() is called, a signal installed by
        add_signal_handlers() arrives (then stop(grace)) or a registration
        is refused (raises RedriveError)."""
        if not self._started:
            await self.start()
        assert self._wake is not None
        await self._wake.wait()
        await self.stop(getattr(self, "_signal_grace", grace))
        errors = [s.error for s in self._subs if s.error is not None]
        if errors:
            raise errors[0]

    async def stop(self, grace: float = 30.0) -> None:
        """Sends `stop` on every stream, lets running handlers finish within
        `grace` seconds, closes the streams and the channel."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        self._on_stop_needed()
        await asyncio.gather(*(s.finish(grace) for s in self._subs))
        done, pending = await asyncio.wait(self._loops, timeout=10.0)
        for t in pending:
            t.cancel()

    async def __aenter__(self) -> "AsyncWorker":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
