"""Fixtures for the Python end-to-end tests: a private redis-server, the real
redrived binary, and stubs generated from our .proto files at build time
(PYTHONPATH points at build/python). Run by ctest as `python_e2e_test`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

REDIS_SERVER = os.environ.get("REDRIVE_REDIS_SERVER", "redis-server")
DAEMON = os.environ["REDRIVE_DAEMON_BINARY"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=15.0, interval=0.01):
    """Polls condition() until it is truthy or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


class Resp:
    """A minimal RESP2 client, enough to inspect what redrived wrote."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad RESP reply %r" % line)

    def __call__(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self._reply()


class RedisServer:
    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)  # appended to redis-server's arguments
        self.dir = tempfile.mkdtemp(prefix="redrive-py-redis-")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--logfile", os.path.join(self.dir, "redis.log"), *self.extra_args])

        def pong():
            try:
                c = Resp(self.port)
                try:
                    return c("PING") == "PONG"
                finally:
                    c.close()
            except OSError:
                return False
        assert wait_for(pong), "redis-server did not start"

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def client(self):
        return Resp(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    def __init__(self, redis_url, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="redrive-py-daemon-")
        ready = os.path.join(self.dir, "ready.json")
        self.log_path = os.path.join(self.dir, "redrived.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DAEMON, "--grpc-listen=127.0.0.1:0", "--ready-file=" + ready,
             "--health-interval-ms=100", "--redis-url=" + redis_url, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

        def is_ready():
            if self.proc.poll() is not None:
                raise AssertionError("redrived exited: " + open(self.log_path).read())
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        info = wait_for(is_ready)
        assert info, "redrived did not become ready"
        self.info = info
        self.address = info["grpc"][0]
        self.channel = grpc.insecure_channel(self.address)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def daemon_factory(redis):
    daemons = []

    def make(*extra_args):
        d = Daemon("redis://127.0.0.1:%d/0" % redis.port, extra_args)
        daemons.append(d)
        return d
    yield make
    for d in daemons:
        d.stop()


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()
