// ctest's dockerfile_lint_test (through run.sh): lints the Dockerfile with two
// npm linters and shows each rejects broken copies.
//   - dockerfile-utils (the Dockerfile language service's validator): the
//     syntax of every instruction and its flags; every check at severity error.
//   - dockerfile_lint with the project's rules (dockerfile_lint_rules.yaml):
//     digest-pinned bases, OCI labels, numeric non-root USER, HEALTHCHECK
//     through `redrivectl health`, apt-get hygiene, no ADD.
// It also checks what no linter knows (no Docker engine is needed): the build
// stage's COPY sources exist, are not in .dockerignore and are enough for
// CMake to configure redrived and redrivectl; the runtime stage installs the
// Debian package of every shared library the built binaries load.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { validate as utilsValidate, ValidationSeverity } from "dockerfile-utils";

const require = createRequire(import.meta.url);
const DockerfileLint = require("dockerfile_lint");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const DOCKERFILE = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
const RULES = path.join(HERE, "dockerfile_lint_rules.yaml");

// Every finding of both linters as "linter line N: message" (empty: clean).
function lint(text) {
  const out = [];
  const E = ValidationSeverity.ERROR;
  const diagnostics = utilsValidate(text, {
    deprecatedMaintainer: E,
    directiveCasing: E,
    emptyContinuationLine: E,
    instructionCasing: E,
    instructionCmdMultiple: E,
    instructionEntrypointMultiple: E,
    instructionHealthcheckMultiple: E,
    instructionJSONInSingleQuotes: E,
    instructionWorkdirRelative: E,
  });
  for (const d of diagnostics) {
    out.push(`dockerfile-utils line ${d.range.start.line + 1}: ${d.message}`);
  }
  const result = new DockerfileLint(RULES).validate(text);
  // info included: the rules file uses none, so any is unexpected.
  for (const level of ["error", "warn", "info"]) {
    for (const d of result[level].data) {
      out.push(`dockerfile_lint ${level}${d.line ? ` line ${d.line}` : ""}: ${d.message}`);
    }
  }
  return out;
}

// The Dockerfile with `from` replaced by `to` (which must occur exactly once).
function broken(from, to) {
  assert.equal(DOCKERFILE.split(from).length, 2, `'${from}' occurs once in the Dockerfile`);
  return DOCKERFILE.replace(from, to);
}

// The 1-based line of `needle`'s first occurrence in `text`.
function lineOf(text, needle) {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `'${needle}' is in the text`);
  return text.slice(0, at).split("\n").length;
}

function instructions(text) {
  // Joins continuation lines; drops comments and blank lines.
  const joined = text.replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

test("the Dockerfile passes both linters", () => {
  assert.deepEqual(lint(DOCKERFILE), []);
});

test("a broken copy fails: a base image by tag instead of digest", () => {
  const text = broken(
    "ARG RUNTIME_IMAGE=debian:12.11-slim@sha256:2424c1850714a4d94666ec928e24d86de958646737b1d113f5b2207be44d37d8",
    "ARG RUNTIME_IMAGE=debian:12-slim",
  );
  assert.deepEqual(lint(text), [
    `dockerfile_lint error line ${lineOf(text, "ARG RUNTIME_IMAGE=")}: base image not pinned by digest (want debian:TAG@sha256:<64 hex digits>)`,
  ]);
});

test("a broken copy fails: FROM naming an image directly", () => {
  const text = broken("FROM ${RUNTIME_IMAGE} AS runtime", "FROM debian:latest AS runtime");
  assert.deepEqual(lint(text), [
    `dockerfile_lint error line ${lineOf(text, "FROM debian:latest")}: FROM must use \${BUILD_IMAGE} or \${RUNTIME_IMAGE} (digest-pinned ARGs)`,
  ]);
});

test("a broken copy fails: no HEALTHCHECK", () => {
  const start = DOCKERFILE.indexOf("HEALTHCHECK ");
  const end = DOCKERFILE.indexOf("\n", DOCKERFILE.indexOf("CMD [", start));
  const text = DOCKERFILE.slice(0, start) + DOCKERFILE.slice(end + 1);
  assert.deepEqual(lint(text), ["dockerfile_lint error: No HEALTHCHECK instruction"]);
});

test("a broken copy fails: a HEALTHCHECK interval without a unit", () => {
  const errors = lint(broken("--interval=10s", "--interval=10"));
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.match(errors[0], /^dockerfile-utils line \d+: .*duration/i);
});

test("a broken copy fails: running as root, or as a user name", () => {
  const line = lineOf(DOCKERFILE, "USER 10001:10001");
  assert.deepEqual(lint(broken("USER 10001:10001", "USER 0:0")), [
    `dockerfile_lint error line ${line}: the image runs as root`,
  ]);
  const byName = lint(broken("USER 10001:10001", "USER redrive"));
  assert.equal(byName.length, 1, byName.join("\n"));
  assert.ok(byName[0].startsWith(`dockerfile_lint error line ${line}: `), byName[0]);
});

test("a broken copy fails: an OCI label missing", () => {
  const text = broken('      org.opencontainers.image.revision="${REVISION}" \\\n', "");
  assert.deepEqual(lint(text), [
    "dockerfile_lint error line -1: Required LABEL name/key 'org.opencontainers.image.revision' is not defined",
  ]);
});

test("a broken copy fails: apt-get install with recommends, ADD, two ENTRYPOINTs", () => {
  const text = broken(
    "apt-get install -y -qq --no-install-recommends \\\n      libgrpc++1.51",
    "apt-get install -y -qq \\\n      libgrpc++1.51",
  )
    .replace("COPY --from=build /build/daemon/redrived", "ADD --from=build /build/daemon/redrived")
    .replace('ENTRYPOINT ["/usr/local/bin/redrived"]', 'ENTRYPOINT ["/bin/sh"]\nENTRYPOINT ["/usr/local/bin/redrived"]');
  const addLine = lineOf(text, "ADD --from=build");
  assert.deepEqual(lint(text), [
    `dockerfile-utils line ${lineOf(text, 'ENTRYPOINT ["/bin/sh"]')}: There can only be one ENTRYPOINT instruction in a Dockerfile or build stage. Only the last one will have an effect.`,
    `dockerfile-utils line ${addLine}: Unknown flag: from`,
    // dockerfile_lint names the last line of a continued instruction.
    `dockerfile_lint error line ${lineOf(text, "install -d -o redrive")}: apt-get install without --no-install-recommends`,
    `dockerfile_lint error line ${addLine}: ADD: use COPY`,
  ]);
});

test("the HEALTHCHECK probes the port the image's health listener uses", () => {
  const lines = instructions(DOCKERFILE);
  const health = lines.find((l) => l.startsWith("HEALTHCHECK "));
  const cmd = JSON.parse(health.slice(health.indexOf("CMD ") + 4));
  assert.deepEqual(cmd, ["/usr/local/bin/redrivectl", "health", "--addr", "127.0.0.1:8081", "--timeout", "3"]);
  const env = lines.find((l) => l.startsWith("ENV REDRIVE_GRPC_LISTEN="));
  assert.match(env, /REDRIVE_HEALTH_LISTEN=0\.0\.0\.0:8081(\s|$)/);
  assert.ok(lines.includes("EXPOSE 8081"));
});

// .dockerignore patterns as regular expressions over context paths.
function ignorePatterns() {
  return fs
    .readFileSync(path.join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((p) => {
      assert.ok(!p.startsWith("!"), "no exceptions: keep the list simple to read");
      const re = p
        .replace(/\/$/, "")
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*\*\//g, "(.*/)?")
        .replace(/\*/g, "[^/]*")
        .replace(/\?/g, "[^/]");
      return { pattern: p, re: new RegExp(`^${re}$`) };
    });
}

function ignoredBy(patterns, rel) {
  const parts = rel.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    const hit = patterns.find((p) => p.re.test(prefix));
    if (hit) return hit.pattern;
  }
  return null;
}

function buildStageCopies() {
  const lines = instructions(DOCKERFILE);
  const start = lines.findIndex((l) => /^FROM \S+ AS build$/.test(l));
  const end = lines.findIndex((l, i) => i > start && l.startsWith("FROM "));
  assert.ok(start >= 0 && end > start, "a build stage");
  return lines
    .slice(start, end)
    .filter((l) => l.startsWith("COPY ") && !l.includes("--from="))
    .map((l) => {
      const args = l.split(/\s+/).slice(1);
      return { sources: args.slice(0, -1), dest: args[args.length - 1] };
    });
}

test(".dockerignore leaves out build trees, node_modules and .git but no COPY source", () => {
  const patterns = ignorePatterns();
  for (const rel of [".git", "build/x", "build-asan/CMakeCache.txt", "tests/deploy/node_modules/yaml", "README.md"]) {
    assert.ok(ignoredBy(patterns, rel), `${rel} is ignored`);
  }
  const copies = buildStageCopies();
  assert.deepEqual(
    copies.flatMap((c) => c.sources),
    ["CMakeLists.txt", "cmake", "proto", "daemon", "client"],
  );
  for (const { sources } of copies) {
    for (const s of sources) {
      assert.ok(fs.existsSync(path.join(ROOT, s)), `${s} exists`);
      assert.equal(ignoredBy(patterns, s), null, `${s} is not excluded by .dockerignore`);
    }
  }
});

test("the build stage's COPY sources are enough to configure redrived and redrivectl", () => {
  const context = fs.mkdtempSync(path.join(os.tmpdir(), "redrive-docker-context-"));
  try {
    for (const { sources, dest } of buildStageCopies()) {
      for (const s of sources) {
        const target = dest === "./" ? path.join(context, path.basename(s)) : path.join(context, dest);
        fs.cpSync(path.join(ROOT, s), target, { recursive: true });
      }
    }
    const run = instructions(DOCKERFILE).find((l) => l.startsWith("RUN cmake -S . -B /build"));
    const flags = run.split("&&")[0].trim().split(/\s+/).filter((a) => a.startsWith("-D"));
    assert.deepEqual(flags, [
      "-DCMAKE_BUILD_TYPE=Release",
      "-DREDRIVE_BUILD_TESTS=OFF",
      "-DREDRIVE_BUILD_BENCH=OFF",
      "-DREDRIVE_BUILD_EXAMPLES=OFF",
    ]);
    const out = execFileSync(
      "cmake",
      ["-S", context, "-B", path.join(context, "build"), "-G", "Ninja", ...flags],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    assert.match(out, /Build files have been written/);
    const targets = execFileSync("ninja", ["-C", path.join(context, "build"), "-t", "targets", "all"], {
      encoding: "utf8",
    });
    assert.match(targets, /^daemon\/redrived: /m);
    assert.match(targets, /^client\/redrivectl: /m);
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
});

// The runtime stage's `apt-get install` packages.
function runtimePackages() {
  const lines = instructions(DOCKERFILE);
  const start = lines.findIndex((l) => /^FROM \S+ AS runtime$/.test(l));
  const run = lines.slice(start).find((l) => l.startsWith("RUN ") && l.includes("apt-get install"));
  const after = run.split("--no-install-recommends")[1].split("&&")[0];
  return after.trim().split(/\s+/);
}

// The Debian packages owning `files` (one dpkg -S for all; usrmerge: dpkg
// may know a file under /lib instead of /usr/lib): file -> package or null.
function owners(files) {
  const spellings = (f) =>
    [...new Set([f, fs.realpathSync(f)].flatMap((x) => [x, x.replace(/^\/usr\/lib\//, "/lib/"), x.replace(/^\/lib\//, "/usr/lib/")]))];
  const all = [...new Set(files.flatMap(spellings))];
  let out;
  try {
    out = execFileSync("dpkg", ["-S", ...all], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch (e) {
    out = e.stdout ?? ""; // non-zero when some spelling is unknown, as expected
  }
  const byPath = new Map();
  for (const line of out.split("\n")) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?: (\/\S+)$/.exec(line);
    if (m) byPath.set(m[2], m[1]);
  }
  return new Map(files.map((f) => [f, spellings(f).map((x) => byPath.get(x)).find(Boolean) ?? null]));
}

// debian:12-slim has these already (apt needs them).
const SLIM_BASE = new Set(["libc6", "libgcc-s1", "libstdc++6"]);
// Sanitizer runtimes of the ASan build; the image builds Release.
const SANITIZER = /^lib(asan|ubsan|tsan|lsan)\.so/;

test("the runtime stage installs the package of every library redrived and redrivectl load", () => {
  const installed = new Set(runtimePackages());
  assert.ok(installed.has("libgrpc++1.51") && installed.has("ca-certificates"), [...installed].join(" "));
  for (const variable of ["REDRIVE_DAEMON_BINARY", "REDRIVECTL_BINARY"]) {
    const binary = process.env[variable];
    assert.ok(binary, `${variable} must name the built binary (ctest sets it)`);
    const needed = [
      ...execFileSync("readelf", ["-d", binary], { encoding: "utf8" }).matchAll(/\(NEEDED\).*\[(.+)\]/g),
    ].map((m) => m[1]);
    assert.ok(needed.length >= 10, `${binary} needs ${needed.join(" ")}`);
    const paths = new Map(
      [...execFileSync("ldd", [binary], { encoding: "utf8" }).matchAll(/^\s*(\S+) => (\/\S+)/gm)].map((m) => [m[1], m[2]]),
    );
    const sonames = needed.filter((n) => !SANITIZER.test(n));
    for (const n of sonames) assert.ok(paths.get(n), `ldd resolves ${n}`);
    const packages = owners(sonames.map((n) => paths.get(n)));
    const missing = [];
    for (const soname of sonames) {
      const file = paths.get(soname);
      const pkg = packages.get(file);
      assert.ok(pkg, `a Debian package owns ${file}`);
      if (!installed.has(pkg) && !SLIM_BASE.has(pkg)) missing.push(`${soname} (${pkg})`);
    }
    assert.deepEqual(missing, [], `${path.basename(binary)} loads libraries whose packages the image lacks`);
  }
});
