// The Publisher and the Worker against the real redrived and a real
// redis-server (one of each for this file): exactly-once delivery, retries
// into the dead-letter queue with the handler's error text, TERMINATE and
// delayed retries, the concurrency limit, lease extension, graceful stop.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import {
  Publisher, RedriveError, retry, status, terminate,
} from 'redrive';

import { Env, gate, waitFor } from './env.mjs';

const TEST_TIMEOUT_MS = 60000;

describe('Publisher and Worker against redrived', () => {
  let env;
  let publisher;
  const worker = (options = {}) => env.worker({ ...options });

  before(async () => {
    env = await Env.start();
    publisher = env.publisher;
  });

  after(async () => {
    await env?.stop();
  });

  test('1,000 messages reach a healthy handler exactly once each, with what was published',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.exactly-once';
      const payloads = Array.from({ length: 1000 }, (_, i) => `order-${i}`);
      const ids = [
        ...await publisher.publishBatch(channel, payloads.slice(0, 500).map((p) => ({
          payload: p, headers: [['tenant', 'acme'], ['tenant', 'beta']], contentType: 'text/plain',
          correlationId: `corr-${p}`,
          trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'k=v' },
        }))),
        ...await publisher.publishBatch(channel, payloads.slice(500)),
      ];
      assert.equal(ids.length, 1000);
      assert.equal(new Set(ids).size, 1000);

      const seen = new Map(); // payload → Message[]
      const w = worker().handle(channel, 'exactly-once', async (m) => {
        const list = seen.get(m.text()) || [];
        list.push(m);
        seen.set(m.text(), list);
      }, { start: 'backlog', maxInFlight: 64 });
      await w.start();
      await waitFor(async () => seen.size === 1000 && env.settled(channel, 'exactly-once'),
        '1,000 handled and acknowledged');
      // Nothing is pending, no retry was scheduled: nothing more can come.
      assert.equal(await env.redis.command('EXISTS', `${channel}.exactly-once.retry`), 0);
      assert.deepEqual([...seen.keys()].sort(), [...payloads].sort());
      const twice = [...seen.values()].filter((list) => list.length !== 1);
      assert.deepEqual(twice, []);
      const first = seen.get('order-0')[0];
      assert.equal(first.entryId, ids[0]);
      assert.equal(first.originalEntryId, ids[0]);
      assert.equal(first.channel, channel);
      assert.equal(first.stream, channel);
      assert.ok(Buffer.isBuffer(first.payload));
      assert.deepEqual(first.headers, [{ key: 'tenant', value: 'acme' }, { key: 'tenant', value: 'beta' }]);
      assert.equal(first.header('tenant'), 'acme');
      assert.equal(first.contentType, 'text/plain');
      assert.equal(first.correlationId, 'corr-order-0');
      assert.deepEqual(first.trace, {
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'k=v',
      });
      assert.equal(first.attempt, 1);
      assert.equal(first.maxAttempts, 6); // the daemon's default policy: 5 retries
      assert.equal(first.previousError, '');
      assert.equal(seen.get('order-999')[0].entryId, ids[999]);
      const [stats] = w.stats();
      assert.equal(stats.deliveries, 1000);
      assert.equal(stats.acks, 1000);
      assert.equal(stats.nacks + stats.terminates + stats.dropped + stats.notices, 0);
      // Verbs are batched: what settles before the next turn of the event loop
      // goes in one message, so no more messages of verbs than of deliveries.
      assert.ok(stats.verbMessages <= stats.deliveryMessages,
        `${stats.verbMessages} verbs messages for ${stats.deliveryMessages} deliveries messages`);
      await w.stop();
    });

  test("a failing handler's messages reach the DLQ after max retries with the handler's error text",
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.failing';
      const payloads = ['bad-0', 'bad-1', 'bad-2'];
      const ids = await publisher.publishBatch(channel, payloads);
      const calls = [];
      const w = worker().handle(channel, 'failing', async (m) => {
        calls.push({ payload: m.text(), attempt: m.attempt, max: m.maxAttempts, previous: m.previousError,
          previousCode: m.previousErrorCode, original: m.originalEntryId });
        const err = new Error(`cannot bill ${m.text()} (attempt ${m.attempt})`);
        err.code = 'E_BILLING';
        throw err;
      }, { start: 'backlog', policy: { maxRetries: 2, initialBackoffMs: 10, maxBackoffMs: 10, jitter: 0 } });
      await w.start();
      const dead = await waitFor(async () => {
        const letters = await env.deadLetters(channel, 'failing');
        return letters.length === 3 && letters;
      }, 'three dead letters');
      assert.ok(await env.settled(channel, 'failing'));
      const byOriginal = new Map(dead.map((d) => [d.original_entry_id, d]));
      assert.deepEqual([...byOriginal.keys()].sort(), [...ids].sort());
      payloads.forEach((payload, i) => {
        const d = byOriginal.get(ids[i]);
        assert.equal(d.reason, 'max_retries');
        assert.equal(d.attempts, 3);
        assert.equal(d.last_error, `cannot bill ${payload} (attempt 3)`);
        assert.equal(d.last_error_code, 'E_BILLING');
        assert.equal(d.payload.toString(), payload);
        assert.equal(d.source_channel, channel);
        assert.deepEqual(d.history.map((h) => [h.attempt, h.outcome, h.error, h.error_code]), [1, 2, 3].map(
          (n) => [n, 'nack', `cannot bill ${payload} (attempt ${n})`, 'E_BILLING']));
        const mine = calls.filter((c) => c.payload === payload);
        assert.deepEqual(mine, [1, 2, 3].map((n) => ({
          payload, attempt: n, max: 3, original: ids[i],
          previous: n === 1 ? '' : `cannot bill ${payload} (attempt ${n - 1})`,
          previousCode: n === 1 ? '' : 'E_BILLING',
        })));
      });
      assert.equal(calls.length, 9);
      const [stats] = w.stats();
      assert.equal(stats.nacks, 9);
      await w.stop();
    });

  test('terminate() dead-letters at once; retry(delayMs) redelivers no sooner than the delay',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.verbs';
      const [poisonId] = await publisher.publishBatch(channel, ['poison', 'later']);
      const attempts = [];
      const w = worker().handle(channel, 'verbs', async (m) => {
        attempts.push({ payload: m.text(), attempt: m.attempt, at: Date.now(), previous: m.previousError });
        if (m.text() === 'poison') throw terminate('unparseable order', { code: 'E_PARSE' });
        if (m.attempt === 1) throw retry(700, 'inventory busy');
      }, { start: 'backlog', policy: { maxRetries: 5, initialBackoffMs: 10, maxBackoffMs: 10 } });
      await w.start();
      await waitFor(async () => attempts.length === 3 && env.settled(channel, 'verbs'),
        'the terminate and the delayed retry');
      const [dead] = await env.deadLetters(channel, 'verbs');
      assert.equal(dead.original_entry_id, poisonId);
      assert.equal(dead.reason, 'terminated');
      assert.equal(dead.attempts, 1);
      assert.equal(dead.last_error, 'unparseable order');
      assert.equal(dead.last_error_code, 'E_PARSE');
      const later = attempts.filter((a) => a.payload === 'later');
      assert.deepEqual(later.map((a) => [a.attempt, a.previous]), [[1, ''], [2, 'inventory busy']]);
      assert.ok(later[1].at - later[0].at >= 700, `redelivered after ${later[1].at - later[0].at} ms`);
      assert.equal(attempts.filter((a) => a.payload === 'poison').length, 1);
      const [stats] = w.stats();
      assert.deepEqual([stats.acks, stats.nacks, stats.terminates], [1, 1, 1]);
      await w.stop();
    });

  test('no more than maxInFlight handlers run at once, and that many do',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.concurrency';
      const n = 4;
      await publisher.publishBatch(channel, Array.from({ length: 40 }, (_, i) => `c-${i}`));
      let running = 0;
      let most = 0;
      let done = 0;
      const w = worker().handle(channel, 'concurrency', async () => {
        running++;
        most = Math.max(most, running);
        await delay(20);
        running--;
        done++;
      }, { start: 'backlog', maxInFlight: n });
      await w.start();
      await waitFor(async () => done === 40 && env.settled(channel, 'concurrency'), '40 handled');
      assert.equal(most, n);
      await w.stop();
    });

  test('a handler running three leases long is not redelivered: its lease is extended',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.long';
      const [id] = await publisher.publishBatch(channel, ['slow']);
      const attempts = [];
      let finished = false;
      const w = worker().handle(channel, 'long', async (m) => {
        attempts.push(m.attempt);
        await delay(3000);
        finished = true;
      }, { start: 'backlog', leaseMs: 1000, policy: { maxRetries: 3, initialBackoffMs: 10, maxBackoffMs: 10 } });
      await w.start();
      await waitFor(async () => finished && env.settled(channel, 'long'), 'the slow handler to finish and its ACK');
      assert.deepEqual(attempts, [1]);
      assert.equal(await env.redis.command('EXISTS', `${channel}.long.retry`), 0);
      assert.deepEqual(await env.deadLetters(channel, 'long'), []);
      const [stats] = w.stats();
      // Renewed between 1/2 and 2/3 of the lease: at least 4 times in 3 s.
      assert.ok(stats.extends >= 4, `${stats.extends} extensions in 3 s of a 1 s lease`);
      assert.deepEqual([stats.acks, stats.notices], [1, 0]);
      assert.equal((await env.redis.command('XRANGE', channel, '-', '+'))[0][0], id);
    });

  test('stop() sends stop, takes no new work and lets running handlers finish and ACK',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.stop';
      await publisher.publishBatch(channel, ['s-0', 's-1', 's-2']);
      const started = [];
      const finished = [];
      const hold = gate();
      const w = worker().handle(channel, 'stop', async (m) => {
        started.push(m.text());
        await hold.promise;
        await delay(100);
        finished.push(m.text());
      }, { start: 'backlog', maxInFlight: 3 });
      await w.start();
      await waitFor(() => started.length === 3, 'three handlers running');
      const stopping = w.stop({ graceMs: 10000 });
      // After stop: published, never delivered to this worker. (Its three
      // slots are full until the handlers settle, and their ACKs follow the
      // stop on the stream: the daemon has seen the stop before a slot frees.)
      await publisher.publishBatch(channel, ['late-0', 'late-1']);
      hold.open();
      await stopping;
      assert.deepEqual(finished.sort(), ['s-0', 's-1', 's-2']);
      assert.deepEqual(started.sort(), ['s-0', 's-1', 's-2']);
      // All three ACKs reached the daemon before the stream closed.
      await waitFor(async () => (await env.pending(channel, 'stop')) === 0, 'the three ACKs in Redis');
      const [stats] = w.stats();
      assert.deepEqual([stats.acks, stats.dropped, stats.running, stats.connected], [3, 0, 0, false]);
      // The late entries are still there for the next worker.
      const next = [];
      const w2 = worker().handle(channel, 'stop', (m) => {
        next.push(m.text());
      });
      await w2.start();
      await waitFor(async () => next.length === 2 && env.settled(channel, 'stop'), 'the late entries');
      assert.deepEqual(next, ['late-0', 'late-1']);
      await w2.stop();
    });

  test('stop() past its grace aborts the handler signal; the delivery is not lost',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.grace';
      await publisher.publishBatch(channel, ['stuck']);
      let aborted = null;
      const w = worker().handle(channel, 'grace', (m) => new Promise((resolve) => {
        m.signal.addEventListener('abort', () => {
          aborted = m.signal.reason;
          resolve();
        });
      }), { start: 'backlog', policy: { maxRetries: 3, initialBackoffMs: 10, maxBackoffMs: 10 } });
      await w.start();
      await waitFor(() => w.stats()[0].running === 1, 'the handler running');
      const began = Date.now();
      await w.stop({ graceMs: 300 });
      assert.ok(Date.now() - began >= 300);
      assert.ok(aborted instanceof Error, 'the signal was aborted');
      await waitFor(() => w.stats()[0].dropped === 1, 'the late ACK dropped');
      assert.ok(w.logLines.some((l) => l.includes('the stop grace ended with 1 deliveries unsettled')), w.logLines.join('\n'));
      // Redelivered to the next worker (a failed attempt: the stream ended unsettled).
      const next = [];
      const w2 = worker().handle(channel, 'grace', (m) => {
        next.push([m.text(), m.attempt, m.previousError]);
      }, { policy: { maxRetries: 3, initialBackoffMs: 10, maxBackoffMs: 10 } });
      await w2.start();
      await waitFor(async () => next.length === 1 && env.settled(channel, 'grace'), 'the redelivery');
      assert.deepEqual(next, [['stuck', 2, 'consumer disconnected']]);
      await w2.stop();
    });

  test('Publish errors reject with a RedriveError carrying the gRPC code; a bad registration fails start()',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await assert.rejects(publisher.publish('.bad channel', 'x'), (err) => {
        assert.ok(err instanceof RedriveError);
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.equal(err.codeName, 'INVALID_ARGUMENT');
        assert.match(err.message, /^Publish: INVALID_ARGUMENT: .*channel/);
        return true;
      });
      await assert.rejects(publisher.publish('node.headers', 'x', { headers: { traceparent: 'x' } }),
        (err) => err.code === status.INVALID_ARGUMENT && /reserved/.test(err.details));
      const errors = [];
      const w = worker({ onError: (err, h) => errors.push([err.code, h.handlerId]) })
        .handle('node.bad', 'bad', () => {}, { maxInFlight: 20000 });
      await assert.rejects(w.start(), (err) => {
        assert.ok(err instanceof RedriveError);
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.match(err.details, /register\.max_in_flight 20000/);
        return true;
      });
      assert.deepEqual(errors, [[status.INVALID_ARGUMENT, 'bad']]);
      // No daemon there: at once with waitForReady false, at the deadline by default.
      const down = new Publisher({ address: `unix:${env.dir}/nobody.sock`, deadlineMs: 300, waitForReady: false });
      await assert.rejects(down.publish('node.down', 'x'), (err) => err.code === status.UNAVAILABLE);
      down.close();
      const waiting = new Publisher({ address: `unix:${env.dir}/nobody.sock`, deadlineMs: 300 });
      const began = Date.now();
      await assert.rejects(waiting.publish('node.down', 'x'), (err) => err.code === status.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - began >= 290);
      waiting.close();
    });
});
