"""examples/python/order_service runs with its one command (`run.py`, no
arguments, no PYTHONPATH) against redrived started by scripts/serve.sh (what
scripts/run.sh runs after building), in a private XDG_RUNTIME_DIR: the
default Unix socket and the Admin token file are run.sh's own. Asserts the
example's output and the dead letters it left, through the Admin API."""

import os
import signal
import subprocess
import tempfile

import grpc

from redrive.v1 import admin_pb2, admin_pb2_grpc

from conftest import WAIT, e2e, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXAMPLE = os.path.join(ROOT, "examples", "python", "order_service", "run.py")


def test_order_service_example_output_and_dead_letters(tmp_path):
    xdg = tempfile.mkdtemp(prefix="rdr-ex-", dir="/tmp")  # short: socket paths are bounded
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDRIVE_", "PYTHON"))}
    env.update(XDG_RUNTIME_DIR=xdg, REDRIVED=e2e.DAEMON)
    socket = os.path.join(xdg, "redrive", "redrive.sock")
    ready = os.path.join(xdg, "ready.json")
    log = open(os.path.join(xdg, "serve.log"), "wb")
    serve = subprocess.Popen(
        ["bash", os.path.join(ROOT, "scripts", "serve.sh"), "--grpc-listen=unix:" + socket,
         "--metrics-listen=", "--embedded-redis-binary=" + e2e.REDIS_SERVER,
         "--ready-file=" + ready], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        assert wait_for(lambda: os.path.exists(ready) or serve.poll() is not None, WAIT)
        assert serve.poll() is None, open(os.path.join(xdg, "serve.log")).read()
        proc = subprocess.run(["/usr/bin/python3", EXAMPLE], env=env, cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        out = proc.stdout.decode()
        assert proc.returncode == 0, out + proc.stderr.decode()
        lines = out.splitlines()
        assert lines[0] == "publishing 5 orders to shop.orders"
        assert lines[-2:] == ["charged: order-1, order-3",
                              "dead-lettered: order-2, order-4, order-5"]
        bad = {"order-2": 0, "order-5": -4}
        expected = {"order-1: charged 2 x widget", "order-3: charged 1 x gizmo",
                    "order-4: not JSON, dead-lettered without retry"}
        for cid, q in bad.items():
            err = "quantity must be positive, got %d" % q
            expected |= {"%s: attempt 1/3 failed (%s), will be retried" % (cid, err),
                         "%s: attempt 2/3 failed (%s), will be retried" % (cid, err),
                         "%s: attempt 3/3 failed (%s): dead-lettered" % (cid, err)}
        assert sorted(lines[1:-2]) == sorted(expected)

        token = open(os.path.join(xdg, "redrive", "admin-token")).read().strip()
        with grpc.insecure_channel("unix:" + socket) as ch:
            stub = admin_pb2_grpc.AdminStub(ch)

            def letters():
                return stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(
                    handler=admin_pb2.HandlerRef(channel="shop.orders",
                                                 handler_id="order-service-py"),
                    page_size=100, preview_bytes=1024),
                    metadata=(("authorization", "Bearer " + token),)).dead_letters
            assert wait_for(lambda: len(letters()) == 3, WAIT)
            got = sorted((dl.payload, dl.reason, dl.attempts, dl.last_error, dl.last_error_code)
                         for dl in letters())
        # (The Admin API shows JSON payloads re-encoded compactly.)
        assert got == sorted([
            (b'{"id":2,"item":"gadget","quantity":0}', "max_retries", 3,
             "quantity must be positive, got 0", "ValueError"),
            (b'{"id":5,"item":"doohickey","quantity":-4}', "max_retries", 3,
             "quantity must be positive, got -4", "ValueError"),
            (b"not json at all", "terminated", 1, "order is not JSON", "BAD_JSON"),
        ]), got
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
        log.close()
        subprocess.run(["rm", "-rf", xdg])
