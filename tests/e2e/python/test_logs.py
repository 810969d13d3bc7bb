"""Structured JSON logs and the W3C trace context of Publish calls, end to
end through the real redrived (README "Logs", "Publish"): a message whose
traceparent came only as gRPC metadata (what OpenTelemetry-instrumented
clients send) is stored with it, delivered with it, and the log line that
dead-letters it carries it as "trace_id" next to exact channel, handler,
entry_id and reason keys; every line the daemon writes to stderr is one JSON
object.

Every wait is on a condition, bounded by WAIT."""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import grpc

from redrive.v1 import broker_pb2, broker_pb2_grpc, common_pb2

from conftest import DAEMON, wait_for
from test_retry import nack, parse_binary_v1, xrange
from test_subscribe import subscribers  # noqa: F401 (fixture)

WAIT = 15.0  # seconds; the bound of every wait on a condition

CH = "py.logs"
HANDLER = "billing"
RETRY = "py.logs.billing.retry"
DLQ = "py.logs.billing.dlq"

# The metadata's trace context, a message's own, and an invalid one.
META_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
META_TP = "00-%s-00f067aa0ba902b7-01" % META_TRACE_ID
OWN_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
OWN_TP = "00-%s-b7ad6b7169203331-01" % OWN_TRACE_ID
BAD_TP = "00-not-a-traceparent-01"


class JsonLogDaemon:
    """redrived with --log-format=json --log-level=debug, stderr kept apart
    from stdout so that every stderr line can be checked."""

    def __init__(self, redis_port):
        self.dir = tempfile.mkdtemp(prefix="redrive-py-logs-")
        ready = os.path.join(self.dir, "ready.json")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [DAEMON, "--grpc-listen=127.0.0.1:0", "--ready-file=" + ready,
                 "--health-interval-ms=100", "--reclaim-tick-ms=100", "--instance-id=py",
                 "--redis-url=redis://127.0.0.1:%d/0" % redis_port,
                 "--log-format=json", "--log-level=debug"],
                stdout=out, stderr=err, env=env)

        def is_ready():
            if self.proc.poll() is not None:
                raise AssertionError("redrived exited: " + self.stderr())
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        info = wait_for(is_ready, WAIT)
        assert info, "redrived did not become ready"
        self.channel = grpc.insecure_channel(info["grpc"][0])

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8")

    def lines(self):
        """Every stderr line parsed as JSON; a line that is not one JSON object
        fails the test."""
        text = self.stderr()
        assert text == "" or text.endswith("\n"), "unterminated last line: %r" % text[-200:]
        out = []
        for line in text.splitlines():
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise AssertionError("stderr line is not JSON (%s): %r" % (err, line))
            assert isinstance(obj, dict), line
            assert {"ts", "level", "msg"} <= set(obj), line
            out.append(obj)
        return out

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def publish(daemon, message, metadata):
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)
    return stub.Publish(broker_pb2.PublishRequest(channel=CH, message=message),
                        metadata=metadata, timeout=10).entry_id


def headers_of(entry):
    headers, _ = parse_binary_v1(entry[1]["__data__"])
    return headers


def test_metadata_traceparent_is_stored_delivered_and_logged_on_dead_letter(
        redis, subscribers):  # noqa: F811 (fixture)
    daemon = JsonLogDaemon(redis.port)
    try:
        r = redis.client()
        sub = subscribers(daemon, channel=CH, handler_id=HANDLER,
                          retry_policy=common_pb2.RetryPolicy(
                              max_retries=1, initial_backoff_ms=50, multiplier=1.0, jitter=0.0))
        # 1. traceparent and tracestate only as gRPC metadata.
        meta_id = publish(daemon, broker_pb2.OutgoingMessage(payload=b"meta"),
                          [("traceparent", META_TP), ("tracestate", "vendor=meta")])
        # 2. The message's own traceparent wins over the metadata's.
        own_id = publish(daemon, broker_pb2.OutgoingMessage(
            payload=b"own", trace=common_pb2.TraceContext(traceparent=OWN_TP)),
            [("traceparent", META_TP), ("tracestate", "vendor=meta")])
        # 3. An invalid metadata traceparent is ignored, never an error.
        bad_id = publish(daemon, broker_pb2.OutgoingMessage(payload=b"bad"),
                         [("traceparent", BAD_TP)])

        # Stored exactly as if the message had carried it.
        stored = {e[0]: headers_of(e) for e in xrange(r, CH)}
        assert set(stored) == {meta_id, own_id, bad_id}
        assert [h for h in stored[meta_id] if h[0] != "correlation_id"] == [
            ("traceparent", META_TP), ("tracestate", "vendor=meta")]
        assert [h for h in stored[own_id] if h[0] != "correlation_id"] == [
            ("traceparent", OWN_TP)]
        assert [h for h in stored[bad_id] if h[0] != "correlation_id"] == []

        # NACK every delivery: max_retries 1 = two attempts, then the DLQ.
        nacked = set()

        def nack_new():
            new = [d for d in sub.snapshot() if d.delivery_id not in nacked]
            if new:
                sub.verbs([nack(d.delivery_id, "boom") for d in new])
                nacked.update(d.delivery_id for d in new)
            return r("XLEN", DLQ) == 3
        assert wait_for(nack_new, WAIT), (len(sub.snapshot()), r("XLEN", DLQ))

        deliveries = sub.snapshot()
        assert sorted((d.original_entry_id, d.attempt, d.trace.traceparent, d.trace.tracestate)
                      for d in deliveries) == sorted([
                          (meta_id, 1, META_TP, "vendor=meta"), (meta_id, 2, META_TP, "vendor=meta"),
                          (own_id, 1, OWN_TP, ""), (own_id, 2, OWN_TP, ""),
                          (bad_id, 1, "", ""), (bad_id, 2, "", "")])
        dead = {e[1]["x-redrive-original-id"].decode(): e for e in xrange(r, DLQ)}
        assert set(dead) == {meta_id, own_id, bad_id}
        # The second attempt came from the retry stream: that entry is the
        # one dead-lettered (x-redrive-source-id), and the one logged.
        assert all(e[1]["x-redrive-source-stream"] == RETRY.encode() for e in dead.values())
        source_id = {k: e[1]["x-redrive-source-id"].decode() for k, e in dead.items()}

        def dead_letter_lines():
            return [j for j in daemon.lines() if j["msg"] == "entry dead-lettered"]
        assert wait_for(lambda: len(dead_letter_lines()) == 3, WAIT), daemon.stderr()
    finally:
        daemon.stop()
    try:
        lines = daemon.lines()  # every line, to the last one, parses
        dead_lines = {j["entry_id"]: j for j in lines if j["msg"] == "entry dead-lettered"}
        assert set(dead_lines) == set(source_id.values())
        for original_id, trace_id in ((meta_id, META_TRACE_ID), (own_id, OWN_TRACE_ID),
                                      (bad_id, None)):
            line = dead_lines[source_id[original_id]]
            expected = {"ts": line["ts"], "level": "debug", "msg": "entry dead-lettered",
                        "channel": CH, "handler": HANDLER, "entry_id": source_id[original_id],
                        "reason": "max_retries", "attempt": 2, "stream": RETRY,
                        "dlq_entry_id": dead[original_id][0]}
            if trace_id is not None:
                expected["trace_id"] = trace_id
            assert line == expected
        # The ignored metadata traceparent: one debug line, no error.
        ignored = [j for j in lines
                   if j["msg"] == "publish: trace context in the call's metadata ignored"]
        assert len(ignored) == 1, ignored
        assert ignored[0]["level"] == "debug"
        assert ignored[0]["channel"] == CH
        assert ignored[0]["reason"] == ("the call's traceparent is not a W3C traceparent "
                                        "(00-<32 hex>-<16 hex>-<2 hex>)")
        assert set(ignored[0]) == {"ts", "level", "msg", "channel", "peer", "reason"}
        # The registration line carries the handler as keys, not in the text.
        [registered] = [j for j in lines if j["msg"].startswith("session registered a handler")]
        assert (registered["channel"], registered["handler"], registered["level"]) == (
            CH, HANDLER, "info")
        assert isinstance(registered["session"], int)
        assert CH not in registered["msg"] and HANDLER not in registered["msg"]
    finally:
        daemon.cleanup()
