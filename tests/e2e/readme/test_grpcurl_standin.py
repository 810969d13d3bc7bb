"""The grpcurl stand-in (grpcurl.py) against the real daemon: grpcurl's syntax,
output and exit codes, and reflection as the only source of types. Part of
ctest's readme_test; uses the same sandbox (scripts/serve.sh) as the README
blocks."""

import json
import subprocess
import threading

import pytest

from test_readme import GRPCURL, Sandbox, wait_for

SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
            "redrive.v1.Admin", "redrive.v1.Broker"]


@pytest.fixture(scope="module")
def box():
    s = Sandbox()
    yield s
    s.close()


def grpcurl(box, *args, stdin=None):
    p = subprocess.run(["/usr/bin/python3", GRPCURL, *args], input=stdin, env=box.env,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_list_over_tcp_and_unix(box):
    rc, out, err = grpcurl(box, "-plaintext", box.address, "list")
    assert rc == 0 and out.split() == SERVICES, (out, err)
    rc, out, err = grpcurl(box, "-plaintext", "-unix", box.socket, "list")
    assert rc == 0 and out.split() == SERVICES, (out, err)
    rc, out, err = grpcurl(box, "-plaintext", box.address, "list", "redrive.v1.Broker")
    assert rc == 0 and out.split() == ["redrive.v1.Broker.Publish",
                                       "redrive.v1.Broker.PublishBatch",
                                       "redrive.v1.Broker.Subscribe",
                                       "redrive.v1.Broker.Tail"], (out, err)


def test_health_is_described_by_reflection(box):
    # grpcurl resolves grpc.health.v1.Health by reflection only: the daemon
    # must serve health.proto's descriptor (field bug of issue 10).
    rc, out, err = grpcurl(box, "-plaintext", box.address, "describe", "grpc.health.v1.Health")
    assert rc == 0, err
    assert out.startswith("grpc.health.v1.Health is a service:\n"), out
    assert "rpc Check ( .grpc.health.v1.HealthCheckRequest )" in out, out


def test_unknown_symbols_fail_like_grpcurl(box):
    rc, out, err = grpcurl(box, "-plaintext", box.address, "describe", "no.such.Thing")
    assert rc == 1
    assert err == 'Failed to resolve symbol "no.such.Thing": Symbol not found: no.such.Thing\n'
    rc, out, err = grpcurl(box, "-plaintext", box.address, "no.such.Service/Call")
    assert rc == 1
    assert 'target server does not expose service "no.such.Service"' in err, err
    rc, out, err = grpcurl(box, "-plaintext", box.address, "redrive.v1.Broker/Nope")
    assert rc == 1 and 'does not include a method named "Nope"' in err, err


def test_usage_errors_exit_2(box):
    assert grpcurl(box, "-plaintext", "-bogus", box.address, "list")[0] == 2
    assert grpcurl(box, box.address, "list")[0] == 2  # no TLS here: -plaintext required
    assert grpcurl(box, "-plaintext", box.address, "list", "a", "b")[0] == 2
    assert grpcurl(box, "-plaintext")[0] == 2


def test_unary_json_both_spellings_and_output_names(box):
    req = '{"channel":"standin","message":{"payload":"YQ==","contentType":"text/plain"}}'
    rc, out, err = grpcurl(box, "-plaintext", "-d", req, box.address,
                           "redrive.v1.Broker/Publish")
    assert rc == 0, err
    assert set(json.loads(out)) == {"entryId", "stream", "correlationId"}, out
    assert out.startswith('{\n  "entryId": "'), out
    req = '{"channel":"standin","message":{"payload":"YQ==","content_type":"text/plain"}}'
    rc, out, err = grpcurl(box, "-plaintext", "-keep-proto-names", "-d", req, box.address,
                           "redrive.v1.Broker/Publish")
    assert rc == 0 and "entry_id" in json.loads(out), (out, err)


def test_status_errors_exit_64_plus_code(box):
    rc, out, err = grpcurl(box, "-plaintext", "-d", '{"channel":".bad"}', box.address,
                           "redrive.v1.Broker/Publish")
    assert rc == 64 + 3, (rc, err)
    assert err.startswith("ERROR:\n  Code: InvalidArgument\n  Message: "), err
    token = open(box.token_file).read().strip()
    rc, out, err = grpcurl(box, "-plaintext", "-H", "authorization: Bearer " + "x" * 20,
                           "-d", "{}", box.address, "redrive.v1.Admin/ListHandlers")
    assert rc == 64 + 16 and "Code: Unauthenticated" in err, (rc, err)
    rc, out, err = grpcurl(box, "-plaintext", "-H", "authorization: Bearer " + token,
                           box.address, "redrive.v1.Admin/ListHandlers")
    assert rc == 0, err


def test_request_data_errors(box):
    rc, out, err = grpcurl(box, "-plaintext", "-d", '{"channel":"a"} {"channel":"b"}',
                           box.address, "redrive.v1.Broker/Publish")
    assert rc == 1 and "more than 1 message" in err, err
    rc, out, err = grpcurl(box, "-plaintext", "-d", '{"nope":1}', box.address,
                           "redrive.v1.Broker/Publish")
    assert rc == 1 and "error getting request data" in err, err


def test_bidi_sends_each_stdin_message_when_complete(box):
    # The second message is written only after the answer to the first came
    # back, so the stand-in must send messages as stdin delivers them (as
    # grpcurl does), not after end of input.
    p = subprocess.Popen(["/usr/bin/python3", GRPCURL, "-plaintext", "-d", "@", box.address,
                          "redrive.v1.Broker/Subscribe"], env=box.env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")))
    reader.start()
    try:
        p.stdin.write('{"register":{"channel":"standin.bidi","handler_id":"h",')
        p.stdin.flush()
        p.stdin.write('"auto_ack":true}}\n')
        p.stdin.flush()
        assert wait_for(lambda: any('"handlerId": "h"' in ln for ln in lines), 30), lines
        p.stdin.write('{"stop":{}}')
        p.stdin.close()
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reader.join(timeout=30)
    assert '"registered": {\n' in "".join(lines), lines
