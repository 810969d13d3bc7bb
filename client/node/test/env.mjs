// The world of one test file: a private redis-server and the real redrived
// (REDRIVE_DAEMON_BINARY) on a Unix socket in a temp dir, with an Admin token;
// the daemon can be killed (-9), drained (SIGTERM) and restarted on the same
// socket. Process and RESP helpers come from tests/e2e/node/harness.mjs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import grpc from '@grpc/grpc-js';
import { Publisher, Worker, loadServices } from 'redrive';

import {
  DAEMON, startDaemon, startRedis, stopChild, waitFor,
} from '../../../tests/e2e/node/harness.mjs';

export { waitFor };

if (!DAEMON) throw new Error('REDRIVE_DAEMON_BINARY must name the redrived binary');

export class Env {
  /** `args`: extra daemon flags; `tcp`: listen on a loopback port too (tcpAddress). */
  static async start(args = [], { tcp = false } = {}) {
    const env = new Env();
    env.tcp = tcp;
    env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redrive-node-client-'));
    env.socket = path.join(env.dir, 'redrive.sock');
    env.token = crypto.randomBytes(16).toString('hex');
    env.tokenFile = path.join(env.dir, 'admin-token');
    fs.writeFileSync(env.tokenFile, env.token, { mode: 0o600 });
    env.args = [`--admin-token-file=${env.tokenFile}`, '--shutdown-grace-ms=3000', ...args];
    env.starts = 0;
    const r = await startRedis(env.dir);
    env.redisPort = r.port;
    env.redisProc = r.proc;
    env.redis = r.redis;
    await env.startDaemon();
    env.adminClient = new (loadServices().Admin)(`unix:${env.socket}`, grpc.credentials.createInsecure());
    env.publisher = new Publisher({ address: env.address });
    env.workers = [];
    return env;
  }

  /** A Worker on the socket whose log lines are kept (`logLines`); stopped by stop(). */
  worker(options = {}) {
    const logger = recordingLogger();
    const w = new Worker({ address: this.address, logger, ...options });
    w.logLines = logger.lines;
    this.workers.push(w);
    return w;
  }

  get address() {
    return `unix:${this.socket}`;
  }

  async startDaemon() {
    this.starts++;
    const listen = this.tcp ? `127.0.0.1:0,${this.address}` : this.address;
    this.daemon = await startDaemon(this.dir, this.redisPort, listen, this.args, `redrived-${this.starts}.log`);
    this.tcpAddress = this.daemon.info.grpc.find((a) => !a.startsWith('unix:'));
  }

  /** kill -9: no drain, nothing flushed. */
  async killDaemon() {
    await stopChild(this.daemon.proc, 'SIGKILL');
  }

  /** SIGTERM: the daemon drains its streams within --shutdown-grace-ms, then exits. */
  async terminateDaemon() {
    return stopChild(this.daemon.proc, 'SIGTERM');
  }

  admin(method, request) {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${this.token}`);
    return new Promise((resolve, reject) => {
      this.adminClient[method](request, md, { deadline: Date.now() + 10000 },
        (err, response) => (err ? reject(err) : resolve(response)));
    });
  }

  /** Every dead letter of the handler, oldest first (Admin.ListDeadLetters). */
  async deadLetters(channel, handlerId) {
    const response = await this.admin('ListDeadLetters', {
      handler: { channel, handler_id: handlerId }, page_size: 1000, preview_bytes: 65536,
    });
    return response.dead_letters;
  }

  /** XPENDING's count for a group; 0 when the stream or group does not exist. */
  async pending(stream, group) {
    if ((await this.redis.command('EXISTS', stream)) === 0) return 0;
    const groups = await this.redis.command('XINFO', 'GROUPS', stream);
    if (!groups.some((g) => g[1] === group)) return 0;
    return (await this.redis.command('XPENDING', stream, group))[0];
  }

  /** Nothing of the handler is left to settle: main and retry groups, due retries. */
  async settled(channel, handlerId) {
    return (await this.pending(channel, handlerId)) === 0
      && (await this.pending(`${channel}.${handlerId}.retry`, `${handlerId}-retry`)) === 0
      && (await this.redis.command('EXISTS', `${channel}.${handlerId}.retry.due`)) === 0;
  }

  daemonLog() {
    return fs.readdirSync(this.dir).filter((f) => f.startsWith('redrived-'))
      .map((f) => fs.readFileSync(path.join(this.dir, f), 'utf8')).join('');
  }

  async stop() {
    for (const w of this.workers || []) await w.stop({ graceMs: 1000 });
    this.publisher?.close();
    this.adminClient?.close();
    this.redis?.close();
    if (this.daemon) await stopChild(this.daemon.proc, 'SIGTERM');
    if (this.redisProc) await stopChild(this.redisProc, 'SIGKILL');
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A logger keeping every line, for assertions (and printed on failure by the tests). */
function recordingLogger() {
  const lines = [];
  const keep = (level) => (line) => lines.push(`${level} ${line}`);
  return { lines, debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
}

/** A promise with its resolve function outside, to hold handlers until a test lets them go. */
export function gate() {
  let open;
  const promise = new Promise((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
