"""`pip install client/python` into a fresh virtual environment (Debian's
python3-venv, --system-site-packages for python3-grpcio / python3-protobuf,
offline: --no-deps --no-build-isolation --no-index), then the installed
package, not the source tree, publishes and handles a message."""

import os
import shutil
import subprocess
import sys
import textwrap

from conftest import WAIT

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "client",
                      "python")

SCRIPT = textwrap.dedent("""
    import importlib.metadata as md, os, sys, threading
    import redrive
    # The declared minimums hold with Debian's python3-grpcio and
    # python3-protobuf (whose Python runtime is numbered 4.21).
    assert md.requires("redrive") == ["grpcio (>=1.51)", "protobuf (>=4.21)"], md.requires("redrive")
    for dist, floor in (("grpcio", (1, 51)), ("protobuf", (4, 21))):
        assert tuple(int(x) for x in md.version(dist).split(".")[:2]) >= floor, dist
    from redrive.v1 import broker_pb2
    pkg = os.path.dirname(redrive.__file__)
    assert "site-packages" in pkg, pkg
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert broker_pb2.Delivery.DESCRIPTOR.full_name == "redrive.v1.Delivery"
    got = threading.Event()
    seen = []
    worker = redrive.Worker(sys.argv[1])

    @worker.handle("py.packaging", "installed", start="backlog")
    def fn(msg):
        seen.append((msg.payload, msg.attempt))
        got.set()

    with redrive.Publisher(sys.argv[1]) as pub:
        pub.publish("py.packaging", b"from the venv")
    worker.start()
    assert got.wait(%s)
    worker.stop(5)
    print(redrive.__version__, seen)
""" % WAIT)


def run(cmd, env, cwd):
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)
    assert proc.returncode == 0, "%s\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(cmd), proc.stdout.decode(), proc.stderr.decode())
    return proc.stdout.decode()


def test_pip_install_into_a_fresh_venv_then_publish_and_handle(tmp_path, daemon):
    src = tmp_path / "src"
    # A copy: pip builds in the source directory (build/, *.egg-info).
    shutil.copytree(CLIENT, src, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                              "*.egg-info"))
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # Debian's pip drives the venv (--python): no ensurepip, faster.
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        env, tmp_path)
    py = str(venv / "bin" / "python")
    run(["/usr/bin/python3", "-m", "pip", "--python", py, "install", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", str(src)], env, tmp_path)
    out = run([py, "-c", SCRIPT, daemon.address], env, tmp_path)
    assert out == "0.1.0 [(b'from the venv', 1)]\n"
    assert sys.executable != py
