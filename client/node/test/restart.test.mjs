// The Worker across daemon restarts (its own redis-server and redrived, which
// these tests kill and start again on the same socket): kill -9 mid-stream,
// the late verb of a handler whose stream died, the daemon's drain on SIGTERM.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { Env, gate, waitFor } from './env.mjs';

const TEST_TIMEOUT_MS = 60000;
// A 1 s lease (the minimum) and frequent sweeps, so the entries a killed daemon
// held are claimed back soon after the restart; retries at once.
const HANDLE = { leaseMs: 1000, policy: { maxRetries: 10, initialBackoffMs: 10, maxBackoffMs: 10, jitter: 0 } };
const RECONNECT = { initialMs: 50, maxMs: 500 };

describe('the Worker across daemon restarts', () => {
  let env;
  let publisher;
  const worker = (options = {}) => env.worker({ reconnect: RECONNECT, ...options });

  before(async () => {
    env = await Env.start(['--sweep-interval-ms=500']);
    publisher = env.publisher;
  });

  after(async () => {
    await env?.stop();
  });

  test('kill -9 and restart mid-stream: the worker reconnects by itself; every message is acked or dead-lettered, none lost',
    { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const channel = 'node.crash';
      const total = 600;
      const payloads = Array.from({ length: total }, (_, i) => `crash-${i}`);
      const completions = new Map(); // payload → handler runs that resolved
      const w = worker().handle(channel, 'crash', async (m) => {
        await delay(2);
        completions.set(m.text(), (completions.get(m.text()) || 0) + 1);
      }, { ...HANDLE, maxInFlight: 16, start: 'backlog' });
      await w.start();
      await publisher.publishBatch(channel, payloads);
      await waitFor(() => w.stats()[0].acks >= 150, '150 ACKs before the kill');
      await env.killDaemon();
      const ackedBeforeKill = w.stats()[0].acks;
      await env.startDaemon();
      await waitFor(async () => completions.size === total && env.settled(channel, 'crash'),
        'every message handled and nothing left pending after the restart');
      const dead = await env.deadLetters(channel, 'crash');
      assert.deepEqual(dead, []);
      assert.deepEqual([...completions.keys()].sort(), [...payloads].sort());
      const [stats] = w.stats();
      const dups = [...completions.values()].filter((n) => n > 1).length;
      t.diagnostic(`acked before the kill ${ackedBeforeKill}; duplicates (handled twice) ${dups}; `
        + `verbs dropped with the dead stream ${stats.dropped}; registrations ${stats.registrations}`);
      assert.equal(stats.registrations, 2, w.logLines.join('\n'));
      assert.equal(stats.notices, 0, w.logLines.join('\n'));
      assert.ok(stats.connected);
      assert.ok(w.logLines.some((l) => /crash: the stream ended with UNAVAILABLE: .*; reconnecting in \d+ ms/.test(l)),
        w.logLines.join('\n'));
      await w.stop();
    });

  test('late ACKs of handlers whose stream died are dropped with a log line, never sent on the new stream; '
    + 'their redeliveries wait for a slot', { timeout: TEST_TIMEOUT_MS }, async () => {
    const channel = 'node.late';
    const ids = await publisher.publishBatch(channel, ['late-0', 'late-1']);
    const hold = gate();
    const calls = [];
    let running = 0;
    let most = 0;
    const w = worker().handle(channel, 'late', async (m) => {
      calls.push({ payload: m.text(), attempt: m.attempt, deliveryId: m.deliveryId, entryId: m.entryId });
      running++;
      most = Math.max(most, running);
      if (m.attempt === 1) await hold.promise;
      running--;
    }, { ...HANDLE, maxInFlight: 2, start: 'backlog' });
    await w.start();
    await waitFor(() => calls.length === 2, 'both first attempts running');
    await env.killDaemon();
    await env.startDaemon();
    // Registered again with the restarted daemon, whose delivery ids start
    // again: an old ACK would name a delivery of the new stream. Both messages
    // come back there (their leases on the dead daemon expire) while the two
    // old handlers still run: they wait for a slot (maxInFlight 2 in all).
    await waitFor(() => w.stats()[0].registrations === 2 && w.stats()[0].deliveries === 4,
      'the two redeliveries on the new stream');
    assert.deepEqual([w.stats()[0].running, calls.length], [2, 2]);
    hold.open();
    await waitFor(async () => calls.length === 4 && env.settled(channel, 'late'), 'the redeliveries acknowledged');
    assert.equal(most, 2);
    assert.deepEqual(calls.map((c) => [c.payload, c.attempt]).sort(),
      [['late-0', 1], ['late-0', 2], ['late-1', 1], ['late-1', 2]]);
    for (const c of calls.filter((call) => call.attempt === 1)) {
      assert.ok(w.logLines.some((l) => l.includes(`late: dropped the ACK of delivery ${c.deliveryId} `
        + `(entry ${c.entryId}, attempt 1): its stream ended; the daemon delivers it again`)), w.logLines.join('\n'));
    }
    assert.deepEqual(calls.map((c) => c.entryId).filter((id, i) => i < 2).sort(), [...ids].sort());
    const [stats] = w.stats();
    assert.deepEqual([stats.acks, stats.dropped, stats.notices], [2, 2, 0]);
    await w.stop();
  });

  test("on the daemon's drain the worker finishes its handlers, ACKs within the grace and reconnects to the next daemon",
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.drain';
      await publisher.publishBatch(channel, ['d-0', 'd-1']);
      const hold = gate();
      const done = [];
      const w = worker().handle(channel, 'drain', async (m) => {
        await hold.promise;
        done.push([m.text(), m.attempt]);
      }, { ...HANDLE, start: 'backlog' });
      await w.start();
      await waitFor(() => w.stats()[0].running === 2, 'two handlers running');
      const exit = env.terminateDaemon(); // drain, grace 3 s
      await waitFor(() => w.logLines.some((l) => l.includes('drain: the daemon drains')), 'the drain notice');
      hold.open();
      assert.equal((await exit).code, 0);
      // Both ACKs landed before the daemon left: nothing pending, nothing retried.
      assert.equal(await env.pending(channel, 'drain'), 0);
      assert.equal(await env.redis.command('EXISTS', `${channel}.drain.retry.due`), 0);
      assert.deepEqual(done.sort(), [['d-0', 1], ['d-1', 1]]);
      await env.startDaemon();
      await waitFor(() => w.stats()[0].registrations === 2, 'the worker to register with the new daemon');
      await publisher.publish(channel, 'after');
      await waitFor(async () => done.length === 3 && env.settled(channel, 'drain'), 'a message after the restart');
      assert.deepEqual(done[2], ['after', 1]);
      const [stats] = w.stats();
      assert.deepEqual([stats.acks, stats.dropped, stats.notices], [3, 0, 0]);
      assert.ok(w.logLines.some((l) => /drain: the stream ended after a drain; reconnecting in \d+ ms/.test(l)),
        w.logLines.join('\n'));
      await w.stop();
    });
});
