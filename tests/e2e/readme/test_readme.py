"""Runs the README's command blocks as written, after what scripts/run.sh sets up.

ctest's `readme_test` runs this with REDRIVE_DAEMON_BINARY, REDRIVE_REDIS_SERVER,
REDRIVE_REDRIVECTL_BINARY and PYTHONPATH (the build's python/ directory).

Which blocks run (the convention, also stated in the README's Quick start):
  - every fenced block has an info string (```sh, ```text, ...);
  - ```sh / ```bash / ```shell blocks are run, in README order, unless the
    line right before the fence is `<!-- not run: REASON -->` (a reason is
    required). A new sh block therefore runs, and must pass, unless it is
    marked;
  - `<!-- exit: N -->` right before the fence documents that the block ends
    with exit code N (a block showing an error); otherwise it must exit 0;
  - any other block (```text: diagrams, sample output) is never run and must
    not hold command lines (grpcurl, redrivectl, scripts/, redrived) unless
    it is marked `not run` too.

The sandbox mimics a second shell while scripts/run.sh runs with its
defaults:
  - redrived (the built binary) is started through scripts/serve.sh, the part
    of run.sh that runs after the build, with an embedded Redis, so the
    listeners, run directory and Admin token are run.sh's own;
  - XDG_RUNTIME_DIR is a private temporary directory, so the README's
    `${XDG_RUNTIME_DIR:-/tmp}/redrive/...` paths (socket, token) are real and
    need no rewriting;
  - the address 127.0.0.1:50051 is used for real when that port is free. When
    it is taken (another daemon on this machine) redrived listens on a free
    port instead and the ONE substitution made to the blocks' text is
    `127.0.0.1:50051` -> `127.0.0.1:<that port>`, with REDRIVE_ADDR set to
    that address for redrivectl's built-in default (127.0.0.1:50051);
  - the working directory is a stand-in for the clone whose
    build-release/client/redrivectl is the built redrivectl (so the README's
    `export PATH="$PWD/build-release/client:$PATH"` finds it) and `grpcurl` on
    PATH is tests/e2e/readme/grpcurl.py, which resolves everything through
    server reflection like grpcurl;
  - blocks run with bash (`set -eo pipefail`), stdin from /dev/null, in one
    logical session: the shell variables a block sets (exported or not, and
    arrays) are carried to the next block, as in one terminal.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
README = os.path.join(ROOT, "README.md")
SERVE = os.path.join(ROOT, "scripts", "serve.sh")
GRPCURL = os.path.join(HERE, "grpcurl.py")

DAEMON = os.environ.get("REDRIVE_DAEMON_BINARY", "")
REDIS_SERVER = os.environ.get("REDRIVE_REDIS_SERVER", "redis-server")
REDRIVECTL = os.environ.get("REDRIVE_REDRIVECTL_BINARY", "")

README_ADDR = "127.0.0.1:50051"
RUN_LANGS = {"sh", "bash", "shell"}
COMMAND_LINE = re.compile(r"^\s*(\$\s+)?(grpcurl|redrivectl|redrived|scripts/)\S*(\s|$)")
MARKER = re.compile(r"^<!--\s*(not run|exit)\s*:\s*(.*?)\s*-->\s*$")
BLOCK_TIMEOUT_S = 120
# Passed through to the daemon and the blocks (sanitizer builds).
PASS_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


class Block:
    def __init__(self, line, info, body, marker):
        self.line = line          # 1-based line of the opening fence
        self.info = info
        self.body = body
        self.marker = marker      # None, ("not run", reason) or ("exit", "N")

    @property
    def runs(self):
        return self.info in RUN_LANGS and not (self.marker and self.marker[0] == "not run")

    @property
    def expected_exit(self):
        return int(self.marker[1]) if self.marker and self.marker[0] == "exit" else 0

    def name(self):
        first = next((ln.strip() for ln in self.body.splitlines() if ln.strip()), "")
        return "L%d:%s" % (self.line, re.sub(r"[^A-Za-z0-9_./-]+", "_", first)[:50])


def parse_readme(path=README):
    """Returns (blocks, problems) for every fenced block of the README."""
    blocks, problems = [], []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}```(.*)$", lines[i])  # a fence may be indented 0..3
        if not m:
            if MARKER.match(lines[i]) and not (i + 1 < len(lines)
                                               and re.match(r"^ {0,3}```", lines[i + 1])):
                problems.append("line %d: marker not directly before a fence" % (i + 1))
            i += 1
            continue
        info = m.group(1).strip()
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^ {0,3}```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            problems.append("line %d: fence never closed" % (start + 1))
            break
        i += 1
        marker = None
        if start > 0:
            mm = MARKER.match(lines[start - 1])
            if mm:
                marker = (mm.group(1), mm.group(2))
        block = Block(start + 1, info, "\n".join(body) + "\n", marker)
        if not info:
            problems.append("line %d: fence without an info string (```sh to run it, "
                            "```text for output or diagrams)" % block.line)
        if marker and marker[0] == "not run" and not marker[1]:
            problems.append("line %d: `not run` needs a reason" % block.line)
        if marker and marker[0] == "exit":
            if not re.fullmatch(r"[0-9]{1,3}", marker[1]) or info not in RUN_LANGS:
                problems.append("line %d: `exit: N` needs a number and an sh block" % block.line)
        if info not in RUN_LANGS and not (marker and marker[0] == "not run"):
            for ln in body:
                if COMMAND_LINE.match(ln):
                    problems.append("line %d: a ```%s block holds the command %r: make it "
                                    "```sh (run) or mark it <!-- not run: REASON -->"
                                    % (block.line, info or "", ln.strip()))
        blocks.append(block)
    return blocks, problems


BLOCKS, PROBLEMS = parse_readme()
RUN_BLOCKS = [b for b in BLOCKS if b.runs]


def wait_for(condition, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC's listeners
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Sandbox:
    def __init__(self):
        assert DAEMON and os.path.exists(DAEMON), "REDRIVE_DAEMON_BINARY must name redrived"
        assert REDRIVECTL and os.path.exists(REDRIVECTL), \
            "REDRIVE_REDRIVECTL_BINARY must name redrivectl"
        self.dir = tempfile.mkdtemp(prefix="rdr-readme-", dir="/tmp")
        self.xdg = os.path.join(self.dir, "xdg")
        self.home = os.path.join(self.dir, "home")
        self.clone = os.path.join(self.dir, "clone")
        self.bin = os.path.join(self.dir, "bin")
        for d in (self.xdg, self.home, self.bin, os.path.join(self.clone, "build-release", "client")):
            os.makedirs(d, mode=0o700)
        os.symlink(os.path.abspath(REDRIVECTL),
                   os.path.join(self.clone, "build-release", "client", "redrivectl"))
        wrapper = os.path.join(self.bin, "grpcurl")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec /usr/bin/python3 %s "$@"\n' % GRPCURL)
        os.chmod(wrapper, 0o755)
        self.run_dir = os.path.join(self.xdg, "redrive")
        self.socket = os.path.join(self.run_dir, "redrive.sock")
        self.token_file = os.path.join(self.run_dir, "admin-token")
        self.state = os.path.join(self.dir, "shell-state")
        self.env = {
            "PATH": self.bin + ":/usr/bin:/bin",
            "HOME": self.home,
            "USER": os.environ.get("USER") or "readme-test",
            "XDG_RUNTIME_DIR": self.xdg,
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "LANG": "C.UTF-8",
        }
        for k in PASS_ENV:
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.proc = None
        self.address = None
        self.substituted = False
        self.start_daemon(port_free(50051))

    def start_daemon(self, use_default_port):
        ready = os.path.join(self.dir, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        args = [SERVE, "--embedded-redis-binary=" + REDIS_SERVER, "--ready-file=" + ready,
                "--health-interval-ms=100"]
        if not use_default_port:
            args.append("--grpc-listen=127.0.0.1:0,unix:" + self.socket)
        self.log_path = os.path.join(self.dir, "redrived.log")
        self.log = open(self.log_path, "ab")
        env = dict(self.env, REDRIVED=os.path.abspath(DAEMON))
        self.proc = subprocess.Popen(["bash"] + args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)

        def is_ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        info = wait_for(is_ready, 60)
        if info == "exited" and use_default_port:
            # Port 50051 was taken between the check and the bind: use a free one.
            self.log.close()
            return self.start_daemon(False)
        assert isinstance(info, dict), "redrived did not start:\n" + self.daemon_log()
        tcp = [a for a in info["grpc"] if not a.startswith("unix:")]
        assert tcp and ("unix:" + self.socket) in info["grpc"], info
        self.address = tcp[0]
        self.substituted = self.address != README_ADDR
        if self.substituted:
            # redrivectl's built-in default address is 127.0.0.1:50051 too.
            self.env["REDRIVE_ADDR"] = self.address

    def daemon_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def script(self, block):
        text = block.body
        if self.substituted:
            text = text.replace(README_ADDR, self.address)
        return PRELUDE.replace("@STATE@", self.state) + text

    def run(self, block):
        proc = subprocess.Popen(["bash", "-c", self.script(block), "readme-block"],
                                cwd=self.clone, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError("block at README line %d did not end within %d s\nstdout:\n%s\n"
                                 "stderr:\n%s" % (block.line, BLOCK_TIMEOUT_S,
                                                  out.decode(errors="replace"),
                                                  err.decode(errors="replace")))
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# Runs before each block: restores the previous blocks' shell variables and
# saves them (whatever the block's outcome) for the next one.
PRELUDE = r'''
set -eo pipefail
__state='@STATE@'
if [ -f "$__state" ]; then . "$__state"; fi
__save() {
  __rc=$?
  set +e
  for __v in $(compgen -v); do
    case $__v in
      BASH*|EUID|PPID|UID|SHELLOPTS|FUNCNAME|GROUPS|PIPESTATUS|RANDOM|SRANDOM|SECONDS|\
      LINENO|HISTCMD|EPOCHREALTIME|EPOCHSECONDS|_|__*|OPTIND|OPTARG|OPTERR|COMP_*|DIRSTACK|\
      IFS|PS4|PS1|PS2|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|SHLVL|PWD|OLDPWD|COLUMNS|LINES) continue ;;
    esac
    declare -p "$__v" 2>/dev/null
  done > "$__state.new" && mv "$__state.new" "$__state"
  exit $__rc
}
trap __save EXIT
'''


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox()
    yield s
    s.close()


# Key outputs, checked on the block whose text holds the key (README order).
# A key that matches no block fails test_checks_match_blocks: update both.
def check_publish(out, err):
    assert re.search(r'"entryId": "[0-9]+-[0-9]+"', out), out


def check_bidi_session(out, err):
    assert '"registered"' in out and '"deliveries"' in out, out


def check_try_dlq_list(out, err):
    assert '"deadLetters"' in out and '"reason": "max_retries"' in out, out
    assert re.search(r"^[0-9]+-[0-9]+\s+max_retries\s+1\s", out, re.M), out


def check_try_redrive(out, err):
    assert re.search(r"SUCCEEDED\s+orders/billing\s+handler-retry\s+1\s+1\s", out), out
    assert re.search(r"attempt=2 .*\{\"id\":1\}", out), out
    assert out.rstrip().endswith("\n0"), out


def check_list(out, err):
    assert out.count("redrive.v1.Broker\n") == 2 and out.count("redrive.v1.Admin\n") == 2, out
    assert "rpc Subscribe ( stream .redrive.v1.SubscribeRequest )" in out, out
    assert "uint64 max_len = 3;" in out, out
    assert re.search(r'"entryIds": \[\s*"[0-9]+-[0-9]+",\s*"[0-9]+-[0-9]+"\s*\]', out), out


def check_health(out, err):
    assert '"status": "SERVING"' in out, out


def check_unauthenticated(out, err):
    assert "ERROR:\n  Code: Unauthenticated\n" in err, err


def check_failed_precondition(out, err):
    assert "ERROR:\n  Code: FailedPrecondition\n" in err, err


def check_admin(out, err):
    assert '"handlerId": "billing"' in out, out
    assert re.search(r'"jobId": "[0-9a-f]{16}"', out), out


def check_fixture(out, err):
    assert re.fullmatch(r"(?s).*^[0-9]+-[0-9]+$\s*", out, re.M), out


def check_jobs(out, err):
    assert '"state": "CANCELLED"' in out, out


def check_purge(out, err):
    assert re.search(r'"purged": "[1-9][0-9]*"', out), out


CHECKS = [
    ('"content_type":"application/json"}}\' \\\n  127.0.0.1:50051 redrive.v1.Broker/Publish',
     check_publish),
    ('"handler_id":"billing","lease_ms":1000,"retry_policy":{"max_retries":0},"start"',
     check_bidi_session),
    ("redrivectl dlq list orders billing\n", check_try_dlq_list),
    ("redrivectl tail orders --handler billing --count 1 --ack", check_try_redrive),
    ("describe redrive.v1.PublishRequest", check_list),
    ("grpc.health.v1.Health/Check", check_health),
    ("127.0.0.1:50051 redrive.v1.Admin/ListHandlers\n", check_unauthenticated),
    ("redrive.v1.Admin/GetRedriveJob\n", check_admin),
    ('"channel":"orders.replay"', check_failed_precondition),
    ('ID=$(redrivectl --json dlq list orders billing', check_fixture),
    ("redrive.v1.Admin/CancelRedriveJob", check_jobs),
    ("redrive.v1.Admin/PurgeDeadLetters", check_purge),
]


def check_grpcurl_error(out, err):
    assert "ERROR:\n  Code: " in err, err


def checks_for(block):
    # The error checks apply only to blocks documented as failing.
    checks = [c for key, c in CHECKS if key in block.body
              and not (c in (check_unauthenticated, check_failed_precondition)
                       and block.expected_exit == 0)]
    if block.expected_exit >= 64 and "grpcurl" in block.body:
        checks.append(check_grpcurl_error)
    return checks


def test_readme_blocks_follow_the_convention():
    assert not PROBLEMS, "\n".join(PROBLEMS)
    runnable = [b for b in BLOCKS if b.info in RUN_LANGS]
    not_run = [b for b in runnable if not b.runs]
    # Only the Quick start block (run.sh / test.sh) is exempt today.
    assert len(RUN_BLOCKS) >= 20, [b.name() for b in RUN_BLOCKS]
    assert all(b.marker[1] for b in not_run)
    assert "## Try it in 2 minutes" in open(README, encoding="utf-8").read()


def test_checks_match_blocks():
    for key, _ in CHECKS:
        assert any(key in b.body for b in RUN_BLOCKS), "no README block holds %r" % key


def test_convention_rejects_unmarked_commands(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```\nx\n```\n\n```text\ngrpcurl -plaintext a list\n```\n\n"
                   "<!-- not run: needs a Docker engine -->\n```sh\ndocker build .\n```\n"
                   "<!-- not run: -->\n```sh\nls\n```\n")
    blocks, problems = parse_readme(str(doc))
    assert len(blocks) == 4
    assert [b.runs for b in blocks] == [False, False, False, False]
    assert len(problems) == 3, problems


def test_serve_sh_sets_up_what_the_readme_reads(sandbox):
    assert stat.S_IMODE(os.stat(sandbox.run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sandbox.token_file).st_mode) == 0o600
    assert len(open(sandbox.token_file).read().strip()) == 48
    assert stat.S_ISSOCK(os.stat(sandbox.socket).st_mode)
    log = sandbox.daemon_log()
    assert "export REDRIVE_ADMIN_TOKEN_FILE=%s" % sandbox.token_file in log, log
    if not sandbox.substituted:
        assert "gRPC on 127.0.0.1:50051 and unix:%s" % sandbox.socket in log, log


def hint(err):
    if "UNAUTHENTICATED" not in err or "redrivectl" not in err:
        return ""
    helptext = subprocess.run([REDRIVECTL, "--help"], capture_output=True, text=True,
                              timeout=30)
    if "REDRIVE_ADMIN_TOKEN_FILE" not in helptext.stdout + helptext.stderr:
        return ("\nhint: this redrivectl does not read REDRIVE_ADMIN_TOKEN_FILE, which the "
                "README exports for it")
    return ""


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.name() for b in RUN_BLOCKS])
def test_readme_block(sandbox, block):
    rc, out, err = sandbox.run(block)
    context = ("README line %d (address %s%s)\n--- block\n%s--- stdout\n%s--- stderr\n%s"
               "--- daemon log (tail)\n%s" % (
                   block.line, sandbox.address,
                   ", substituted for %s" % README_ADDR if sandbox.substituted else "",
                   block.body, out, err, sandbox.daemon_log()[-1500:]))
    assert rc == block.expected_exit, (
        "exit code %d, expected %d%s\n%s" % (rc, block.expected_exit, hint(err), context))
    for check in checks_for(block):
        try:
            check(out, err)
        except AssertionError as e:
            raise AssertionError("%s failed: %s\n%s" % (check.__name__, e, context))
