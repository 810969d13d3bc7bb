// The order service, end to end against a running redrived: registers the
// billing handler, publishes five orders (two of them bad), waits until the
// good ones are billed and the bad ones are in the DLQ (read back through the
// Admin API), prints them and stops.
//
//   examples/node/order_service/run.sh      (npm ci, then this)
//
// The daemon: REDRIVE_ADDRESS, default scripts/run.sh's socket
// unix:${XDG_RUNTIME_DIR:-/tmp}/redrive/redrive.sock; the Admin token file:
// REDRIVE_ADMIN_TOKEN_FILE, default the one run.sh writes beside the socket.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

import grpc from '@grpc/grpc-js';
import { Publisher, Worker, loadServices } from 'redrive';

import {
  CHANNEL, HANDLER_ID, ORDERS, POLICY, billingHandler, publishOrders,
} from './orders.mjs';

const RUN_DIR = `${process.env.XDG_RUNTIME_DIR || '/tmp'}/redrive`;
const ADDRESS = process.env.REDRIVE_ADDRESS || `unix:${RUN_DIR}/redrive.sock`;
const TOKEN_FILE = process.env.REDRIVE_ADMIN_TOKEN_FILE || `${RUN_DIR}/admin-token`;
const WAIT_MS = 30_000;

// Admin.ListDeadLetters with the operator's bearer token (this package wraps
// only the Broker; any other call goes through the generated service).
function deadLetters(admin, token) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const request = { handler: { channel: CHANNEL, handler_id: HANDLER_ID }, page_size: 1000, order: 'ORDER_NEWEST_FIRST' };
  return new Promise((resolve, reject) => {
    admin.ListDeadLetters(request, md, { deadline: Date.now() + 5000 },
      (err, response) => (err ? reject(err) : resolve(response.dead_letters)));
  });
}

async function main() {
  const token = fs.readFileSync(TOKEN_FILE, 'utf8').trim();
  const admin = new (loadServices().Admin)(ADDRESS, grpc.credentials.createInsecure());
  const publisher = new Publisher({ address: ADDRESS });
  const worker = new Worker({ address: ADDRESS });
  console.log(`order service: daemon ${ADDRESS}, channel ${CHANNEL}, handler ${HANDLER_ID}`);

  const billed = new Set();
  worker.handle(CHANNEL, HANDLER_ID, billingHandler({
    billed: (order, total) => {
      billed.add(order.id);
      console.log(`billed order ${order.id}: ${order.quantity} x ${order.item} = ${total}`);
    },
    failed: (order, attempt, maxAttempts, problem) => {
      console.log(`order ${order.id} failed (attempt ${attempt} of ${maxAttempts}): ${problem}`);
    },
  }), { policy: POLICY, maxInFlight: 8 });
  await worker.start();

  // Printed first: the handler may bill an order before publishBatch returns.
  console.log(`publishing ${ORDERS.length} orders: ${ORDERS.map((o) => o.id).join(' ')}`);
  const ids = await publishOrders(publisher, crypto.randomUUID());
  const orderOf = new Map(ids.map((id, i) => [id, ORDERS[i]]));

  // Ours: the dead letters of this run's entries.
  let dead = [];
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    dead = (await deadLetters(admin, token)).filter((d) => orderOf.has(d.original_entry_id));
    if (billed.size + dead.length === ORDERS.length) break;
    await delay(100);
  }
  await worker.stop({ graceMs: 5000 });
  publisher.close();
  admin.close();

  dead.sort((a, b) => orderOf.get(a.original_entry_id).id - orderOf.get(b.original_entry_id).id);
  for (const d of dead) {
    console.log(`dead-lettered order ${orderOf.get(d.original_entry_id).id} after ${d.attempts} attempts: `
      + `${d.last_error} [${d.last_error_code}] (reason ${d.reason})`);
  }
  console.log(`done: ${billed.size} billed, ${dead.length} dead-lettered`);
  if (billed.size + dead.length !== ORDERS.length) {
    console.error(`order service: not every order was settled within ${WAIT_MS} ms`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`order service: ${err.message}`);
  process.exitCode = 1;
});
