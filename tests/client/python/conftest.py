"""Fixtures of the redrive Python client tests (ctest python_client_test):
the e2e suite's redis-server and redrived fixtures (tests/e2e/python/
conftest.py, loaded under another module name, not copied), and `harness`,
which runs a Worker or an AsyncWorker (parametrized "sync" / "async") with
instrumented handlers. The package under test is client/python (PYTHONPATH).
"""

import asyncio
import importlib.util
import os
import threading
import time

import pytest

import redrive

_E2E = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e", "python",
                    "conftest.py")
_spec = importlib.util.spec_from_file_location("redrive_e2e_fixtures", _E2E)
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

# The shared fixtures, re-exported so pytest finds them here.
redis = e2e.redis
daemon_factory = e2e.daemon_factory
daemon = e2e.daemon
wait_for = e2e.wait_for
free_port = e2e.free_port
Daemon = e2e.Daemon

WAIT = 30.0  # seconds: the bound of every wait on a condition


class Calls:
    """What the handlers saw: every call, and how many ran at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []     # (payload, attempt, max_attempts, previous_error)
        self.done = []      # payloads whose handler returned normally
        self.running = 0
        self.max_running = 0

    def enter(self, msg):
        with self.lock:
            self.calls.append((msg.payload, msg.attempt, msg.max_attempts, msg.previous_error))
            self.running += 1
            self.max_running = max(self.max_running, self.running)

    def leave(self, msg, ok):
        with self.lock:
            self.running -= 1
            if ok:
                self.done.append(msg.payload)

    def count(self):
        with self.lock:
            return len(self.calls)

    def done_count(self):
        with self.lock:
            return len(self.done)


class Harness:
    """One Worker ("sync") or AsyncWorker ("async", on its own loop thread).
    handle(..., body=f): f(msg) runs in the handler (may raise) and returns
    the seconds the handler then sleeps (time.sleep / asyncio.sleep)."""

    def __init__(self, kind, target, **worker_args):
        self.kind = kind
        self.target = target
        self.worker_args = worker_args
        self.calls = Calls()
        self._handlers = []
        self.worker = None
        self._loop = None
        self._thread = None

    def handle(self, channel, handler_id, body=lambda m: 0, **kw):
        self._handlers.append((channel, handler_id, body, kw))

    def _sync_fn(self, body):
        calls = self.calls

        def fn(msg):
            calls.enter(msg)
            ok = False
            try:
                delay = body(msg)
                if delay:
                    time.sleep(delay)
                ok = True
            finally:
                calls.leave(msg, ok)
        return fn

    def _async_fn(self, body):
        calls = self.calls

        async def fn(msg):
            calls.enter(msg)
            ok = False
            try:
                delay = body(msg)
                if delay:
                    await asyncio.sleep(delay)
                ok = True
            finally:
                calls.leave(msg, ok)
        return fn

    def start(self):
        if self.kind == "sync":
            self.worker = redrive.Worker(self.target, **self.worker_args)
            for channel, hid, body, kw in self._handlers:
                self.worker.handle(channel, hid, self._sync_fn(body), **kw)
            self.worker.start()
            assert self.worker.wait_registered(WAIT), "the worker did not register"
            return
        ready = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def setup():
                self.worker = redrive.AsyncWorker(self.target, **self.worker_args)
                for channel, hid, body, kw in self._handlers:
                    self.worker.handle(channel, hid, self._async_fn(body), **kw)
                await self.worker.start()
                ready.set()
            self._loop.create_task(setup())
            self._loop.run_forever()
            self._loop.close()
        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert ready.wait(WAIT), "the async worker did not start"
        ok = asyncio.run_coroutine_threadsafe(self.worker.wait_registered(WAIT),
                                              self._loop).result(WAIT + 5)
        assert ok, "the async worker did not register"

    def stop(self, grace=10.0):
        if self.worker is None:
            return
        if self.kind == "sync":
            self.worker.stop(grace)
        else:
            asyncio.run_coroutine_threadsafe(self.worker.stop(grace),
                                             self._loop).result(grace + 30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self.worker = None

    def stats(self):
        return self.worker.stats()

    def registered(self, channel, handler_id):
        return self.worker.registrations()["%s/%s" % (channel, handler_id)]


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


@pytest.fixture
def harnesses():
    made = []

    def make(kind, target, **worker_args):
        h = Harness(kind, target, **worker_args)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop(grace=2.0)
