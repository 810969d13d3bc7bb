"""The Admin service from Python (Debian python3-grpcio, generated stubs):
the bearer token, dead-letter inspection, a dry-run and a real redrive to
the handler's own retry stream, and the statuses of bad requests
(R-E1, R-E2, R-E3, R-A5, R-H2).

Every wait is on a condition, bounded by WAIT; WINDOW is the one fixed span
in which something must NOT happen."""

import grpc
import pytest

from redrive.v1 import admin_pb2, admin_pb2_grpc, broker_pb2

from conftest import wait_for
from test_subscribe import keys, publish, subscribers  # noqa: F401 (fixture)

WAIT = 15.0
WINDOW = 0.4
TOKEN = "py-admin-token-0123456789"
AUTH = [("authorization", "Bearer " + TOKEN), ("x-redrive-operator", "pytest")]


@pytest.fixture
def admin_daemon(tmp_path, daemon_factory):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return daemon_factory("--admin-token-file=%s" % token_file, "--instance-id=pyadm")


def terminate(delivery_id):
    return broker_pb2.Verb(delivery_id=delivery_id, terminate=broker_pb2.Terminate(
        reason="rejected by python", error_code="E_PY"))


def test_dead_letters_listed_and_redriven_to_the_owner_only(redis, admin_daemon, subscribers):
    stub = admin_pb2_grpc.AdminStub(admin_daemon.channel)
    handler = admin_pb2.HandlerRef(channel="py.admin", handler_id="A")
    a = subscribers(admin_daemon, channel="py.admin", handler_id="A")
    b = subscribers(admin_daemon, channel="py.admin", handler_id="B")
    ids = publish(admin_daemon, "py.admin", [b'{"k":1}', b'{"k":2}'])
    assert a.wait_deliveries(2) and b.wait_deliveries(2)
    b.ack_all()
    a.verbs([terminate(d.delivery_id) for d in a.snapshot()])
    r = redis.client()
    assert wait_for(lambda: r("XLEN", "py.admin.A.dlq") == 2, WAIT)

    with pytest.raises(grpc.RpcError) as err:
        stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(handler=handler), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(handler=handler), timeout=10,
                             metadata=[("authorization", "Bearer wrong-token-0123456")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    page = stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(handler=handler),
                                timeout=10, metadata=AUTH)
    assert [d.payload for d in page.dead_letters] == [b'{"k":1}', b'{"k":2}']
    assert [d.original_entry_id for d in page.dead_letters] == ids
    assert {d.reason for d in page.dead_letters} == {"terminated"}
    assert {d.last_error for d in page.dead_letters} == {"rejected by python"}
    assert page.next_cursor == ""
    assert stub.CountDeadLetters(admin_pb2.CountDeadLettersRequest(handler=handler),
                                 timeout=10, metadata=AUTH).count == 2

    dry = stub.RedriveDeadLetters(admin_pb2.RedriveDeadLettersRequest(
        handler=handler, all=True, dry_run=True), timeout=10, metadata=AUTH)
    assert list(dry.would_move) == [d.entry_id for d in page.dead_letters]
    assert r("XLEN", "py.admin.A.dlq") == 2

    started = stub.RedriveDeadLetters(admin_pb2.RedriveDeadLettersRequest(
        handler=handler, all=True, reset_attempts=True), timeout=10, metadata=AUTH)
    job_id = started.job.job_id

    def finished():
        job = stub.GetRedriveJob(admin_pb2.GetRedriveJobRequest(job_id=job_id), timeout=10,
                                 metadata=AUTH)
        return job if job.state == admin_pb2.RedriveJob.SUCCEEDED else None
    assert wait_for(finished, WAIT)
    job = finished()
    assert (job.total, job.moved, job.skipped, job.failed) == (2, 2, 0, 0)
    assert a.wait_deliveries(4)
    again = a.snapshot()[2:]
    assert [d.payload for d in again] == [b'{"k":1}', b'{"k":2}']
    assert [d.attempt for d in again] == [1, 1]
    assert {d.stream for d in again} == {"py.admin.A.retry"}
    a.ack_all()
    assert r("XLEN", "py.admin.A.dlq") == 0
    # B, the other handler of the channel, sees nothing again.
    assert not b.wait_deliveries(3, timeout=WINDOW)


def test_bad_admin_requests_have_precise_statuses(admin_daemon):
    stub = admin_pb2_grpc.AdminStub(admin_daemon.channel)
    cases = [
        (stub.ListDeadLetters, admin_pb2.ListDeadLettersRequest(
            handler=admin_pb2.HandlerRef(channel="py.x", handler_id="A"), page_size=5000),
         grpc.StatusCode.INVALID_ARGUMENT),
        (stub.CountDeadLetters, admin_pb2.CountDeadLettersRequest(
            handler=admin_pb2.HandlerRef(channel="py.x", handler_id="nobody")),
         grpc.StatusCode.NOT_FOUND),
        (stub.GetRedriveJob, admin_pb2.GetRedriveJobRequest(job_id="xyz"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (stub.CancelRedriveJob, admin_pb2.CancelRedriveJobRequest(job_id="00000000000000aa"),
         grpc.StatusCode.NOT_FOUND),
        (stub.PurgeDeadLetters, admin_pb2.PurgeDeadLettersRequest(
            handler=admin_pb2.HandlerRef(channel="", handler_id="A")),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for method, request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=10, metadata=AUTH)
        assert err.value.code() == code, (request, err.value.details())
