// Uses every export of the package as an application would, type-checked by
// `tsc --noEmit --strict` (test/run.sh, "types"): the declarations in
// index.d.ts must be complete and usable under strict settings. The package
// is imported by its own name (the "exports" of package.json), so the types
// come from there exactly as a dependent project would see them.
import {
  Message,
  PROTO_DIR,
  Publisher,
  RedriveError,
  RetryError,
  TerminateError,
  Worker,
  loadServices,
  retry,
  status,
  terminate,
  type HandleOptions,
  type HandlerStats,
  type WorkerOptions,
} from 'redrive';
import { credentials } from '@grpc/grpc-js';

interface Order {
  id: number;
  amount: number;
}

export async function publishOrders(address: string): Promise<string[]> {
  const publisher = new Publisher({ address, token: 'secret-token', deadlineMs: 5000 });
  try {
    const first: string = await publisher.publish('orders', JSON.stringify({ id: 1, amount: 5 }), {
      contentType: 'application/json',
      headers: { tenant: 'acme' },
      correlationId: 'order-1',
      trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      maxLen: 10000,
    });
    const rest: string[] = await publisher.publishBatch('orders', [
      Buffer.from('raw'),
      new Uint8Array([1, 2, 3]),
      { payload: '{"id":2}', headers: [['k', 'v'], ['k', 'w']], contentType: 'application/json' },
      { payload: 'x', headers: [{ key: 'k', value: 'v' }] },
    ], { maxLen: 10000 });
    return [first, ...rest];
  } catch (err) {
    if (err instanceof RedriveError && err.code === status.UNAVAILABLE) {
      const name: string = err.codeName;
      throw new Error(`daemon down: ${name} ${err.details}`);
    }
    throw err;
  } finally {
    publisher.close();
  }
}

async function billing(message: Message): Promise<void> {
  const order = message.json<Order>();
  const attempt: number = message.attempt;
  const max: number = message.maxAttempts;
  const previous: string = message.previousError + message.previousErrorCode;
  const tenant: string | undefined = message.header('tenant');
  const payload: Buffer = message.payload;
  const ids: string = message.deliveryId + message.entryId + message.originalEntryId + message.stream;
  const trace: string = message.trace.traceparent + message.trace.tracestate + message.correlationId;
  const format: string = message.sourceFormat + message.contentType + message.channel;
  const deadline: number = message.leaseDeadlineUnixMs;
  const names: Buffer[] = message.fields.map((f) => f.name);
  void [attempt, max, previous, tenant, payload, ids, trace, format, deadline, names, message.text()];
  if (message.signal.aborted) return;
  if (order.amount < 0) throw terminate('negative amount', { code: 'E_AMOUNT' });
  if (order.amount > 1000) throw retry(5000, 'needs approval', { code: 'E_LIMIT' });
  if (order.id === 0) throw new RetryError('no id yet', { delayMs: 100 });
  if (order.id < 0) throw new TerminateError('bad id');
}

export async function runWorker(address: string): Promise<HandlerStats[]> {
  const options: WorkerOptions = {
    address,
    tls: { caFile: '/etc/redrive/ca.crt', certFile: 'client.crt', keyFile: 'client.key', serverName: 'redrive' },
    reconnect: { initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.3 },
    logger: console,
    channelOptions: { 'grpc.keepalive_time_ms': 30000 },
    onError: (error, handler) => console.error(handler.channel, handler.handlerId, error.code),
  };
  const handleOptions: HandleOptions = {
    policy: { maxRetries: 3, initialBackoffMs: 100, multiplier: 2, maxBackoffMs: 1000, jitter: 0.1 },
    deadLetterPolicy: { maxLen: 1000, overflow: 'evict-oldest' },
    maxInFlight: 8,
    leaseMs: 10000,
    start: 'backlog',
    consumerLabel: 'pod-1',
  };
  const worker = new Worker(options)
    .handle('orders', 'billing', billing, handleOptions)
    .handle('orders', 'audit', (m) => console.log(m.entryId), { start: { afterId: '0-0' }, autoAck: false })
    .handle('orders', 'sync', () => undefined);
  await worker.start();
  await worker.stop({ graceMs: 5000 });
  await worker.stop();
  return worker.stats();
}

export function admin(address: string): string {
  const { Admin, Broker } = loadServices();
  const client = new Admin(address, credentials.createInsecure());
  client.close();
  void Broker;
  return PROTO_DIR;
}
