"""Fixtures for the TLS end-to-end tests (ctest `tls_e2e_test`): certificates
made with the openssl CLI at run time in a temporary directory (never
committed), redrived started with TLS flags, and gRPC channels with and
without TLS. The Redis harness and wait_for come from tests/e2e/python."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import tempfile

import grpc
import pytest

_spec = importlib.util.spec_from_file_location(
    "redrive_e2e_python",
    os.path.join(os.path.dirname(__file__), "..", "python", "conftest.py"))
_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_py)
wait_for = _py.wait_for
free_port = _py.free_port
RedisServer = _py.RedisServer

DAEMON = os.environ["REDRIVE_DAEMON_BINARY"]
REDRIVECTL = os.environ["REDRIVE_REDRIVECTL_BINARY"]
OPENSSL = shutil.which("openssl") or "openssl"
WAIT = 15.0  # seconds: the bound of every wait on a condition


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, **kwargs)


class Pki:
    """A throwaway PKI in a temporary directory: CAs and leaf certificates
    (EC P-256) made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name):
        crt, key = self.path(name + ".crt"), self.path(name + ".key")
        run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name])
        return crt, key

    def leaf(self, ca, name, serial, usage="serverAuth", out_dir=None):
        """A certificate for CN=name with the given serial, signed by the CA
        `ca` (its name); SAN localhost and 127.0.0.1. Returns (crt, key)."""
        out_dir = out_dir or self.dir
        crt, key = os.path.join(out_dir, name + ".crt"), os.path.join(out_dir, name + ".key")
        csr, ext = self.path(name + ".csr"), self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=%s\n" % usage)
        run([OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name])
        run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.path(ca + ".crt"),
             "-CAkey", self.path(ca + ".key"), "-set_serial", str(serial), "-days", "1",
             "-extfile", ext, "-out", crt])
        return crt, key


def read(path):
    with open(path, "rb") as f:
        return f.read()


def served_serial(port):
    """The serial of the certificate the server on 127.0.0.1:port presents,
    as `openssl x509 -serial` prints it ("serial=03E9"); None when the
    handshake fails."""
    hello = subprocess.run(
        [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    parsed = subprocess.run([OPENSSL, "x509", "-noout", "-serial"], input=hello.stdout,
                            capture_output=True, timeout=10)
    return parsed.stdout.decode().strip() if parsed.returncode == 0 else None


def tls_channel(port, ca, cert=None, key=None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None)
    return grpc.secure_channel("127.0.0.1:%d" % port, creds)


class Daemon:
    """redrived with the given extra flags, listening on 127.0.0.1:0, a Unix
    socket and a health-only port; `info` is its ready file."""

    def __init__(self, redis_url, extra_args):
        self.dir = tempfile.mkdtemp(prefix="redrive-tls-daemon-")
        ready = os.path.join(self.dir, "ready.json")
        self.socket = os.path.join(self.dir, "redrive.sock")
        self.log_path = os.path.join(self.dir, "redrived.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DAEMON, "--grpc-listen=127.0.0.1:0,unix:" + self.socket,
             "--health-listen=127.0.0.1:0", "--ready-file=" + ready,
             "--health-interval-ms=100", "--admin-auth=disabled",
             "--redis-url=" + redis_url, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

        def is_ready():
            if self.proc.poll() is not None:
                raise AssertionError("redrived exited: " + self.log_text())
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        self.info = wait_for(is_ready, timeout=WAIT)
        assert self.info, "redrived did not become ready"
        self.port = int(self.info["grpc"][0].rsplit(":", 1)[1])
        self.health_port = int(self.info["health"].rsplit(":", 1)[1])

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pki():
    directory = tempfile.mkdtemp(prefix="redrive-tls-pki-")
    yield Pki(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def daemon_factory(redis):
    daemons = []

    def make(*extra_args, redis_url=None):
        d = Daemon(redis_url or "redis://127.0.0.1:%d/0" % redis.port, extra_args)
        daemons.append(d)
        return d
    yield make
    for d in daemons:
        d.stop()
