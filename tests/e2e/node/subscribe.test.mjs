// redrived end to end from Node.js (R-I3): @grpc/grpc-js with the .proto files
// of this repository loaded at run time by @grpc/proto-loader, a private
// redis-server and the real daemon binary. Run by ctest as node_e2e_test
// (tests/e2e/node/run.sh), or here with REDRIVE_DAEMON_BINARY set:
//   REDRIVE_DAEMON_BINARY=../../../build/daemon/redrived node --test subscribe.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

import { DAEMON, startDaemon, startRedis, stopChild, waitFor } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = path.resolve(HERE, '../../../proto');
const TEST_TIMEOUT_MS = 60000;

assert.ok(DAEMON, 'REDRIVE_DAEMON_BINARY must name the redrived binary');

const packageDefinition = protoLoader.loadSync(['redrive/v1/broker.proto'], {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
});
const { Broker } = grpc.loadPackageDefinition(packageDefinition).redrive.v1;

// An environment: a temp dir, a redis-server, a daemon and Broker clients.
class Env {
  async start(listen = '127.0.0.1:0') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redrive-node-'));
    this.subscribers = [];
    this.clients = [];
    const r = await startRedis(this.dir);
    this.redisPort = r.port;
    this.redisProc = r.proc;
    this.redis = r.redis;
    const listenArg = listen.replaceAll('<dir>', this.dir);
    this.daemon = await startDaemon(this.dir, this.redisPort, listenArg,
      ['--instance-id=node', '--shutdown-grace-ms=2000']);
    return this;
  }

  client(target = this.daemon.info.grpc[0]) {
    const c = new Broker(target, grpc.credentials.createInsecure());
    this.clients.push(c);
    return c;
  }

  subscribe(client) {
    const s = new Subscriber(client);
    this.subscribers.push(s);
    return s;
  }

  async pending(stream, group) {
    const summary = await this.redis.command('XPENDING', stream, group);
    return summary[0];
  }

  async stop() {
    for (const s of this.subscribers || []) s.cancel();
    for (const c of this.clients || []) c.close();
    if (this.redis) this.redis.close();
    if (this.daemon) await stopChild(this.daemon.proc, 'SIGTERM');
    if (this.redisProc) await stopChild(this.redisProc, 'SIGKILL');
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 10000 }, (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

async function publishEach(client, channel, payloads) {
  const ids = [];
  for (const payload of payloads) {
    const resp = await unary(client, 'Publish', { channel, message: { payload } });
    assert.equal(resp.stream, channel);
    ids.push(resp.entry_id);
  }
  return ids;
}

// One Subscribe call: requests are written on the duplex stream, every response
// is collected by kind.
class Subscriber {
  constructor(client) {
    this.registered = null;
    this.deliveries = [];
    this.notices = [];
    this.drains = [];
    this.status = null;
    this.call = client.Subscribe();
    this.call.on('data', (msg) => {
      switch (msg.kind) {
        case 'registered':
          this.registered = msg.registered;
          break;
        case 'deliveries':
          this.deliveries.push(...msg.deliveries.deliveries);
          break;
        case 'notices':
          this.notices.push(...msg.notices.notices);
          break;
        case 'drain':
          this.drains.push(msg.drain);
          break;
        default:
          throw new Error(`unexpected SubscribeResponse ${JSON.stringify(msg)}`);
      }
    });
    this.call.on('error', () => {}); // the status event below carries it
    this.call.on('status', (status) => {
      this.status = status;
    });
  }

  send(request) {
    this.call.write(request);
  }

  register(fields) {
    this.send({ register: fields });
  }

  verbs(verbs) {
    this.send({ verbs: { verbs } });
  }

  ack(ids) {
    this.verbs(ids.map((id) => ({ delivery_id: id, ack: {} })));
  }

  cancel() {
    if (this.status === null) this.call.cancel();
  }

  async waitRegistered() {
    await waitFor(() => this.registered !== null || this.status !== null, 'the Registered reply');
    assert.ok(this.registered, `not registered: ${this.status && `${this.status.code} ${this.status.details}`}`);
    return this.registered;
  }

  waitDeliveries(n) {
    return waitFor(() => this.deliveries.length >= n, `${n} deliveries (have ${this.deliveries.length})`);
  }

  waitStatus() {
    return waitFor(() => this.status, 'the end of the Subscribe call');
  }

  payloads() {
    return this.deliveries.map((d) => d.payload.toString());
  }
}

// ------------------------------------------------------------------ tests

describe('redrived over loopback TCP, from Node', () => {
  const env = new Env();
  let client;

  before(async () => {
    await env.start();
    client = env.client();
  });

  after(async () => {
    await env.stop();
  });

  test('10 messages published from Node reach a Node stream exactly once, in order, and ACKs clear them',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.orders';
      const payloads = Array.from({ length: 10 }, (_, i) => `node-${i}`);
      const entryIds = await publishEach(client, channel, payloads.map((p) => Buffer.from(p)));
      assert.equal(await env.redis.command('XLEN', channel), 10);

      const sub = env.subscribe(client);
      sub.register({ channel, handler_id: 'node-a', start: { kind: 'START_BACKLOG' } });
      const r = await sub.waitRegistered();
      assert.equal(r.channel, channel);
      assert.equal(r.handler_id, 'node-a');
      assert.equal(r.instance_id, 'node');
      assert.equal(r.start.kind, 'START_BACKLOG');
      assert.deepEqual({ ...r.names }, {
        stream: 'node.orders',
        group: 'node-a',
        retry_stream: 'node.orders.node-a.retry',
        retry_group: 'node-a-retry',
        dlq_stream: 'node.orders.node-a.dlq',
        consumer: 'node-a-node',
      });

      await sub.waitDeliveries(10);
      assert.deepEqual(sub.payloads(), payloads);
      assert.deepEqual(sub.deliveries.map((d) => d.entry_id), entryIds);
      assert.deepEqual(sub.deliveries.map((d) => d.attempt), Array(10).fill(1));
      for (const d of sub.deliveries) {
        assert.equal(typeof d.delivery_id, 'string'); // uint64 as String
        assert.equal(d.channel, channel);
        assert.equal(d.stream, channel);
        assert.equal(d.original_entry_id, d.entry_id);
        assert.ok(Buffer.isBuffer(d.payload));
      }
      assert.equal(new Set(sub.deliveries.map((d) => d.delivery_id)).size, 10);
      assert.equal(await env.pending(channel, 'node-a'), 10);

      sub.ack(sub.deliveries.map((d) => d.delivery_id));
      await waitFor(async () => (await env.pending(channel, 'node-a')) === 0, 'XPENDING node-a to reach 0');
      assert.equal(sub.deliveries.length, 10);
      assert.deepEqual(sub.notices, []);
      assert.equal(sub.status, null); // the stream is still open
    });

  test('a second handler id NACKs one delivery and ACKs the rest; the first handler is unaffected',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const channel = 'node.payments';
      const first = env.subscribe(client);
      first.register({ channel, handler_id: 'first', max_in_flight: 20 });
      await first.waitRegistered();
      const second = env.subscribe(client);
      second.register({ channel, handler_id: 'second', max_in_flight: 20 });
      await second.waitRegistered();

      const payloads = Array.from({ length: 10 }, (_, i) => `pay-${i}`);
      await publishEach(client, channel, payloads.map((p) => Buffer.from(p)));
      await first.waitDeliveries(10);
      await second.waitDeliveries(10);
      assert.deepEqual(first.payloads(), payloads);
      assert.deepEqual(second.payloads(), payloads);

      first.ack(first.deliveries.map((d) => d.delivery_id));
      // All verbs in one message: NACK the fourth (with a delay far beyond this
      // test, so it is not redelivered meanwhile) and ACK the other nine.
      const nacked = second.deliveries[3];
      second.verbs(second.deliveries.map((d) => (d === nacked
        ? { delivery_id: d.delivery_id, nack: { reason: 'card declined', error_code: 'E_DECLINED', delay_ms: 60000 } }
        : { delivery_id: d.delivery_id, ack: {} })));

      await waitFor(async () => (await env.pending(channel, 'first')) === 0, 'XPENDING first to reach 0');
      // The nacked entry waits exactly once for its retry: pending in the
      // group under the handler's `:scheduled` consumer and in the due zset,
      // and not yet in the retry stream (its delay is far beyond this test).
      await waitFor(async () => (await env.pending(channel, 'second')) === 1,
        'the nine ACKs of `second` to land');
      await waitFor(async () => {
        const detail = await env.redis.command('XPENDING', channel, 'second', '-', '+', '10');
        return detail.length === 1 && detail[0][1] === 'second:scheduled';
      }, 'the NACK to be scheduled');
      const detail = await env.redis.command('XPENDING', channel, 'second', '-', '+', '10');
      assert.equal(detail[0][0], nacked.entry_id);
      assert.equal(await env.redis.command('ZCARD', 'node.payments.second.retry.due'), 1);
      assert.equal(await env.redis.command('EXISTS', 'node.payments.second.retry'), 0);
      assert.deepEqual(second.notices, []);
      // One handler's failure never reaches another: `first` has no retry or
      // DLQ keys and got nothing more.
      const keys = (await env.redis.command('KEYS', '*')).sort();
      assert.deepEqual(keys.filter((k) => k.startsWith('node.payments.first.')), []);
      assert.equal(first.deliveries.length, 10);
      assert.deepEqual(first.notices, []);
    });

  test('registration errors end the stream with the exact status; the daemon keeps serving',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const cases = [
        { name: 'verbs before register', first: { verbs: { verbs: [{ delivery_id: '1', ack: {} }] } },
          code: grpc.status.FAILED_PRECONDITION, needle: 'first message' },
        { name: 'missing handler_id', first: { register: { channel: 'node.errors' } },
          code: grpc.status.INVALID_ARGUMENT, needle: 'register.handler_id' },
        { name: 'max_in_flight 10001', first: { register: { channel: 'node.errors', handler_id: 'h', max_in_flight: 10001 } },
          code: grpc.status.INVALID_ARGUMENT, needle: 'register.max_in_flight' },
      ];
      for (const c of cases) {
        const bad = env.subscribe(client);
        bad.send(c.first);
        const status = await bad.waitStatus();
        assert.equal(status.code, c.code, `${c.name}: ${status.code} ${status.details}`);
        assert.ok(status.details.includes(c.needle), `${c.name}: ${status.details}`);
        assert.equal(bad.registered, null);
      }
      assert.equal(await env.redis.command('EXISTS', 'node.errors'), 0);
      const ok = env.subscribe(client);
      ok.register({ channel: 'node.errors', handler_id: 'h' });
      await ok.waitRegistered();
      await publishEach(client, 'node.errors', [Buffer.from('still serving')]);
      await ok.waitDeliveries(1);
      assert.deepEqual(ok.payloads(), ['still serving']);
      ok.ack([ok.deliveries[0].delivery_id]);
      await waitFor(async () => (await env.pending('node.errors', 'h')) === 0, 'XPENDING h to reach 0');
    });
});

describe('redrived over a unix socket listener, from Node', () => {
  const env = new Env();

  before(async () => {
    await env.start('127.0.0.1:0,unix:<dir>/r.sock');
  });

  after(async () => {
    await env.stop();
  });

  test('the ready file lists both listeners and a Node stream over unix: receives and ACKs',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const sock = path.join(env.dir, 'r.sock');
      const listeners = env.daemon.info.grpc;
      assert.equal(listeners.length, 2);
      assert.match(listeners[0], /^127\.0\.0\.1:[1-9][0-9]*$/);
      assert.equal(listeners[1], `unix:${sock}`);
      assert.ok(fs.statSync(sock).isSocket());

      const unixClient = env.client(`unix:${sock}`);
      const tcpClient = env.client(listeners[0]);
      const sub = env.subscribe(unixClient);
      sub.register({ channel: 'node.unix', handler_id: 'unix-handler' });
      const r = await sub.waitRegistered();
      assert.equal(r.names.consumer, 'unix-handler-node');

      const payloads = Array.from({ length: 5 }, (_, i) => `unix-${i}`);
      const ids = await publishEach(unixClient, 'node.unix', payloads.map((p) => Buffer.from(p)));
      // The TCP listener serves the same daemon.
      ids.push(...await publishEach(tcpClient, 'node.unix', [Buffer.from('over-tcp')]));
      await sub.waitDeliveries(6);
      assert.deepEqual(sub.payloads(), [...payloads, 'over-tcp']);
      assert.deepEqual(sub.deliveries.map((d) => d.entry_id), ids);
      sub.ack(sub.deliveries.map((d) => d.delivery_id));
      await waitFor(async () => (await env.pending('node.unix', 'unix-handler')) === 0,
        'XPENDING unix-handler to reach 0');
      assert.equal(sub.deliveries.length, 6);
      assert.deepEqual(sub.notices, []);
    });
});
