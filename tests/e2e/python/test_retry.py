"""Retries and dead letters end to end from Python (Debian python3-grpcio,
generated stubs): EggAI issue #225 (one handler's failures stay with it),
EggAI-compatible retry and dead-letter entries read the way an EggAI /
FastStream consumer reads them, TERMINATE, poison, and invalid verbs
(R-B4, R-C2, R-C4, R-D1..R-D6; docs/retries-design.md).

Every wait is on a condition, bounded by WAIT. Fixed waits appear only where
a test proves that something does NOT happen, and are named WINDOW."""

import base64
import datetime
import json
import struct
import time

from redrive.v1 import broker_pb2, common_pb2

from conftest import wait_for
from test_subscribe import keys, pending, publish, subscribers  # noqa: F401 (fixture)

WAIT = 15.0    # seconds; the bound of every wait on a condition
WINDOW = 0.4   # seconds in which something must NOT happen
TICK_MS = 100  # --reclaim-tick-ms every test starts redrived with

CH = "py.orders"
RETRY = "py.orders.A.retry"
DLQ = "py.orders.A.dlq"
DUE = "py.orders.A.retry.due"
# Every registration records its handler here (the Admin service lists it).
REGISTRY = "{redrive}:handlers"

MAGIC = b"\x89BIN\r\n\x1a\n"


# ------------------------------------------------ BinaryMessageFormatV1

def encode_binary_v1(headers, body):
    """BinaryMessageFormatV1 as FastStream 0.7 / EggAI 0.3.4 write it for
    ASCII headers (daemon/envelope.h): headers_start 18, byte lengths."""
    block = struct.pack(">H", len(headers))
    for key, value in headers:
        k, v = key.encode(), value.encode()
        block += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    return MAGIC + struct.pack(">HII", 1, 18, 18 + len(block)) + block + body


def parse_binary_v1(value):
    """Reads a `__data__` value the way an EggAI / FastStream consumer does:
    magic, u16 version, u32 headers_start, u32 data_start, then at
    headers_start a u16 header count and u16-length-prefixed key/value pairs;
    the body runs from data_start to the end. Strict: the header block must
    end exactly at data_start. Returns (headers as a list of pairs, body)."""
    assert value[:8] == MAGIC, "no BinaryMessageFormatV1 magic: %r" % value[:16]
    version, headers_start, data_start = struct.unpack_from(">HII", value, 8)
    assert version == 1, version
    assert 18 <= headers_start and headers_start + 2 <= data_start <= len(value), (
        headers_start, data_start, len(value))
    (count,) = struct.unpack_from(">H", value, headers_start)
    pos = headers_start + 2
    headers = []
    for _ in range(count):
        pair = []
        for _ in range(2):
            (n,) = struct.unpack_from(">H", value, pos)
            pos += 2
            assert pos + n <= data_start, "header runs past data_start"
            pair.append(value[pos:pos + n].decode("utf-8"))
            pos += n
        headers.append(tuple(pair))
    assert pos == data_start, "header block ends at %d, data_start is %d" % (pos, data_start)
    return headers, value[data_start:]


# ------------------------------------------------ Redis inspection

def xrange(r, stream):
    """[(entry id, {field: value})] of a stream (bytes values, str names)."""
    out = []
    for entry_id, flat in r("XRANGE", stream, "-", "+"):
        names = [f.decode() for f in flat[::2]]
        assert len(set(names)) == len(names), "repeated field in %r" % names
        out.append((entry_id.decode(), dict(zip(names, flat[1::2]))))
    return out


def field(entry, name):
    value = entry[1].get(name)
    return None if value is None else value.decode()


def groups(r, stream):
    return [dict(zip(g[::2], g[1::2]))[b"name"].decode()
            for g in r("XINFO", "GROUPS", stream)]


def all_pending(r):
    """{(stream, group): XPENDING count} over every group of every stream key."""
    out = {}
    for key in r("KEYS", "*"):
        if r("TYPE", key) != "stream":
            continue
        for g in groups(r, key):
            out[(key.decode(), g)] = r("XPENDING", key, g)[0]
    return out


def dead_letter_body(entry):
    """The JSON body of a dead letter's `__data__`, parsed as EggAI would."""
    headers, body = parse_binary_v1(entry[1]["__data__"])
    return headers, json.loads(body)


# ------------------------------------------------ verbs

def nack(delivery_id, reason, error_code="", delay_ms=None):
    n = broker_pb2.Nack(reason=reason, error_code=error_code)
    if delay_ms is not None:
        n.delay_ms = delay_ms
    return broker_pb2.Verb(delivery_id=delivery_id, nack=n)


def terminate(delivery_id, reason, error_code=""):
    return broker_pb2.Verb(delivery_id=delivery_id, terminate=broker_pb2.Terminate(
        reason=reason, error_code=error_code))


def policy(max_retries, initial_backoff_ms, multiplier=1.0, jitter=0.0):
    return common_pb2.RetryPolicy(max_retries=max_retries, initial_backoff_ms=initial_backoff_ms,
                                  multiplier=multiplier, jitter=jitter)


def start_daemon(daemon_factory):
    return daemon_factory("--instance-id=py", "--reclaim-tick-ms=%d" % TICK_MS)


# ------------------------------------------------ 1. EggAI #225

def test_issue_225_failures_of_a_stay_with_a_and_end_in_its_dlq(
        redis, daemon_factory, subscribers):
    daemon = start_daemon(daemon_factory)
    r = redis.client()
    a = subscribers(daemon, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=2, initial_backoff_ms=100))
    b = subscribers(daemon, channel=CH, handler_id="B")
    assert a.registered.names.retry_stream == RETRY
    assert a.registered.names.retry_group == "A-retry"
    assert a.registered.names.dlq_stream == DLQ

    payload = b'{"order":7}'
    [main_id] = publish(daemon, CH, [payload])

    assert b.wait_deliveries(1), "B got nothing"
    b.ack_all()

    # A declines every attempt: 1 from the main stream, 2 and 3 from its own
    # retry stream (never a ".retry.retry").
    for attempt in (1, 2, 3):
        assert a.wait_deliveries(attempt), "A: no attempt %d; got %r" % (
            attempt, [(d.attempt, d.stream) for d in a.snapshot()])
        d = a.snapshot()[attempt - 1]
        a.verbs([nack(d.delivery_id, "declined")])

    assert wait_for(lambda: r("XLEN", DLQ) == 1, WAIT), "no dead letter"
    # The due zset disappears once empty; XACKs are asynchronous.
    assert wait_for(lambda: not r("EXISTS", DUE) and all(
        n == 0 for n in all_pending(r).values()), WAIT), (keys(redis), all_pending(r))
    # WINDOW: no fourth delivery to A, no second one to B.
    assert not a.wait_deliveries(4, timeout=WINDOW)
    assert not b.wait_deliveries(2, timeout=0.0)

    got_b = b.snapshot()
    assert len(got_b) == 1
    assert got_b[0].payload == payload
    assert got_b[0].attempt == 1
    assert got_b[0].entry_id == main_id

    got_a = a.snapshot()
    assert len(got_a) == 3
    assert [d.attempt for d in got_a] == [1, 2, 3]
    assert [d.payload for d in got_a] == [payload] * 3
    assert [d.original_entry_id for d in got_a] == [main_id] * 3
    assert all(d.max_attempts == 3 for d in got_a)
    assert all(d.channel == CH for d in got_a)
    assert (got_a[0].stream, got_a[0].entry_id, got_a[0].previous_error) == (CH, main_id, "")
    retries = xrange(r, RETRY)
    assert len(retries) == 2
    for i, d in enumerate(got_a[1:]):
        assert d.stream == RETRY, d
        assert d.entry_id == retries[i][0]
        assert d.previous_error == "declined"
        # EggAI's metadata in the retry entry's body, byte for byte.
        _, body = parse_binary_v1(retries[i][1]["__data__"])
        assert body == (b'{"order":7,"_retry_count":"%d","_original_message_id":"%s"}'
                        % (i + 1, main_id.encode()))

    # The dead letter, read as an EggAI / FastStream consumer reads it.
    [dl] = xrange(r, DLQ)
    assert field(dl, "x-redrive-reason") == "max_retries"
    assert field(dl, "x-redrive-attempts") == "3"
    assert field(dl, "x-redrive-handler") == "A"
    assert field(dl, "x-redrive-channel") == CH
    assert field(dl, "x-redrive-original-id") == main_id
    assert field(dl, "x-redrive-last-error") == "declined"
    headers, body = dead_letter_body(dl)
    [(_, main_fields)] = xrange(r, CH)
    assert headers == parse_binary_v1(main_fields["__data__"])[0]  # headers travel unchanged
    assert body["order"] == 7
    assert body["_dlq_reason"] == "max_retries"
    assert body["_dlq_handler"] == "A"
    assert body["_dlq_source"] == CH
    assert body["_dlq_retries"] == "2"
    assert body["_retry_count"] == "0"
    assert body["_original_message_id"] == main_id
    at = datetime.datetime.fromisoformat(body["_dlq_at"])
    assert at.utcoffset() == datetime.timedelta(0), body["_dlq_at"]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - at).total_seconds()) < 60, (body["_dlq_at"], now)
    assert sorted(body) == sorted(["order", "_retry_count", "_original_message_id",
                                   "_dlq_source", "_dlq_handler", "_dlq_at", "_dlq_reason",
                                   "_dlq_retries"])

    # B has no retry or DLQ key; nothing else exists.
    assert set(keys(redis)) == {CH, RETRY, DLQ, REGISTRY}
    assert [k for k in keys(redis) if k.endswith(".retry.retry")] == []
    assert all_pending(r) == {(CH, "A"): 0, (CH, "B"): 0, (RETRY, "A-retry"): 0}


# ------------------------------------------------ 2. an EggAI-written retry entry

def test_retry_entry_written_by_eggai_is_delivered_as_attempt_4(
        redis, daemon_factory, subscribers):
    daemon = start_daemon(daemon_factory)
    r = redis.client()
    # What EggAI 0.3.4's PendingReclaimer leaves after three failed attempts:
    # the JSON body with "_retry_count" "3" and "_original_message_id".
    data = encode_binary_v1(
        [("correlation_id", "eggai-corr-1"), ("content-type", "application/json")],
        b'{"order":7,"_retry_count":"3","_original_message_id":"1-0"}')
    assert r("XGROUP", "CREATE", RETRY, "A-retry", "$", "MKSTREAM") == "OK"
    retry_id = r("XADD", RETRY, "*", "__data__", data).decode()

    a = subscribers(daemon, channel=CH, handler_id="A")
    assert a.wait_deliveries(1), "the EggAI retry entry was not delivered"
    [d] = a.snapshot()
    assert d.attempt == 4
    assert d.original_entry_id == "1-0"
    assert d.payload == b'{"order":7}'
    assert d.stream == RETRY
    assert d.entry_id == retry_id
    assert d.channel == CH
    assert d.previous_error == ""
    assert d.correlation_id == "eggai-corr-1"
    assert d.content_type == "application/json"
    assert d.source_format == broker_pb2.SOURCE_FORMAT_BINARY_V1

    a.ack([d.delivery_id])
    assert wait_for(lambda: pending(redis, RETRY, "A-retry") == 0, WAIT)
    assert not a.wait_deliveries(2, timeout=WINDOW)  # WINDOW: nothing else comes
    assert pending(redis, CH, "A") == 0
    assert set(keys(redis)) == {CH, RETRY, REGISTRY}


# ------------------------------------------------ 3. TERMINATE

def test_terminate_dead_letters_at_once_with_the_reason(redis, daemon_factory, subscribers):
    daemon = start_daemon(daemon_factory)
    r = redis.client()
    a = subscribers(daemon, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=5, initial_backoff_ms=50))
    [main_id] = publish(daemon, CH, [b'{"order":8}'])
    assert a.wait_deliveries(1)
    a.verbs([terminate(a.snapshot()[0].delivery_id, "order 8 is invalid", "E_INVALID")])

    assert wait_for(lambda: r("XLEN", DLQ) == 1 and pending(redis, CH, "A") == 0, WAIT), (
        keys(redis))
    assert not a.wait_deliveries(2, timeout=WINDOW)  # WINDOW: it is not retried
    [dl] = xrange(r, DLQ)
    assert field(dl, "x-redrive-reason") == "terminated"
    assert field(dl, "x-redrive-last-error") == "order 8 is invalid"
    assert field(dl, "x-redrive-last-error-code") == "E_INVALID"
    assert field(dl, "x-redrive-attempts") == "1"
    assert field(dl, "x-redrive-original-id") == main_id
    assert field(dl, "x-redrive-source-stream") == CH
    _, body = dead_letter_body(dl)
    assert body["order"] == 8
    assert body["_dlq_reason"] == "terminated"
    assert body["_dlq_retries"] == "0"
    assert body["_original_message_id"] == main_id
    assert set(keys(redis)) == {CH, DLQ, REGISTRY}
    assert all_pending(r) == {(CH, "A"): 0}


# ------------------------------------------------ 4. poison

def test_poison_goes_to_the_dlq_and_never_blocks(redis, daemon_factory, subscribers):
    daemon = start_daemon(daemon_factory)
    r = redis.client()
    a = subscribers(daemon, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=3, initial_backoff_ms=50))
    # The binary magic, version 1, but data_start far past the end.
    corrupt = MAGIC + struct.pack(">HII", 1, 18, 4096) + struct.pack(">H", 0) + b'{"order":1}'
    # A JSON object body whose _retry_count is not a decimal integer.
    abc = b'{"_retry_count":"abc"}'
    poison = {r("XADD", CH, "*", "__data__", raw).decode(): raw for raw in (corrupt, abc)}

    published_at = time.monotonic()
    [normal_id] = publish(daemon, CH, [b'{"order":9}'])
    assert a.wait_deliveries(1, timeout=2.0), "the message after the poison was not delivered"
    assert time.monotonic() - published_at <= 2.0
    [d] = a.snapshot()
    assert (d.payload, d.entry_id, d.attempt) == (b'{"order":9}', normal_id, 1)
    a.ack([d.delivery_id])

    assert wait_for(lambda: r("XLEN", DLQ) == 2 and not r("EXISTS", DUE) and all(
        n == 0 for n in all_pending(r).values()), WAIT), (keys(redis), all_pending(r))
    assert not a.wait_deliveries(2, timeout=WINDOW)  # WINDOW: poison is never delivered

    dlq = xrange(r, DLQ)
    assert sorted(field(e, "x-redrive-source-id") for e in dlq) == sorted(poison)
    for entry in dlq:
        source_id = field(entry, "x-redrive-source-id")
        raw = poison[source_id]
        assert field(entry, "x-redrive-reason") == "poison", source_id
        assert field(entry, "x-redrive-handler") == "A"
        assert field(entry, "x-redrive-channel") == CH
        assert field(entry, "x-redrive-source-stream") == CH
        assert field(entry, "x-redrive-original-id") == source_id
        headers, body = dead_letter_body(entry)
        assert headers == []
        assert base64.b64decode(body["_dlq_raw_b64"], validate=True) == raw
        assert body["_dlq_reason"] == "poison"
        assert body["_dlq_handler"] == "A"
        assert body["_dlq_source"] == CH
        assert body["_dlq_retries"] == "0"
        assert body["_retry_count"] == "0"
        assert body["_original_message_id"] == source_id
    assert set(keys(redis)) == {CH, DLQ, REGISTRY}
    assert all_pending(r) == {(CH, "A"): 0}


# ------------------------------------------------ 5. invalid verbs

def test_invalid_verbs_get_notices_and_lose_nothing(redis, daemon_factory, subscribers):
    daemon = start_daemon(daemon_factory)
    r = redis.client()
    a = subscribers(daemon, channel=CH, handler_id="A",
                    retry_policy=policy(max_retries=2, initial_backoff_ms=50))
    [main_id] = publish(daemon, CH, [b'{"order":10}'])
    assert a.wait_deliveries(1)
    did = a.snapshot()[0].delivery_id

    invalid = [
        nack(did, "too late", delay_ms=86_400_001),  # delay_ms above 86,400,000
        nack(did, "x" * 4097),                        # reason above 4096 bytes
        nack(did, "bad code", error_code="E" * 129),  # error_code above 128 bytes
        terminate(did, "y" * 4097),
        broker_pb2.Verb(delivery_id=did, extend=broker_pb2.Extend(lease_ms=86_400_001)),
        broker_pb2.Verb(delivery_id=did),             # no action
    ]
    for n, verb in enumerate(invalid, 1):
        a.verbs([verb])
        assert a.wait_notices(n), "no notice for invalid verb %d: %s" % (n, verb)
        notice = a.notices[n - 1]
        assert notice.delivery_id == did, n
        assert notice.code == broker_pb2.Notice.INVALID_VERB, (n, notice)
        assert notice.message, n
    assert not a.finished  # notices are not fatal

    # The delivery is still in flight: nothing was retried or dead-lettered.
    assert not a.wait_deliveries(2, timeout=WINDOW)  # WINDOW: no redelivery
    assert pending(redis, CH, "A") == 1
    assert set(keys(redis)) == {CH, REGISTRY}

    a.ack([did])
    assert wait_for(lambda: pending(redis, CH, "A") == 0, WAIT)
    assert not a.wait_notices(len(invalid) + 1, timeout=WINDOW)  # the ACK was accepted
    assert len(a.snapshot()) == 1
    assert a.snapshot()[0].entry_id == main_id
    assert set(keys(redis)) == {CH, REGISTRY}
