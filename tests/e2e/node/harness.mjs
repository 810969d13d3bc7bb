// What the Node.js end-to-end tests share (tests/e2e/node, client/node/test):
// waits on conditions, free loopback ports, a minimal RESP2 client to look at
// what redrived wrote, and child processes (a private redis-server, the real
// daemon binary) killed if the test process exits early. No npm dependency.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export const REDIS_SERVER = process.env.REDRIVE_REDIS_SERVER || 'redis-server';
export const DAEMON = process.env.REDRIVE_DAEMON_BINARY;
export const WAIT_MS = 15000; // the bound of every wait on a condition

// Every child process still alive is killed if the test process exits early.
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

// ------------------------------------------------------------------ helpers

export async function waitFor(condition, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

class RespError extends Error {}

// Parses one RESP2 reply at `pos`; null when the buffer does not hold all of it.
function parseReply(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const items = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, at);
        if (item === null) return null;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`bad RESP reply type ${JSON.stringify(type)}`);
  }
}

// A minimal RESP2 client over net.Socket, enough to look at what redrived wrote.
export class Resp {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host: '127.0.0.1', port });
      socket.setTimeout(5000, () => socket.destroy(new Error('redis connect timed out')));
      socket.once('connect', () => {
        socket.setTimeout(0);
        resolve(new Resp(socket));
      });
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.drain();
    });
    const failAll = (err) => {
      for (const w of this.waiting.splice(0)) w.reject(err || new Error('redis connection closed'));
    };
    socket.on('error', failAll);
    socket.on('close', () => failAll());
  }

  drain() {
    while (this.waiting.length > 0) {
      const reply = parseReply(this.buf, 0);
      if (reply === null) return;
      this.buf = this.buf.subarray(reply.end);
      const w = this.waiting.shift();
      if (reply.value instanceof RespError) w.reject(reply.value);
      else w.resolve(reply.value);
    }
  }

  command(...args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const s = String(a);
      parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis ${args[0]} timed out`)), 5000);
      this.waiting.push({
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(parts.join(''));
    });
  }

  close() {
    this.socket.destroy();
  }
}

export function spawnChild(binary, args, logPath) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REDRIVE_')));
  const log = fs.openSync(logPath, 'w');
  const child = spawn(binary, args, { stdio: ['ignore', log, log], env });
  fs.closeSync(log);
  child.spawnError = null;
  child.on('error', (err) => {
    child.spawnError = err;
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export function exited(child) {
  return child.exitCode !== null || child.signalCode !== null || child.spawnError !== null;
}

export async function stopChild(child, signal = 'SIGKILL', graceMs = 10000) {
  if (!child || exited(child)) return null;
  const gone = new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, sig })));
  child.kill(signal);
  const result = await Promise.race([gone, delay(graceMs, null, { ref: false })]);
  if (result !== null) return result;
  child.kill('SIGKILL');
  return Promise.race([gone, delay(5000, null, { ref: false })]);
}

export async function startRedis(dir) {
  const port = await freePort();
  const proc = spawnChild(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--logfile', path.join(dir, 'redis.log')],
    path.join(dir, 'redis.stdout'));
  const redis = await waitFor(async () => {
    if (exited(proc)) throw new Error(`redis-server (${REDIS_SERVER}) exited: ${proc.spawnError || proc.exitCode}`);
    try {
      const client = await Resp.connect(port);
      if ((await client.command('PING')) === 'PONG') return client;
      client.close();
    } catch {
      // not listening yet
    }
    return null;
  }, 'redis-server to answer PING');
  return { port, proc, redis };
}

// Starts redrived on `listen` and waits for its ready file; `args` are added,
// its output goes to `logName` in `dir`. The ready file is removed first, so
// a restart in the same dir waits for the new one.
export async function startDaemon(dir, redisPort, listen, args = [], logName = 'redrived.log') {
  const ready = path.join(dir, 'ready.json');
  fs.rmSync(ready, { force: true });
  const logPath = path.join(dir, logName);
  const proc = spawnChild(
    DAEMON,
    [`--grpc-listen=${listen}`, `--ready-file=${ready}`, `--redis-url=redis://127.0.0.1:${redisPort}/0`,
      ...args],
    logPath);
  const info = await waitFor(() => {
    if (exited(proc)) {
      throw new Error(`redrived exited (${proc.spawnError || proc.exitCode}): ${fs.readFileSync(logPath, 'utf8')}`);
    }
    try {
      return JSON.parse(fs.readFileSync(ready, 'utf8'));
    } catch {
      return null; // not written yet, or half written
    }
  }, 'the ready file of redrived');
  return { proc, info, logPath };
}
