"""TLS on redrived's TCP gRPC listeners (R-H3), end to end with the real
daemon: plaintext refused and TLS served, mTLS, rotation of the files
without a restart, start-up refusals; Python grpcio and redrivectl as
clients. The Unix socket and --health-listen stay plaintext."""

import os
import subprocess

import grpc

import health_pb2
import health_pb2_grpc
from redrive.v1 import broker_pb2, broker_pb2_grpc

from conftest import (DAEMON, REDRIVECTL, WAIT, free_port, read, served_serial, tls_channel,
                      wait_for)

SERVING = health_pb2.HealthCheckResponse.SERVING


def check(channel):
    """Health/Check "" through `channel`: its status, or the RpcError's code."""
    try:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5).status
    except grpc.RpcError as err:
        return err.code()


def publish(channel, payload):
    """Publish to `orders`: the entry id, or the RpcError's code."""
    try:
        return broker_pb2_grpc.BrokerStub(channel).Publish(
            broker_pb2.PublishRequest(channel="orders",
                                      message=broker_pb2.OutgoingMessage(payload=payload)),
            timeout=10).entry_id
    except grpc.RpcError as err:
        return err.code()


def redrivectl(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    return subprocess.run([REDRIVECTL, "--timeout", "5", *args], capture_output=True,
                          timeout=30, env=env)


def entries(redis):
    return [fields for _, fields in redis.client()("XRANGE", "orders", "-", "+")]


def test_tls_listener_refuses_plaintext_and_serves_tls(pki, redis, daemon_factory):
    pki.ca("ca")
    crt, key = pki.leaf("ca", "server-1", 1001)
    d = daemon_factory("--tls-cert=" + crt, "--tls-key=" + key)
    tls = tls_channel(d.port, pki.path("ca.crt"))
    assert wait_for(lambda: check(tls) == SERVING, timeout=WAIT)
    entry_id = publish(tls, b"over-tls")
    assert isinstance(entry_id, str) and entry_id
    assert len(entries(redis)) == 1

    # A plaintext client on the same TCP port never gets an answer.
    plain = grpc.insecure_channel("127.0.0.1:%d" % d.port)
    assert check(plain) == grpc.StatusCode.UNAVAILABLE
    assert publish(plain, b"plaintext") == grpc.StatusCode.UNAVAILABLE
    # A TLS client that trusts another CA refuses the server.
    pki.ca("other-ca")
    assert check(tls_channel(d.port, pki.path("other-ca.crt"))) == grpc.StatusCode.UNAVAILABLE
    # The Unix socket and the health-only port stay plaintext.
    assert check(grpc.insecure_channel("unix:" + d.socket)) == SERVING
    assert check(grpc.insecure_channel("127.0.0.1:%d" % d.health_port)) == SERVING
    assert served_serial(d.port) == "serial=03E9"
    assert "TCP with TLS, Unix sockets plaintext" in d.log_text()

    # redrivectl: with --tls-ca it publishes, without it the call is UNAVAILABLE (14).
    addr = "127.0.0.1:%d" % d.port
    ok = redrivectl("--addr", addr, "--tls-ca", pki.path("ca.crt"), "publish", "orders",
                    "--data", "from-redrivectl")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.decode().strip() != ""
    plain_ctl = redrivectl("--addr", addr, "publish", "orders", "--data", "x")
    assert plain_ctl.returncode == 14, plain_ctl.stderr
    # --tls-server-name: the certificate names localhost, not "redrive.example".
    wrong_name = redrivectl("--addr", addr, "--tls-ca", pki.path("ca.crt"),
                            "--tls-server-name", "redrive.example", "publish", "orders",
                            "--data", "x")
    assert wrong_name.returncode == 14, wrong_name.stderr
    right_name = redrivectl("--addr", addr, "--tls-ca", pki.path("ca.crt"),
                            "--tls-server-name", "localhost", "publish", "orders", "--data", "y")
    assert right_name.returncode == 0, right_name.stderr
    assert len(entries(redis)) == 3


def test_mtls_requires_a_client_certificate_from_the_client_ca(pki, redis, daemon_factory):
    pki.ca("ca")
    pki.ca("client-ca")
    pki.ca("rogue-ca")
    crt, key = pki.leaf("ca", "server-1", 1001)
    good_crt, good_key = pki.leaf("client-ca", "app", 7, usage="clientAuth")
    rogue_crt, rogue_key = pki.leaf("rogue-ca", "intruder", 8, usage="clientAuth")
    d = daemon_factory("--tls-cert=" + crt, "--tls-key=" + key,
                       "--tls-client-ca=" + pki.path("client-ca.crt"))
    ca = pki.path("ca.crt")
    good = tls_channel(d.port, ca, good_crt, good_key)
    assert wait_for(lambda: check(good) == SERVING, timeout=WAIT)
    assert isinstance(publish(good, b"mtls"), str)

    assert check(tls_channel(d.port, ca)) == grpc.StatusCode.UNAVAILABLE
    assert publish(tls_channel(d.port, ca), b"no-cert") == grpc.StatusCode.UNAVAILABLE
    assert check(tls_channel(d.port, ca, rogue_crt, rogue_key)) == grpc.StatusCode.UNAVAILABLE
    assert check(grpc.insecure_channel("127.0.0.1:%d" % d.port)) == grpc.StatusCode.UNAVAILABLE
    assert "TCP with mTLS, Unix sockets plaintext" in d.log_text()

    addr = "127.0.0.1:%d" % d.port
    ok = redrivectl("--addr", addr, "--tls-ca", ca, "--tls-cert", good_crt, "--tls-key", good_key,
                    "publish", "orders", "--data", "ctl-mtls")
    assert ok.returncode == 0, ok.stderr
    no_cert = redrivectl("--addr", addr, "--tls-ca", ca, "publish", "orders", "--data", "x")
    assert no_cert.returncode == 14, no_cert.stderr
    payloads = b"".join(b"".join(e) for e in entries(redis))
    assert b"mtls" in payloads and b"ctl-mtls" in payloads
    assert len(entries(redis)) == 2


def kubernetes_secret_dir(root, first):
    """The layout of a Kubernetes secret volume (what cert-manager's secrets
    become): tls.crt -> ..data/tls.crt, ..data -> a timestamped directory,
    swapped atomically on update."""
    os.symlink(first, os.path.join(root, "..data"))
    for name in ("tls.crt", "tls.key"):
        os.symlink(os.path.join("..data", name), os.path.join(root, name))


def swap_data(root, new_dir):
    tmp = os.path.join(root, "..data_tmp")
    os.symlink(new_dir, tmp)
    os.rename(tmp, os.path.join(root, "..data"))


def test_rotated_certificate_is_served_without_restart(pki, redis, daemon_factory):
    pki.ca("ca")
    root = os.path.join(pki.dir, "secret")
    for version in ("..v1", "..v2"):
        os.makedirs(os.path.join(root, version))
    for version, serial in (("..v1", 1001), ("..v2", 1002)):
        crt, key = pki.leaf("ca", "server-%d" % serial, serial,
                            out_dir=os.path.join(root, version))
        os.rename(crt, os.path.join(root, version, "tls.crt"))
        os.rename(key, os.path.join(root, version, "tls.key"))
    kubernetes_secret_dir(root, "..v1")
    cert, key = os.path.join(root, "tls.crt"), os.path.join(root, "tls.key")
    d = daemon_factory("--tls-cert=" + cert, "--tls-key=" + key, "--tls-reload-interval-ms=1000")
    ca = pki.path("ca.crt")
    before = tls_channel(d.port, ca)
    assert wait_for(lambda: check(before) == SERVING, timeout=WAIT)
    assert served_serial(d.port) == "serial=03E9"

    # 1. cert-manager / kubelet style: the ..data symlink is swapped.
    swap_data(root, "..v2")
    assert wait_for(lambda: served_serial(d.port) == "serial=03EA", timeout=WAIT), \
        served_serial(d.port)
    assert isinstance(publish(tls_channel(d.port, ca), b"after-swap"), str)
    # The connection made before the rotation goes on working.
    assert isinstance(publish(before, b"old-connection"), str)
    assert wait_for(lambda: "serial 03EA" in d.log_text(), timeout=WAIT)
    assert "TLS: new certificate in %s: subject CN=server-1002, serial 03EA" % cert in d.log_text()

    # 2. Rewritten in place (key first, then certificate).
    new_crt, new_key = pki.leaf("ca", "server-1003", 1003)
    with open(os.path.join(root, "..v2", "tls.key"), "wb") as f:
        f.write(read(new_key))
    with open(os.path.join(root, "..v2", "tls.crt"), "wb") as f:
        f.write(read(new_crt))
    assert wait_for(lambda: served_serial(d.port) == "serial=03EB", timeout=WAIT), \
        served_serial(d.port)
    assert isinstance(publish(tls_channel(d.port, ca), b"after-rewrite"), str)

    # 3. A file that cannot be read leaves the last certificate in service.
    os.rename(os.path.join(root, "..v2", "tls.key"), os.path.join(root, "..v2", "tls.key.away"))
    assert wait_for(lambda: "TLS: --tls-key: cannot read '%s'" % key in d.log_text(),
                    timeout=WAIT)
    assert served_serial(d.port) == "serial=03EB"
    assert check(tls_channel(d.port, ca)) == SERVING
    os.rename(os.path.join(root, "..v2", "tls.key.away"), os.path.join(root, "..v2", "tls.key"))

    # 4. A key that belongs to another certificate is logged, does not stop
    # the daemon, and (gRPC 1.51) fails new TLS connections until fixed;
    # fixing the files is picked up again.
    _, stray_key = pki.leaf("ca", "stray", 9)
    with open(os.path.join(root, "..v2", "tls.key"), "wb") as f:
        f.write(read(stray_key))
    assert wait_for(lambda: "does not match the certificate" in d.log_text(), timeout=WAIT)
    assert wait_for(lambda: check(tls_channel(d.port, ca)) == grpc.StatusCode.UNAVAILABLE,
                    timeout=WAIT)
    assert d.proc.poll() is None
    with open(os.path.join(root, "..v2", "tls.key"), "wb") as f:
        f.write(read(new_key))
    assert wait_for(lambda: check(tls_channel(d.port, ca)) == SERVING, timeout=WAIT)
    assert served_serial(d.port) == "serial=03EB"
    assert d.proc.poll() is None


def start_fails(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    p = subprocess.run([DAEMON, "--grpc-listen=127.0.0.1:%d" % free_port(), *args],
                       capture_output=True, timeout=30, env=env)
    return p.returncode, p.stderr.decode().strip()


def test_bad_tls_files_refuse_to_start_with_a_precise_message(pki):
    pki.ca("ca")
    crt, key = pki.leaf("ca", "server-1", 1001)
    _, other_key = pki.leaf("ca", "server-2", 1002)
    assert start_fails("--tls-cert=" + crt, "--tls-key=" + other_key) == (
        2, "redrived: --tls-key: the private key in '%s' does not match the certificate in "
           "'%s' (--tls-cert)" % (other_key, crt))
    assert start_fails("--tls-cert=" + key, "--tls-key=" + key) == (
        2, "redrived: --tls-cert: '%s' holds no PEM certificate (BEGIN CERTIFICATE)" % key)
    assert start_fails("--tls-cert=" + crt, "--tls-key=" + crt) == (
        2, "redrived: --tls-key: '%s' holds no PEM private key (or an encrypted one, which "
           "gRPC cannot use)" % crt)
    assert start_fails("--tls-cert=" + crt, "--tls-key=" + key, "--tls-client-ca=" + key) == (
        2, "redrived: --tls-client-ca: '%s' holds no PEM certificate (BEGIN CERTIFICATE)" % key)
    assert start_fails("--tls-cert=" + crt) == (
        2, "redrived: --tls-cert: needs --tls-key (the certificate's private key)")
    missing = os.path.join(pki.dir, "missing.crt")
    assert start_fails("--tls-cert=" + missing, "--tls-key=" + key) == (
        2, "redrived: --tls-cert: cannot read '%s': No such file or directory" % missing)
    assert start_fails("--redis-url=rediss://redis.example.com:6380/0")[0] == 2
    assert "hiredis 0.14" in start_fails("--redis-url=rediss://redis.example.com:6380/0")[1]
