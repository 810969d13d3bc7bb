"""redrived end to end from Python (Debian python3-grpcio, generated stubs)."""

import struct

import grpc
import pytest
from google.protobuf import descriptor_pb2

import health_pb2
import health_pb2_grpc
import reflection_pb2
import reflection_pb2_grpc
from redrive.v1 import admin_pb2, admin_pb2_grpc, broker_pb2, broker_pb2_grpc, common_pb2

from conftest import wait_for

MAGIC = bytes.fromhex("8942494e0d0a1a0a")


def spec_envelope(headers, body):
    """BinaryMessageFormatV1 per docs/eggai-compat.md, with byte lengths."""
    block = struct.pack(">H", len(headers))
    for key, value in headers:
        k, v = key.encode(), value.encode()
        block += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    return MAGIC + struct.pack(">HII", 1, 18, 18 + len(block)) + block + body


def health(daemon, service=""):
    stub = health_pb2_grpc.HealthStub(daemon.channel)
    try:
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    except grpc.RpcError:
        return None


def reflect(daemon, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(daemon.channel)
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert len(responses) == 1
    return responses[0]


def test_reflection_lists_both_services(daemon):
    resp = reflect(daemon, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = sorted(s.name for s in resp.list_services_response.service)
    assert names == ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                     "redrive.v1.Admin", "redrive.v1.Broker"]


def test_reflection_describes_every_rpc(daemon):
    methods = {}
    for service in ("redrive.v1.Broker", "redrive.v1.Admin"):
        resp = reflect(daemon, reflection_pb2.ServerReflectionRequest(
            file_containing_symbol=service))
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in resp.file_descriptor_response.file_descriptor_proto]
        for f in files:
            for s in f.service:
                methods[f.package + "." + s.name] = sorted(m.name for m in s.method)
    assert methods["redrive.v1.Broker"] == ["Publish", "PublishBatch", "Subscribe", "Tail"]
    assert methods["redrive.v1.Admin"] == sorted([
        "ListHandlers", "ListDeadLetters", "GetDeadLetter", "CountDeadLetters",
        "RedriveDeadLetters", "GetRedriveJob", "CancelRedriveJob", "DeleteDeadLetters",
        "PurgeDeadLetters", "PauseHandler", "ResumeHandler", "MigrateLegacyKeys",
        "DeleteHandler"])


def test_health_serving_only_while_redis_answers(redis, daemon):
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    for service in ("", "redrive.v1.Broker", "redrive.v1.Admin"):
        assert wait_for(lambda: health(daemon, service) == serving)
    redis.kill()
    for service in ("", "redrive.v1.Broker", "redrive.v1.Admin"):
        assert wait_for(lambda: health(daemon, service) == not_serving)
    redis.start()
    for service in ("", "redrive.v1.Broker", "redrive.v1.Admin"):
        assert wait_for(lambda: health(daemon, service) == serving)


def test_publish_writes_exact_bytes(redis, daemon):
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)
    payload = '{"order":1,"note":"d\u00e9j\u00e0 vu"}'.encode()
    msg = broker_pb2.OutgoingMessage(
        payload=payload, content_type="application/json", correlation_id="py-1",
        headers=[common_pb2.Header(key="region", value="m\u00fcnchen")],
        trace=common_pb2.TraceContext(
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    resp = stub.Publish(broker_pb2.PublishRequest(channel="eggai.orders", message=msg),
                        timeout=10)
    assert resp.stream == "eggai.orders"
    assert resp.correlation_id == "py-1"
    r = redis.client()
    entries = r("XRANGE", "eggai.orders", "-", "+")
    assert entries == [[resp.entry_id.encode(), [b"__data__", spec_envelope(
        [("correlation_id", "py-1"), ("content-type", "application/json"),
         ("region", "m\u00fcnchen"),
         ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
        payload)]]]
    assert r("KEYS", "*") == [b"eggai.orders"]


def test_publish_batch_in_order(redis, daemon):
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)
    msgs = [broker_pb2.OutgoingMessage(payload=bytes([i]) * 3, correlation_id="c%d" % i)
            for i in range(5)]
    resp = stub.PublishBatch(broker_pb2.PublishBatchRequest(channel="orders", messages=msgs),
                             timeout=10)
    assert list(resp.correlation_ids) == ["c%d" % i for i in range(5)]
    entries = redis.client()("XRANGE", "orders", "-", "+")
    assert [e[0].decode() for e in entries] == list(resp.entry_ids)
    assert [e[1] for e in entries] == [
        [b"__data__", spec_envelope([("correlation_id", "c%d" % i)], bytes([i]) * 3)]
        for i in range(5)]


@pytest.mark.parametrize("request_, code, needle", [
    (broker_pb2.PublishRequest(channel="", message=broker_pb2.OutgoingMessage(payload=b"x")),
     grpc.StatusCode.INVALID_ARGUMENT, "channel is required"),
    (broker_pb2.PublishRequest(channel="a b", message=broker_pb2.OutgoingMessage(payload=b"x")),
     grpc.StatusCode.INVALID_ARGUMENT, "channel"),
    (broker_pb2.PublishRequest(channel="orders"),
     grpc.StatusCode.INVALID_ARGUMENT, "message is required"),
    (broker_pb2.PublishRequest(channel="orders",
                               message=broker_pb2.OutgoingMessage(payload=b"x" * 129)),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "message.payload is 129 bytes"),
    (broker_pb2.PublishRequest(channel="orders", message=broker_pb2.OutgoingMessage(
        payload=b"x", headers=[common_pb2.Header(key="reply_to", value="y")])),
     grpc.StatusCode.INVALID_ARGUMENT, "reserved"),
    (broker_pb2.PublishRequest(channel="orders", max_len=10**10,
                               message=broker_pb2.OutgoingMessage(payload=b"x")),
     grpc.StatusCode.INVALID_ARGUMENT, "max_len"),
])
def test_bad_input_exact_status(redis, daemon_factory, request_, code, needle):
    daemon = daemon_factory("--max-payload-bytes=128")
    stub = broker_pb2_grpc.BrokerStub(daemon.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Publish(request_, timeout=10)
    assert err.value.code() == code
    assert needle in err.value.details()
    # Nothing was written and the daemon still serves.
    assert redis.client()("KEYS", "*") == []
    stub.Publish(broker_pb2.PublishRequest(
        channel="orders", message=broker_pb2.OutgoingMessage(payload=b"ok")), timeout=10)
    assert redis.client()("XLEN", "orders") == 1


def test_admin_rpcs_are_refused_without_a_configured_token(daemon):
    stub = admin_pb2_grpc.AdminStub(daemon.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.CountDeadLetters(admin_pb2.CountDeadLettersRequest(), timeout=10,
                              metadata=[("authorization", "Bearer some-token-0123456789")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no admin token is configured" in err.value.details()


def test_sigterm_exits_zero(daemon):
    assert daemon.terminate() == 0


def reflected_pool(daemon, symbol):
    """A descriptor pool built only from what the server reflects for `symbol`
    (its file and dependencies), as grpcurl builds one: no local .proto."""
    from google.protobuf import descriptor_pool
    resp = reflect(daemon, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    pool = descriptor_pool.DescriptorPool()
    pending = [descriptor_pb2.FileDescriptorProto.FromString(b)
               for b in resp.file_descriptor_response.file_descriptor_proto]
    added = set()
    while pending:  # dependencies first, whatever order they came in
        progress = False
        for f in list(pending):
            if all(d in added for d in f.dependency):
                pool.Add(f)
                added.add(f.name)
                pending.remove(f)
                progress = True
        assert progress, "unresolvable dependencies: %s" % [f.name for f in pending]
    return pool


def test_health_is_described_and_called_through_reflection_only(daemon):
    """grpcurl's path: describe grpc.health.v1.Health, then call Check with
    message types built from the reflected descriptors (regression: the health
    descriptor was not linked in, 'Symbol not found')."""
    from google.protobuf import message_factory
    pool = reflected_pool(daemon, "grpc.health.v1.Health")
    service = pool.FindServiceByName("grpc.health.v1.Health")
    assert sorted(m.name for m in service.methods) == ["Check", "Watch"]
    check = service.methods_by_name["Check"]
    factory = message_factory.MessageFactory(pool)
    request_type = factory.GetPrototype(check.input_type)
    response_type = factory.GetPrototype(check.output_type)
    call = daemon.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString)
    serving = response_type.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_name[
        "SERVING"].number
    for name in ("", "liveness", "readiness", "redrive.v1.Broker", "redrive.v1.Admin"):
        assert wait_for(lambda: call(request_type(service=name), timeout=5).status == serving), name
    with pytest.raises(grpc.RpcError) as err:
        call(request_type(service="no.such.Service"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
