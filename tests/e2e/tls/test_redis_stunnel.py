"""Redis over TLS through stunnel (deploy/stunnel/redis-tls-client.conf):
redis-server serves only TLS, stunnel4 runs the example config with its
addresses and CA file substituted, redrived uses the tunnel's plaintext
port. A Publish and a delivery go through it, and the entry is read back
with redis-cli over TLS. A server certificate from another CA is refused by
the tunnel, so the daemon never becomes ready."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import REDRIVECTL, WAIT, free_port, wait_for

REDIS_SERVER = os.environ.get("REDRIVE_REDIS_SERVER", "redis-server")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "deploy", "stunnel",
                      "redis-tls-client.conf")
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")


def redis_cli_tls(port, ca, *args):
    return subprocess.run(
        ["redis-cli", "--tls", "--cacert", ca, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, timeout=10)


class TlsRedis:
    """redis-server listening only on a TLS port (no plaintext port)."""

    def __init__(self, directory, crt, key, ca):
        self.port = free_port()
        self.ca = ca
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", crt, "--tls-key-file", key, "--tls-ca-cert-file", ca,
             "--tls-auth-clients", "no", "--dir", directory, "--save", "", "--appendonly", "no",
             "--logfile", os.path.join(directory, "redis.log")])
        assert wait_for(lambda: redis_cli_tls(self.port, ca, "PING").stdout == b"PONG\n",
                        timeout=WAIT), "TLS redis-server did not start"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Stunnel:
    """stunnel4 running deploy/stunnel/redis-tls-client.conf with the local
    port, the Redis address, its host name and the CA file substituted."""

    def __init__(self, directory, redis_port, ca):
        assert STUNNEL, "stunnel4 is not installed (scripts/deps.sh installs it)"
        with open(CONFIG) as f:
            text = f.read()
        self.port = free_port()
        replacements = [
            ("accept = 127.0.0.1:6380", "accept = 127.0.0.1:%d" % self.port),
            ("connect = redis.example.com:6379", "connect = 127.0.0.1:%d" % redis_port),
            ("checkHost = redis.example.com", "checkHost = localhost"),
            ("CAfile = /etc/redrive/redis-ca.crt", "CAfile = " + ca),
        ]
        for old, new in replacements:
            assert text.count(old) == 1, "the example config no longer has %r" % old
            text = text.replace(old, new)
        self.config = os.path.join(directory, "stunnel.conf")
        with open(self.config, "w") as f:
            f.write(text)
        self.log_path = os.path.join(directory, "stunnel.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([STUNNEL, self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        assert wait_for(lambda: "Configuration successful" in self.log_text(), timeout=WAIT), \
            self.log_text()

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def workdir():
    directory = tempfile.mkdtemp(prefix="redrive-stunnel-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_redis_tls_through_stunnel_carries_publish_and_delivery(pki, workdir, daemon_factory):
    pki.ca("redis-ca")
    crt, key = pki.leaf("redis-ca", "redis", 42)
    ca = pki.path("redis-ca.crt")
    redis = TlsRedis(workdir, crt, key, ca)
    tunnel = None
    try:
        tunnel = Stunnel(workdir, redis.port, ca)
        d = daemon_factory(redis_url="redis://127.0.0.1:%d/0" % tunnel.port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        addr = "unix:" + d.socket
        # A handler group from the start of the channel, then a publish it receives.
        pub = subprocess.run([REDRIVECTL, "--addr", addr, "publish", "orders.tls",
                              "--data", "through-stunnel"], capture_output=True, timeout=30,
                             env=env)
        assert pub.returncode == 0, pub.stderr
        entry_id = pub.stdout.decode().strip()
        assert re.fullmatch(r"\d+-\d+", entry_id), entry_id
        tail = subprocess.run([REDRIVECTL, "--addr", addr, "--timeout", "10", "tail",
                               "orders.tls", "--handler", "tls-reader", "--from-start",
                               "--count", "1", "--ack"], capture_output=True, timeout=60, env=env)
        assert tail.returncode == 0, tail.stderr
        line = tail.stdout.decode()
        assert line.startswith(entry_id + " attempt=1 ") and line.endswith("through-stunnel\n"), \
            line
        # The entry is in the TLS Redis, read over TLS; the group acknowledged it.
        xrange = redis_cli_tls(redis.port, ca, "XRANGE", "orders.tls", "-", "+")
        assert xrange.returncode == 0, xrange.stderr
        assert entry_id.encode() in xrange.stdout and b"through-stunnel" in xrange.stdout
        pending = redis_cli_tls(redis.port, ca, "XPENDING", "orders.tls", "tls-reader")
        assert pending.stdout.split(b"\n")[0] == b"0", pending.stdout
        assert "Service [redis] accepted connection" in tunnel.log_text()
    finally:
        if tunnel:
            tunnel.stop()
        redis.stop()


def test_stunnel_refuses_a_redis_certificate_from_another_ca(pki, workdir):
    pki.ca("redis-ca")
    pki.ca("impostor-ca")
    crt, key = pki.leaf("impostor-ca", "redis", 43)
    redis = TlsRedis(workdir, crt, key, pki.path("impostor-ca.crt"))
    tunnel = None
    try:
        tunnel = Stunnel(workdir, redis.port, pki.path("redis-ca.crt"))
        # redis-cli in plaintext through the tunnel: the TLS side fails, so no PONG.
        ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(tunnel.port), "PING"],
                              capture_output=True, timeout=10)
        assert b"PONG" not in ping.stdout
        assert wait_for(lambda: "certificate verify failed" in tunnel.log_text(), timeout=WAIT), \
            tunnel.log_text()
    finally:
        if tunnel:
            tunnel.stop()
        redis.stop()
