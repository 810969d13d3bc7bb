// End-to-end throughput of a no-op handler through the redrive Node Worker,
// beside a direct Redis consumer from npm (ioredis: XREADGROUP COUNT n + one
// multi-id XACK per batch) on the same number of identical entries, in the
// same run; rounds alternate and the medians' ratio is reported.
//
//   node bench.mjs --address=unix:/path/to/redrived.sock|127.0.0.1:PORT --redis-port=PORT
//       [--messages=50000] [--payload=100] [--count=100] [--max-in-flight=1000] [--rounds=3]
//
// Both sides start from N entries already in their stream (published through
// the daemon, so they are byte-identical) and stop the clock when the last one
// is acknowledged in Redis (XPENDING 0 with every entry read).
import { Publisher, Worker } from 'redrive';
import Redis from 'ioredis';

const TIMEOUT_MS = 120_000; // per measured phase

function flags() {
  const out = {
    address: '', 'redis-port': 0, messages: 50_000, payload: 100, count: 100, 'max-in-flight': 1000, rounds: 3,
  };
  for (const arg of process.argv.slice(2)) {
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (!m || !(m[1] in out)) throw new Error(`unknown flag ${arg}`);
    out[m[1]] = typeof out[m[1]] === 'number' ? Number(m[2]) : m[2];
  }
  if (!out.address || !out['redis-port']) throw new Error('--address and --redis-port are required');
  return out;
}

async function preload(publisher, channel, n, payload) {
  const batch = Array.from({ length: 1000 }, () => payload);
  for (let left = n; left > 0; left -= 1000) {
    await publisher.publishBatch(channel, left >= 1000 ? batch : batch.slice(0, left));
  }
}

// Resolves when nothing of `group` is pending and it has read the whole stream.
async function drained(redis, stream, group, n) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const groups = await redis.xinfo('GROUPS', stream);
    const g = groups.find((fields) => fields[1] === group);
    if (g) {
      const info = Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [g[2 * i], g[2 * i + 1]]));
      if (info.pending === 0 && info['entries-read'] === n) return;
    }
    if (Date.now() > deadline) throw new Error(`${stream}: not drained within ${TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

async function direct(redis, stream, n, count) {
  await redis.xgroup('CREATE', stream, 'direct', '0');
  const began = process.hrtime.bigint();
  let acked = 0;
  const deadline = Date.now() + TIMEOUT_MS;
  while (acked < n) {
    const reply = await redis.xreadgroup('GROUP', 'direct', 'c1', 'COUNT', count, 'STREAMS', stream, '>');
    if (reply === null) {
      if (Date.now() > deadline) throw new Error('direct: timed out');
      continue;
    }
    const ids = reply[0][1].map((entry) => entry[0]);
    acked += await redis.xack(stream, 'direct', ...ids);
  }
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  await drained(redis, stream, 'direct', n);
  return n / seconds;
}

async function viaWorker(address, redis, channel, n, maxInFlight) {
  let handled = 0;
  const worker = new Worker({ address }).handle(channel, 'worker', async () => {
    handled++;
  }, { start: 'backlog', maxInFlight });
  const began = process.hrtime.bigint();
  await worker.start();
  const deadline = Date.now() + TIMEOUT_MS;
  while (handled < n) { // a cheap local wait first, then Redis says the ACKs landed
    if (Date.now() > deadline) throw new Error(`worker: handled ${handled} of ${n} in ${TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await drained(redis, channel, 'worker', n);
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  await worker.stop({ graceMs: 5000 });
  if (handled !== n) throw new Error(`worker: handled ${handled} of ${n}`);
  return n / seconds;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main() {
  const f = flags();
  const redis = new Redis({ host: '127.0.0.1', port: f['redis-port'], lazyConnect: true });
  await redis.connect();
  const publisher = new Publisher({ address: f.address });
  const payload = Buffer.alloc(f.payload, 'x');
  const directRates = [];
  const workerRates = [];
  console.log(`node ${process.version}, ${f.messages} messages of ${f.payload} bytes, direct XREADGROUP COUNT `
    + `${f.count}, worker maxInFlight ${f['max-in-flight']}, ${f.rounds} rounds`);
  for (let round = 1; round <= f.rounds; round++) {
    await redis.flushall();
    await preload(publisher, `bench.direct.${round}`, f.messages, payload);
    await preload(publisher, `bench.worker.${round}`, f.messages, payload);
    const d = await direct(redis, `bench.direct.${round}`, f.messages, f.count);
    const w = await viaWorker(f.address, redis, `bench.worker.${round}`, f.messages, f['max-in-flight']);
    directRates.push(d);
    workerRates.push(w);
    console.log(`round ${round}: direct ioredis ${Math.round(d)} msg/s, redrive Worker ${Math.round(w)} msg/s, `
      + `ratio ${(w / d).toFixed(2)}`);
  }
  const d = median(directRates);
  const w = median(workerRates);
  console.log(`median: direct ioredis ${Math.round(d)} msg/s, redrive Worker ${Math.round(w)} msg/s, `
    + `ratio ${(w / d).toFixed(2)} (target >= 0.5)`);
  publisher.close();
  redis.disconnect();
}

main().catch((err) => {
  console.error(`bench: ${err.stack || err.message}`);
  process.exitCode = 1;
});
