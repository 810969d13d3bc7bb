"""Subscribe end to end from Python (Debian python3-grpcio, generated stubs):
registration, deliveries, ACK, fan-out across handler ids, disconnect
redelivery, registration errors and notices (R-B1..R-B7, R-C1, R-I3)."""

import queue
import threading

import grpc
import pytest

from redrive.v1 import broker_pb2, broker_pb2_grpc, common_pb2

from conftest import wait_for

WAIT = 15.0  # seconds; the bound of every wait on a condition


class Subscriber:
    """One Subscribe call: requests are fed from a queue.Queue through a
    request iterator, a reader thread collects every response."""

    _END = object()

    def __init__(self, channel, first_request=None):
        self._requests = queue.Queue()
        self._cond = threading.Condition()
        self.registered = None
        self.deliveries = []
        self.notices = []
        self.drains = []
        self.others = []
        self.code = None  # grpc.StatusCode once the call has finished
        self.details = None
        self.finished = False
        if first_request is not None:
            self._requests.put(first_request)
        self.call = broker_pb2_grpc.BrokerStub(channel).Subscribe(self._iterate())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _iterate(self):
        while True:
            item = self._requests.get()
            if item is self._END:
                return
            yield item

    def _read(self):
        code, details = grpc.StatusCode.OK, ""
        try:
            for resp in self.call:
                with self._cond:
                    kind = resp.WhichOneof("kind")
                    if kind == "registered":
                        self.registered = resp.registered
                    elif kind == "deliveries":
                        self.deliveries.extend(resp.deliveries.deliveries)
                    elif kind == "notices":
                        self.notices.extend(resp.notices.notices)
                    elif kind == "drain":
                        self.drains.append(resp.drain)
                    else:
                        self.others.append(resp)
                    self._cond.notify_all()
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
        with self._cond:
            self.code, self.details, self.finished = code, details, True
            self._cond.notify_all()
        self._requests.put(self._END)  # lets the request iterator return

    # ---------------------------------------------------------------- sending

    def send(self, request):
        self._requests.put(request)

    def register(self, **fields):
        self.send(broker_pb2.SubscribeRequest(register=broker_pb2.Register(**fields)))

    def verbs(self, verbs):
        self.send(broker_pb2.SubscribeRequest(verbs=broker_pb2.Verbs(verbs=verbs)))

    def ack(self, ids):
        self.verbs([broker_pb2.Verb(delivery_id=i, ack=broker_pb2.Ack()) for i in ids])

    def ack_all(self):
        self.ack([d.delivery_id for d in self.snapshot()])

    def half_close(self):
        self._requests.put(self._END)

    def cancel(self):
        self.call.cancel()

    # ---------------------------------------------------------------- waiting

    def _wait(self, predicate, timeout):
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)

    def wait_registered(self, timeout=WAIT):
        ok = self._wait(lambda: self.registered is not None or self.finished, timeout)
        return ok and self.registered is not None

    def wait_deliveries(self, n, timeout=WAIT):
        return self._wait(lambda: len(self.deliveries) >= n, timeout)

    def wait_notices(self, n, timeout=WAIT):
        return self._wait(lambda: len(self.notices) >= n, timeout)

    def wait_finished(self, timeout=WAIT):
        return self._wait(lambda: self.finished, timeout)

    def snapshot(self):
        with self._cond:
            return list(self.deliveries)

    def payloads(self):
        return [d.payload for d in self.snapshot()]

    def close(self):
        if not self.finished:
            self.call.cancel()
            self.wait_finished(5)


@pytest.fixture
def subscribers():
    """Opens Subscribe calls and cancels whatever a test leaves open."""
    opened = []

    def open_(daemon, **register_fields):
        sub = Subscriber(daemon.channel)
        opened.append(sub)
        if register_fields:
            sub.register(**register_fields)
            assert sub.wait_registered(), "not registered: %s %s" % (sub.code, sub.details)
        return sub
    yield open_
    for sub in opened:
        sub.close()


def publish(daemon, channel, payloads):
    """Publishes one message per payload with unary Publish; returns entry ids."""
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)
    return [stub.Publish(broker_pb2.PublishRequest(
        channel=channel, message=broker_pb2.OutgoingMessage(payload=p)), timeout=10).entry_id
        for p in payloads]


def pending(redis, stream, group):
    summary = redis.client()("XPENDING", stream, group)
    return summary[0]


def keys(redis):
    return sorted(k.decode() for k in redis.client()("KEYS", "*"))


def test_register_replies_with_exact_redis_names(redis, daemon_factory, subscribers):
    daemon = daemon_factory("--instance-id=py")
    sub = subscribers(daemon, channel="eggai.orders", handler_id="order-service-handle_order-1",
                      max_in_flight=7)
    r = sub.registered
    assert r.channel == "eggai.orders"
    assert r.handler_id == "order-service-handle_order-1"
    assert r.instance_id == "py"
    assert r.max_in_flight == 7
    assert r.lease_ms == 30000
    assert not r.auto_ack
    assert r.retry_policy.max_retries == 5
    assert r.start.kind == broker_pb2.StartPosition.START_NEW
    assert r.names.stream == "eggai.orders"
    assert r.names.group == "order-service-handle_order-1"
    assert r.names.retry_stream == "eggai.orders.order-service-handle_order-1.retry"
    assert r.names.retry_group == "order-service-handle_order-1-retry"
    assert r.names.dlq_stream == "eggai.orders.order-service-handle_order-1.dlq"
    assert r.names.consumer == "order-service-handle_order-1-py"
    # The group exists in Redis under exactly that name; nothing else was created.
    groups = redis.client()("XINFO", "GROUPS", "eggai.orders")
    assert [dict(zip(g[::2], g[1::2]))[b"name"] for g in groups] == [
        b"order-service-handle_order-1"]
    assert keys(redis) == ["eggai.orders", "{redrive}:handlers"]


def test_twenty_published_arrive_in_order_and_acks_clear_pending(redis, daemon, subscribers):
    sub = subscribers(daemon, channel="orders", handler_id="py-handler")
    payloads = [("py-%02d" % i).encode() for i in range(20)]
    entry_ids = publish(daemon, "orders", payloads)
    assert sub.wait_deliveries(20), "got %d of 20" % len(sub.snapshot())
    got = sub.snapshot()
    assert [d.payload for d in got] == payloads
    assert [d.entry_id for d in got] == entry_ids
    assert [d.attempt for d in got] == [1] * 20
    assert all(d.channel == "orders" and d.stream == "orders" for d in got)
    assert all(d.original_entry_id == d.entry_id for d in got)
    assert len({d.delivery_id for d in got}) == 20
    assert pending(redis, "orders", "py-handler") == 20
    sub.ack([d.delivery_id for d in got])
    assert wait_for(lambda: pending(redis, "orders", "py-handler") == 0, WAIT)
    # Nothing more came, and a repeated ACK is silent.
    sub.ack([got[0].delivery_id])
    assert not sub.wait_notices(1, timeout=0.3)
    assert len(sub.snapshot()) == 20
    assert keys(redis) == ["orders", "{redrive}:handlers"]


def test_two_handler_ids_each_get_every_message_once(redis, daemon, subscribers):
    a = subscribers(daemon, channel="orders", handler_id="py-a")
    b = subscribers(daemon, channel="orders", handler_id="py-b")
    payloads = [("fan-%d" % i).encode() for i in range(30)]
    publish(daemon, "orders", payloads)
    assert a.wait_deliveries(30) and b.wait_deliveries(30)
    a.ack_all()
    b.ack_all()
    assert wait_for(lambda: pending(redis, "orders", "py-a") == 0, WAIT)
    assert wait_for(lambda: pending(redis, "orders", "py-b") == 0, WAIT)
    assert a.payloads() == payloads
    assert b.payloads() == payloads
    for sub in (a, b):
        assert [d.attempt for d in sub.snapshot()] == [1] * 30
    assert keys(redis) == ["orders", "{redrive}:handlers"]


def test_cancelled_call_hands_its_unacked_deliveries_to_another_stream(
        redis, daemon, subscribers):
    holder = subscribers(daemon, channel="orders", handler_id="py-workers", max_in_flight=5)
    payloads = [("held-%d" % i).encode() for i in range(5)]
    entry_ids = publish(daemon, "orders", payloads)
    assert holder.wait_deliveries(5)
    assert holder.payloads() == payloads
    other = subscribers(daemon, channel="orders", handler_id="py-workers", max_in_flight=20)
    assert not other.wait_deliveries(1, timeout=0.3)  # the holder still holds them
    holder.cancel()  # a crashed client holding 5 unacked deliveries
    assert holder.wait_finished()
    assert holder.code == grpc.StatusCode.CANCELLED
    assert other.wait_deliveries(5), "got %d of 5" % len(other.snapshot())
    got = other.snapshot()
    assert sorted(d.payload for d in got) == sorted(payloads)
    # R-B7: each is a failed attempt, retried from the handler's retry stream.
    assert sorted(d.original_entry_id for d in got) == sorted(entry_ids)
    for d in got:
        assert d.attempt == 2, d
        assert d.stream == "orders.py-workers.retry"
        assert d.previous_error == "consumer disconnected"
    other.ack([d.delivery_id for d in got])
    assert wait_for(lambda: pending(redis, "orders", "py-workers") == 0, WAIT)
    assert wait_for(
        lambda: pending(redis, "orders.py-workers.retry", "py-workers-retry") == 0, WAIT)
    assert len(other.snapshot()) == 5


@pytest.mark.parametrize("first, code, needle", [
    (broker_pb2.SubscribeRequest(register=broker_pb2.Register(channel="orders")),
     grpc.StatusCode.INVALID_ARGUMENT, "register.handler_id"),
    (broker_pb2.SubscribeRequest(verbs=broker_pb2.Verbs(verbs=[
        broker_pb2.Verb(delivery_id=1, ack=broker_pb2.Ack())])),
     grpc.StatusCode.FAILED_PRECONDITION, "first message"),
    (broker_pb2.SubscribeRequest(stop=broker_pb2.Stop()),
     grpc.StatusCode.FAILED_PRECONDITION, "first message"),
    (broker_pb2.SubscribeRequest(register=broker_pb2.Register(
        channel="orders", handler_id="h", max_in_flight=10001)),
     grpc.StatusCode.INVALID_ARGUMENT, "register.max_in_flight"),
    (broker_pb2.SubscribeRequest(register=broker_pb2.Register(
        channel="orders", handler_id="h", auto_ack=True,
        retry_policy=common_pb2.RetryPolicy(max_retries=3))),
     grpc.StatusCode.INVALID_ARGUMENT, "register.auto_ack"),
], ids=["missing-handler-id", "verbs-before-register", "stop-before-register",
        "max-in-flight-10001", "auto-ack-with-retry-policy"])
def test_registration_errors_end_the_stream_and_daemon_keeps_serving(
        redis, daemon, subscribers, first, code, needle):
    bad = Subscriber(daemon.channel, first)
    try:
        assert bad.wait_finished(), "the stream did not end"
        assert bad.code == code, "%s: %s" % (bad.code, bad.details)
        assert needle in bad.details
        assert bad.registered is None and bad.deliveries == []
    finally:
        bad.close()
    # Nothing stray was created, and the daemon still serves.
    assert keys(redis) == []
    ok = subscribers(daemon, channel="orders", handler_id="after-errors")
    publish(daemon, "orders", [b"still-serving"])
    assert ok.wait_deliveries(1)
    assert ok.payloads() == [b"still-serving"]
    ok.ack_all()
    assert wait_for(lambda: pending(redis, "orders", "after-errors") == 0, WAIT)


def test_second_register_is_failed_precondition(daemon, subscribers):
    sub = subscribers(daemon, channel="orders", handler_id="h")
    sub.register(channel="orders", handler_id="h")
    assert sub.wait_finished()
    assert sub.code == grpc.StatusCode.FAILED_PRECONDITION, sub.details


def test_verbs_for_a_never_issued_id_get_unknown_delivery_notices(redis, daemon, subscribers):
    sub = subscribers(daemon, channel="orders", handler_id="py-notices")
    never_issued = 987654321
    sub.verbs([broker_pb2.Verb(delivery_id=never_issued,
                               nack=broker_pb2.Nack(reason="boom", error_code="E1"))])
    assert sub.wait_notices(1), "no notice; stream %s %s" % (sub.code, sub.details)
    sub.ack([never_issued + 1])
    assert sub.wait_notices(2)
    notices = list(sub.notices)
    assert [(n.delivery_id, n.code) for n in notices] == [
        (never_issued, broker_pb2.Notice.UNKNOWN_DELIVERY),
        (never_issued + 1, broker_pb2.Notice.UNKNOWN_DELIVERY)]
    assert all(n.message for n in notices)
    # Non-fatal: the same stream goes on delivering.
    assert not sub.finished
    publish(daemon, "orders", [b"after-notice"])
    assert sub.wait_deliveries(1)
    assert sub.payloads() == [b"after-notice"]
    assert sub.snapshot()[0].delivery_id not in (never_issued, never_issued + 1)
    sub.ack_all()
    assert wait_for(lambda: pending(redis, "orders", "py-notices") == 0, WAIT)
    assert len(sub.notices) == 2
