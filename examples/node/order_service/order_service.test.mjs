// ctest's node_order_service_test: the example exactly as a user runs it
// (run.sh: npm ci, then main.mjs) against a daemon and a redis-server this
// test starts (REDRIVE_DAEMON_BINARY, REDRIVE_REDIS_SERVER), with its Admin
// token; asserts what it prints and what it leaves in Redis.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { DAEMON, startDaemon, startRedis, stopChild } from '../../../tests/e2e/node/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

let dir;
let redis;
let daemon;

before(async () => {
  assert.ok(DAEMON, 'REDRIVE_DAEMON_BINARY must name the redrived binary');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redrive-node-example-'));
  fs.writeFileSync(path.join(dir, 'admin-token'), crypto.randomBytes(16).toString('hex'), { mode: 0o600 });
  redis = await startRedis(dir);
  daemon = await startDaemon(dir, redis.port, `unix:${dir}/redrive.sock`,
    [`--admin-token-file=${dir}/admin-token`]);
});

after(async () => {
  redis?.redis.close();
  if (daemon) await stopChild(daemon.proc, 'SIGTERM');
  if (redis) await stopChild(redis.proc, 'SIGKILL');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function runExample() {
  const env = { ...process.env, REDRIVE_ADDRESS: `unix:${dir}/redrive.sock`,
    REDRIVE_ADMIN_TOKEN_FILE: `${dir}/admin-token` };
  return new Promise((resolve) => {
    execFile('bash', [path.join(HERE, 'run.sh')], { env, timeout: 120000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr });
    });
  });
}

test('the order service bills the good orders and its bad orders end in the DLQ with the handler\'s error',
  { timeout: 150000 }, async () => {
    const { code, stdout, stderr } = await runExample();
    assert.equal(code, 0, `run.sh failed:\n${stdout}\n${stderr}`);
    const lines = stdout.trimEnd().split('\n');
    assert.equal(lines[0], `order service: daemon unix:${dir}/redrive.sock, channel shop.orders, handler node-billing`);
    assert.equal(lines[1], 'publishing 5 orders: 1001 1002 1003 1004 1005');
    // Handlers run concurrently: the progress lines in any order, each once.
    assert.deepEqual(lines.slice(2, -3).sort(), [
      'billed order 1001: 2 x widget = 19.98',
      'billed order 1002: 1 x gadget = 24.50',
      'billed order 1004: 3 x gizmo = 12.00',
      ...[1, 2, 3].map((n) => `order 1003 failed (attempt ${n} of 3): quantity 0 is not positive`),
      ...[1, 2, 3].map((n) => `order 1005 failed (attempt ${n} of 3): order has no item`),
    ].sort());
    assert.deepEqual(lines.slice(-3), [
      'dead-lettered order 1003 after 3 attempts: quantity 0 is not positive [E_INVALID_ORDER] (reason max_retries)',
      'dead-lettered order 1005 after 3 attempts: order has no item [E_INVALID_ORDER] (reason max_retries)',
      'done: 3 billed, 2 dead-lettered',
    ]);
    assert.equal(await redis.redis.command('XLEN', 'shop.orders'), 5);
    assert.equal(await redis.redis.command('XLEN', 'shop.orders.node-billing.dlq'), 2);
    assert.equal((await redis.redis.command('XPENDING', 'shop.orders', 'node-billing'))[0], 0);
  });
