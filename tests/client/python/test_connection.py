"""Connection options of the redrive package against the real daemon: mTLS
on the TCP listener (certificates from tests/e2e/tls's openssl PKI helper)
together with the Broker bearer token (--broker-auth=token), for both
workers and the publisher; a missing or wrong token is UNAUTHENTICATED."""

import importlib.util
import os
import tempfile

import grpc
import pytest

import redrive

from conftest import WAIT, Daemon, Harness, wait_for

_spec = importlib.util.spec_from_file_location(
    "redrive_e2e_tls_fixtures",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e", "tls",
                 "conftest.py"))
tls_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tls_fixtures)

TOKEN = "py-broker-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """(target, Tls of a client the daemon accepts, daemon) over mTLS + token."""
    tmp = tmp_path_factory.mktemp("secured")
    pki = tls_fixtures.Pki(tempfile.mkdtemp(dir=str(tmp)))
    pki.ca("ca")
    pki.ca("client-ca")
    crt, key = pki.leaf("ca", "server", 11)
    client_crt, client_key = pki.leaf("client-ca", "app", 12, usage="clientAuth")
    token_file = tmp / "broker-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    redis = tls_fixtures.RedisServer()
    d = Daemon("redis://127.0.0.1:%d/0" % redis.port,
               ("--tls-cert=" + crt, "--tls-key=" + key,
                "--tls-client-ca=" + pki.path("client-ca.crt"), "--broker-auth=token",
                "--broker-token-file=%s" % token_file))
    tls = redrive.Tls(ca_file=pki.path("ca.crt"), cert_file=client_crt, key_file=client_key)
    yield d.address, tls
    d.stop()
    redis.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_workers_and_publisher_over_mtls_with_a_bearer_token(kind, secured):
    target, tls = secured
    channel = "py.client.tls." + kind
    h = Harness(kind, target, token=TOKEN, tls=tls)
    h.handle(channel, "tls")
    h.start()
    try:
        with redrive.Publisher(target, token=TOKEN, tls=tls) as pub:
            ids = pub.publish_batch(channel, [b"secret-1", b"secret-2"])
        assert wait_for(lambda: h.calls.done_count() == 2, WAIT)
        assert sorted(h.calls.done) == [b"secret-1", b"secret-2"] and len(ids) == 2
    finally:
        h.stop()


def test_a_missing_or_wrong_token_is_unauthenticated(secured):
    target, tls = secured
    with redrive.Publisher(target, token="wrong", tls=tls) as pub:
        with pytest.raises(redrive.RedriveError) as err:
            pub.publish("py.client.tls.refused", b"x")
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    worker = redrive.Worker(target, tls=tls)
    worker.handle("py.client.tls.refused", "refused", lambda m: None)
    worker.start()
    try:
        with pytest.raises(redrive.RedriveError) as err:
            worker.wait_registered(WAIT)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        worker.stop(1.0)


def test_tls_is_refused_on_a_unix_socket_target():
    with pytest.raises(ValueError):
        redrive.Worker("unix:/tmp/x.sock", tls=redrive.Tls())
