"""Every script of daemon/lua/ runs as it is with `redis-cli --eval`, against
a private redis-server, and answers each documented result code (the
contract at the top of each file). Run by ctest as `lua_cli_test`."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

REDIS_SERVER = os.environ.get("REDRIVE_REDIS_SERVER", "redis-server")
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
LUA_DIR = os.environ["REDRIVE_LUA_DIR"]
ID = re.compile(r"^\d+-\d+$")


@pytest.fixture(scope="module")
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
    work = tempfile.mkdtemp(prefix="redrive-lua-")
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run([REDIS_CLI, "-p", str(p), "ping"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    yield p
    server.terminate()
    server.wait(timeout=10)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture()
def r(port):
    """r(*args) runs one command; r.eval(name, keys, args) runs daemon/lua/NAME.lua."""

    class Cli:
        def __call__(self, *args):
            out = subprocess.run([REDIS_CLI, "-p", str(port), *map(str, args)],
                                 capture_output=True, text=True, timeout=30, check=True)
            return out.stdout.splitlines()

        def eval(self, name, keys, args):
            path = os.path.join(LUA_DIR, name + ".lua")
            return self("--eval", path, *keys, ",", *args)

        def one(self, *args):
            lines = self(*args)
            assert len(lines) == 1, lines
            return lines[0]

    cli = Cli()
    cli("FLUSHALL")
    return cli


def pending_entry(r, stream="s", group="g", consumer="c1", value="v"):
    """One entry of `stream`, read by `consumer` of `group` (pending under it)."""
    entry = r.one("XADD", stream, "*", "__data__", value)
    r("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
    r("XREADGROUP", "GROUP", group, consumer, "COUNT", "10", "STREAMS", stream, ">")
    return entry


def owner(r, stream, group, entry):
    return r("XPENDING", stream, group, entry, entry, "1")[1]


def now_ms(r):
    sec, usec = r("TIME")
    return int(sec) * 1000 + int(usec) // 1000


def test_schedule_retry(r):
    e = pending_entry(r)
    assert r.eval("schedule_retry", ["s", "due"], ["g", e, "other", "g:scheduled", "500", "m"]) == ["0"]
    assert owner(r, "s", "g", e) == "c1" and r("ZCARD", "due") == ["0"]
    before = now_ms(r)
    due = int(r.eval("schedule_retry", ["s", "due"], ["g", e, "c1", "g:scheduled", "500", "m"])[0])
    assert before + 500 <= due <= now_ms(r) + 500
    assert owner(r, "s", "g", e) == "g:scheduled"
    assert r("ZSCORE", "due", "m") == [str(due)]


def test_move_due(r):
    e = pending_entry(r, consumer="g:scheduled")
    keys = ["s", "s.h.retry", "due"]
    args = ["g", e, "m", "h-retry", "g:scheduled", "__data__", "again"]
    assert r.eval("move_due", keys, args) == ["0"]  # no member
    r("ZADD", "due", now_ms(r) + 60000, "m")
    assert r.eval("move_due", keys, args) == ["-3"]  # not due yet
    r("ZADD", "due", "0", "m")
    [moved] = r.eval("move_due", keys, args)
    assert ID.match(moved)
    assert r("XRANGE", "s.h.retry", "-", "+") == [moved, "__data__", "again"]
    assert r("XPENDING", "s", "g")[0] == "0" and r("ZCARD", "due") == ["0"]
    assert r("XINFO", "GROUPS", "s.h.retry")[1] == "h-retry"
    # Settled meanwhile: the member is dropped, nothing else changes.
    e2 = r.one("XADD", "s", "*", "__data__", "w")
    r("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "s", ">")
    r("ZADD", "due", "0", "m2")
    assert r.eval("move_due", keys, ["g", e2, "m2", "h-retry", "g:scheduled", "f", "x"]) == ["-1"]
    assert r("ZCARD", "due") == ["0"] and r("XLEN", "s.h.retry") == ["1"]


def test_dead_letter(r):
    e = pending_entry(r)
    base = ["g", e, "c1"]
    assert r.eval("dead_letter", ["s", "dlq"], ["g", e, "c2", "0", "hold", "f", "x"]) == ["0"]
    r("XADD", "dlq", "*", "old", "1")
    assert r.eval("dead_letter", ["s", "dlq"], base + ["1", "hold", "f", "x"]) == ["-2"]
    assert r("XLEN", "dlq") == ["1"] and owner(r, "s", "g", e) == "c1"
    dead, evicted = r.eval("dead_letter", ["s", "dlq"], base + ["1", "evict", "f", "x"])
    assert ID.match(dead) and evicted == "1"
    assert r("XRANGE", "dlq", "-", "+") == [dead, "f", "x"]
    assert r("XPENDING", "s", "g")[0] == "0"
    e2 = pending_entry(r, value="w")
    dead2, evicted2 = r.eval("dead_letter", ["s", "dlq"], ["g", e2, "", "0", "hold", "f", "y"])
    assert ID.match(dead2) and evicted2 == "0" and r("XLEN", "dlq") == ["2"]


def test_touch(r):
    e = pending_entry(r)
    assert r.eval("touch", ["s"], ["g", "c2", "", e]) == ["0"]
    assert r.eval("touch", ["s"], ["g", "c1", "86400000", e]) == ["1"]
    assert int(r("XPENDING", "s", "g", "-", "+", "1")[2]) >= 86400000
    assert r.eval("touch", ["s"], ["g", "c1", "", e, "0-1"]) == ["1"]
    assert int(r("XPENDING", "s", "g", "-", "+", "1")[2]) < 60000


def test_delete_idle_consumer(r):
    pending_entry(r)
    r("XGROUP", "CREATECONSUMER", "s", "g", "spare")
    assert r.eval("delete_idle_consumer", ["s"], ["g", "c1"]) == ["0"]
    assert r.eval("delete_idle_consumer", ["s"], ["g", "spare"]) == ["1"]
    names = [line for line in r("XINFO", "CONSUMERS", "s", "g") if line in ("c1", "spare")]
    assert names == ["c1"]


def test_trim_retry(r):
    assert r.eval("trim_retry", ["none"], ["10000", "0"]) == ["0", "", "0"]
    ids = [r.one("XADD", "s.h.retry", "*", "f", str(i)) for i in range(5)]
    r("XGROUP", "CREATE", "s.h.retry", "h-retry", "0")
    r("XREADGROUP", "GROUP", "h-retry", "c", "COUNT", "5", "STREAMS", "s.h.retry", ">")
    r("XACK", "s.h.retry", "h-retry", *ids[:3])
    # Pending ids[3] holds back the trim: only the three acked entries go.
    removed, minid, capped = r.eval("trim_retry", ["s.h.retry"], ["10000", "0"])
    assert (removed, minid, capped) == ("3", ids[3], "0")
    assert r("XLEN", "s.h.retry") == ["2"]
    # The retention keeps young entries even when acknowledged.
    r("XACK", "s.h.retry", "h-retry", *ids[3:])
    removed, _, capped = r.eval("trim_retry", ["s.h.retry"], ["10000", "3600000"])
    assert (removed, capped) == ("0", "1") and r("XLEN", "s.h.retry") == ["2"]


def test_purge(r):
    for i in range(3):
        r("XADD", "dlq", "*", "f", str(i))
    assert r.eval("purge", ["dlq"], ["2"]) == ["-1", "3"]
    assert r("XLEN", "dlq") == ["3"]
    assert r.eval("purge", ["dlq"], ["3"]) == ["3"]
    assert r("EXISTS", "dlq") == ["0"]


def test_redrive_step(r):
    dead = r.one("XADD", "dlq", "*", "__data__", "x")
    r("HSET", "job", "state", "RUNNING", "owner", "o", "cursor", "0")
    step = [dead, "move", "2", "__data__", "x"]
    keys = ["job", "dlq", "target"]
    assert r.eval("redrive_step", keys, ["other", "0", "tg", "1"] + step) == ["-1"]
    assert r.eval("redrive_step", keys, ["o", "5", "tg", "1"] + step) == ["-2"]
    r("SET", "notastream", "1")
    assert r.eval("redrive_step", ["job", "dlq", "notastream"], ["o", "0", "tg", "1"] + step) == ["-3"]
    assert r.eval("redrive_step", keys, ["o", "0", "tg", "1"] + step) == ["1", "0", "0"]
    assert r("XLEN", "dlq") == ["0"] and r("XRANGE", "target", "-", "+")[1:] == ["__data__", "x"]
    assert r("HGET", "job", "cursor") == ["1"] and r("HGET", "job", "moved") == ["1"]
    # Gone meanwhile: skipped.
    assert r.eval("redrive_step", keys, ["o", "1", "tg", "1"] + step) == ["0", "1", "0"]


def test_redrive_step_record_form(r):
    # Step-record form (Redis Cluster): owner '' and KEYS[1] the record.
    dead = [r.one("XADD", "{c}.dlq", "*", "__data__", str(i)) for i in range(3)]
    keys = ["{c}.dlq:redrive:j", "{c}.dlq", "{c}.h.retry"]

    def step(cursor, ids):
        argv = ["", str(cursor), "h-retry", str(len(ids))]
        for i in ids:
            argv += [dead[i], "move", "2", "__data__", str(i)]
        return r.eval("redrive_step", keys, argv + ["60000"])

    assert step(0, [0, 1]) == ["2", "0", "0"]
    assert r("HGETALL", keys[0]) == ["from", "0", "to", "2", "moved", "2", "skipped", "0",
                                     "failed", "0"]
    assert 0 < int(r.one("PTTL", keys[0])) <= 60000
    assert r("XLEN", "{c}.dlq") == ["1"] and r("XLEN", "{c}.h.retry") == ["2"]
    # The same step again (a lost reply, a second daemon): nothing moves, the
    # record is returned for the hand-over.
    assert step(0, [0, 1]) == ["-4", "0", "2", "2", "0", "0"]
    assert step(1, [1]) == ["-4", "0", "2", "2", "0", "0"]
    assert r("XLEN", "{c}.h.retry") == ["2"]
    assert step(2, [2]) == ["1", "0", "0"]
    assert r("HMGET", keys[0], "from", "to") == ["2", "3"]
    assert r("XLEN", "{c}.dlq") == ["0"] and r("XLEN", "{c}.h.retry") == ["3"]
    # The job hash is not read in this form: no 'job' key exists.
    assert r("EXISTS", "job") == ["0"]


def test_job_transition_advance(r):
    adv = lambda owner, frm, to, m, s, f: r.eval(  # noqa: E731
        "job_transition", ["job", "ids"], ["advance", owner, frm, "", "0", to, m, s, f])
    r("HSET", "job", "state", "RUNNING", "owner", "o", "cursor", "4", "moved", "1")
    assert adv("x", "4", "6", "2", "0", "0") == ["0"]  # not the owner
    assert adv("o", "3", "6", "2", "0", "0") == ["-2"]  # cursor elsewhere
    assert adv("o", "4", "6", "1", "1", "0") == ["1"]
    assert r("HMGET", "job", "cursor", "moved", "skipped", "failed") == ["6", "2", "1", "0"]
    assert adv("o", "4", "6", "1", "1", "0") == ["-2"]  # handed over once only
    r("HSET", "job", "state", "CANCELLED")
    assert adv("o", "6", "8", "2", "0", "0") == ["0"]


def test_job_transition(r):
    assert r.eval("job_transition", ["job", "ids"], ["heartbeat", "o", "", "", "1000"]) == ["-1"]
    r("HSET", "job", "state", "RUNNING", "owner", "o", "heartbeat_ms", "0")
    r("RPUSH", "ids", "1-0")
    assert r.eval("job_transition", ["job", "ids"], ["heartbeat", "x", "", "", "1000"]) == ["0"]
    assert r.eval("job_transition", ["job", "ids"], ["heartbeat", "o", "", "", "1000"]) == ["1"]
    assert r.eval("job_transition", ["job", "ids"], ["claim", "p", "3600000", "", "1000"]) == ["0"]
    assert r.eval("job_transition", ["job", "ids"], ["cancel", "", "", "", "60000"]) == ["1"]
    assert r("HGET", "job", "state") == ["CANCELLED"]
    assert 0 < int(r.one("PTTL", "ids")) <= 60000
    assert r.eval("job_transition", ["job", "ids"], ["cancel", "", "", "", "60000"]) == ["0"]


def test_legacy_move(r):
    e = pending_entry(r, stream="s.retry", group="h")
    args = ["h", e, "h-retry", "pending", "", "__data__", "x"]
    [moved] = r.eval("legacy_move", ["s.retry", "s.h.retry"], args)
    assert ID.match(moved) and r("XPENDING", "s.retry", "h")[0] == "0"
    assert r.eval("legacy_move", ["s.retry", "s.h.retry"], args) == ["0"]
    unread = r.one("XADD", "s.retry", "*", "__data__", "y")
    stale = ["h", unread, "h-retry", "unread", "0-1", "__data__", "y"]
    assert r.eval("legacy_move", ["s.retry", "s.h.retry"], stale) == ["0"]
    fresh = ["h", unread, "h-retry", "unread", e, "__data__", "y"]
    assert ID.match(r.eval("legacy_move", ["s.retry", "s.h.retry"], fresh)[0])
    assert r("XLEN", "s.h.retry") == ["2"]


def test_delete_handler(r):
    pending_entry(r, stream="orders", group="h")
    r("XADD", "orders.h.dlq", "*", "f", "x")
    keys = ["orders", "orders.h.retry", "orders.h.retry.due", "orders.h.dlq"]
    assert r.eval("delete_handler", keys, ["h", "h-retry", "0", "0", "0"]) == ["-1", "1", "1"]
    assert r.eval("delete_handler", keys, ["h", "h-retry", "1", "0", "1"]) == ["-2", "1", "1"]
    out = r.eval("delete_handler", keys, ["h", "h-retry", "1", "1", "1"])
    assert out == ["1", "1", "1", "1", "0", "orders.h.dlq"]
    assert r("XINFO", "GROUPS", "orders") == [""]  # redis-cli prints an empty array so
    assert r("EXISTS", "orders.h.dlq") == ["0"]
    assert r("XLEN", "orders") == ["1"]
