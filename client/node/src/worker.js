// Worker: runs async handlers on the Subscribe protocol of broker.proto.
//
// One Subscribe stream per handle() (a "session"; a new one after each
// reconnect). For each delivery the handler function runs, at most
// `maxInFlight` at a time per handler, even across a reconnect while handlers
// of the old stream still run. Its outcome becomes a verb: resolve → ACK,
// throw → NACK with the error's text (RetryError: with a delay),
// TerminateError → TERMINATE. Verbs settled before the event loop's next
// check phase (setImmediate) go out in one Verbs message. A handler still
// running half a lease after its delivery arrived gets an EXTEND, again every
// half lease, until it settles. Verbs of deliveries whose stream has ended are
// dropped with a log line, never written to a newer stream (a restarted
// daemon reuses delivery ids; the daemon redelivers those messages).
//
// A stream that ends with UNAVAILABLE (or any code but the fatal ones below)
// or after a drain is opened again after a capped, jittered exponential
// backoff, and registers again. On the daemon's `drain` or stop(), the
// session sends `stop`, lets the handlers it holds finish, then half-closes.
import grpc from '@grpc/grpc-js';

import { Backoff, DEFAULT_RECONNECT } from './backoff.js';
import { Connection } from './connection.js';
import { RedriveError, verbForError } from './errors.js';
import { Message } from './message.js';

// Codes that will not change by trying again: the handler stops.
const FATAL_CODES = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.NOT_FOUND,
]);
const ACK = Object.freeze({ ack: {} });
const EXTEND_LEASE = Object.freeze({ lease_ms: 0 }); // 0: the registration's lease
const MAX_VERBS_PER_MESSAGE = 10_000; // broker.proto: 1..10,000 verbs per message
const DEFAULT_GRACE_MS = 10_000;

const START_KINDS = { new: 'START_NEW', backlog: 'START_BACKLOG' };
const OVERFLOW = { 'evict-oldest': 'OVERFLOW_EVICT_OLDEST', hold: 'OVERFLOW_HOLD' };

function makeLogger(logger) {
  const noop = () => {};
  const fallback = {
    debug: noop,
    info: noop,
    warn: (line) => console.warn(line),
    error: (line) => console.error(line),
  };
  if (!logger) return fallback;
  const pick = (level) => (typeof logger[level] === 'function' ? (line) => logger[level](line) : noop);
  return { debug: pick('debug'), info: pick('info'), warn: pick('warn'), error: pick('error') };
}

function retryPolicy(policy) {
  if (policy === undefined || policy === null) return undefined;
  const out = { unlimited: Boolean(policy.unlimited) };
  const fields = [['maxRetries', 'max_retries'], ['initialBackoffMs', 'initial_backoff_ms'],
    ['multiplier', 'multiplier'], ['maxBackoffMs', 'max_backoff_ms'], ['jitter', 'jitter']];
  for (const [from, to] of fields) {
    if (policy[from] !== undefined) out[to] = policy[from];
  }
  return out;
}

function startPosition(start) {
  if (start === undefined || start === null) return undefined;
  if (typeof start === 'string') {
    if (!(start in START_KINDS)) throw new TypeError(`redrive: start "${start}" is not "new", "backlog" or { afterId }`);
    return { kind: START_KINDS[start] };
  }
  if (typeof start.afterId === 'string') return { kind: 'START_AT_ID', entry_id: start.afterId };
  throw new TypeError('redrive: start must be "new", "backlog" or { afterId: "<ms>-<seq>" }');
}

function deadLetterPolicy(policy) {
  if (policy === undefined || policy === null) return undefined;
  const overflow = policy.overflow === undefined ? 'OVERFLOW_UNSPECIFIED' : OVERFLOW[policy.overflow];
  if (overflow === undefined) throw new TypeError(`redrive: deadLetterPolicy.overflow "${policy.overflow}" is not "evict-oldest" or "hold"`);
  return { max_len: String(policy.maxLen ?? 0), overflow };
}

function verbName(verb) {
  return verb.ack ? 'ACK' : verb.nack ? 'NACK' : verb.terminate ? 'TERMINATE' : 'EXTEND';
}

// One delivery from receipt to its verb.
class Task {
  constructor(session, delivery, extendAt) {
    this.session = session;
    this.delivery = delivery;
    this.extendAt = extendAt; // when its lease is next renewed, if still unsettled
    this.controller = null; // made when the handler first reads message.signal
    this.abortReason = undefined;
    this.started = false;
    this.settled = false;
  }

  get signal() {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason) {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    if (this.controller !== null) this.controller.abort(reason);
  }

  label() {
    const d = this.delivery;
    return `delivery ${d.delivery_id} (entry ${d.entry_id}, attempt ${d.attempt})`;
  }
}

// One Subscribe call, from `register` to its status.
class Session {
  constructor(sub) {
    this.sub = sub;
    this.tasks = new Map(); // delivery id → Task, unsettled
    this.verbs = [];
    this.flushScheduled = false;
    this.registered = null;
    this.ended = false; // the call's status arrived
    this.abandoned = false; // cancelled by stop() past its grace
    this.stopSent = false;
    this.halfClosed = false;
    this.closing = false; // drain or stop: settle what we hold, then half-close
    this.leaseSweep = null; // renews the leases of deliveries held past half a lease
    this.call = sub.worker._conn.client.Subscribe(sub.worker._conn.metadata());
    this.call.on('data', (response) => this.onResponse(response));
    this.call.on('error', () => {}); // the 'status' event carries it
    this.call.on('status', (status) => this.onStatus(status));
    this.write({ register: sub.register });
  }

  // Verbs can no longer reach the daemon through this call.
  get dead() {
    return this.ended || this.abandoned;
  }

  write(request) {
    if (this.dead || this.halfClosed) return false;
    try {
      this.call.write(request);
      return true;
    } catch (err) {
      this.sub.log.warn(`redrive: ${this.sub.name}: write failed: ${err.message}`);
      return false;
    }
  }

  onResponse(response) {
    switch (response.kind) {
      case 'registered':
        this.registered = response.registered;
        this.startLeaseSweep();
        this.sub.onRegistered(this);
        break;
      case 'deliveries':
        this.sub.counters.deliveryMessages++;
        for (const delivery of response.deliveries.deliveries) this.sub.accept(this, delivery);
        break;
      case 'notices':
        for (const n of response.notices.notices) {
          this.sub.counters.notices++;
          this.sub.log.warn(`redrive: ${this.sub.name}: notice ${n.code} for delivery ${n.delivery_id}: ${n.message}`);
        }
        break;
      case 'drain':
        this.sub.log.info(`redrive: ${this.sub.name}: the daemon drains (${response.drain.reason}); `
          + `finishing ${this.tasks.size} deliveries within ${response.drain.grace_ms} ms`);
        this.close();
        break;
      default:
        this.sub.log.warn(`redrive: ${this.sub.name}: unexpected response ${JSON.stringify(response.kind)}`);
    }
  }

  // Every sixth of a lease, an EXTEND for each delivery held for half a lease
  // since it arrived or was last extended: renewed between 1/2 and 2/3 of it.
  startLeaseSweep() {
    const leaseMs = this.registered.lease_ms;
    this.halfLeaseMs = Math.floor(leaseMs / 2);
    this.leaseSweep = setInterval(() => {
      const now = Date.now();
      for (const task of this.tasks.values()) {
        if (task.settled || task.extendAt > now) continue;
        task.extendAt = now + this.halfLeaseMs;
        this.queueVerb({ delivery_id: task.delivery.delivery_id, extend: EXTEND_LEASE });
        this.sub.counters.extends++;
      }
    }, Math.max(10, Math.floor(leaseMs / 6)));
  }

  queueVerb(verb) {
    this.verbs.push(verb);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush() {
    this.flushScheduled = false;
    const verbs = this.verbs;
    this.verbs = [];
    for (let i = 0; i < verbs.length; i += MAX_VERBS_PER_MESSAGE) {
      const chunk = verbs.slice(i, i + MAX_VERBS_PER_MESSAGE);
      if (this.write({ verbs: { verbs: chunk } })) {
        this.sub.counters.verbMessages++;
      } else {
        this.sub.counters.dropped += chunk.length;
        this.sub.log.warn(`redrive: ${this.sub.name}: dropped ${chunk.length} verbs: the stream is closed`);
      }
    }
    this.maybeHalfClose();
  }

  // Stop taking work: `stop`, then half-close once every delivery held is settled.
  close() {
    if (this.closing || this.ended) return;
    this.closing = true;
    if (this.registered === null) {
      this.call.cancel(); // nothing held yet
      return;
    }
    this.stopSent = this.write({ stop: {} });
    this.maybeHalfClose();
  }

  maybeHalfClose() {
    if (!this.closing || this.halfClosed || this.ended || this.tasks.size > 0 || this.verbs.length > 0) return;
    this.halfClosed = true;
    this.call.end();
  }

  onStatus(status) {
    this.ended = true;
    clearInterval(this.leaseSweep);
    this.abortTasks(new Error(`the Subscribe stream ended: ${status.code} ${status.details}`));
    this.sub.onSessionEnd(this, status);
  }

  // Stop past its grace: the call is cancelled, handlers still running are told.
  abandon() {
    if (this.dead) return;
    this.abandoned = true;
    clearInterval(this.leaseSweep);
    this.abortTasks(new Error('the worker stopped before this handler finished'));
    this.call.cancel();
  }

  abortTasks(reason) {
    for (const task of this.tasks.values()) {
      if (!task.settled) task.abort(reason);
    }
  }
}

// One handle(): its registration, its sessions over time, its concurrency.
class Subscription {
  constructor(worker, channel, handlerId, fn, options) {
    this.worker = worker;
    this.log = worker._log;
    this.name = `${channel}/${handlerId}`;
    this.fn = fn;
    this.maxInFlight = options.maxInFlight ?? 64;
    if (!Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) {
      throw new RangeError(`redrive: maxInFlight ${this.maxInFlight} is not a positive integer`);
    }
    this.register = {
      channel,
      handler_id: handlerId,
      retry_policy: retryPolicy(options.policy),
      dead_letter_policy: deadLetterPolicy(options.deadLetterPolicy),
      max_in_flight: this.maxInFlight,
      lease_ms: options.leaseMs ?? 0,
      start: startPosition(options.start),
      consumer_label: options.consumerLabel ?? '',
      auto_ack: Boolean(options.autoAck),
    };
    this.session = null;
    this.backoff = new Backoff(worker._reconnect);
    this.reconnectTimer = null;
    this.failed = null;
    this.running = 0; // handlers running, whatever their session
    this.waiting = []; // tasks received beyond maxInFlight (after a reconnect)
    this.counters = {
      registrations: 0, deliveryMessages: 0, deliveries: 0, verbMessages: 0,
      acks: 0, nacks: 0, terminates: 0, extends: 0, dropped: 0, notices: 0,
    };
    this.firstRegistration = new Promise((resolve, reject) => {
      this.onFirstRegistration = resolve;
      this.onFirstFailure = reject;
    });
    this.firstRegistration.catch(() => {}); // also reported by start() or onError
  }

  open() {
    this.reconnectTimer = null;
    if (this.worker._stopping || this.failed) return;
    this.session = new Session(this);
  }

  onRegistered(session) {
    this.counters.registrations++;
    this.backoff.reset();
    const r = session.registered;
    this.log.info(`redrive: ${this.name}: registered as ${r.names.consumer} (max_in_flight ${r.max_in_flight}, `
      + `lease ${r.lease_ms} ms)`);
    this.onFirstRegistration(r);
    if (this.worker._stopping) session.close();
  }

  accept(session, delivery) {
    this.counters.deliveries++;
    const task = new Task(session, delivery, Date.now() + session.halfLeaseMs);
    session.tasks.set(delivery.delivery_id, task);
    if (this.running < this.maxInFlight) this.run(task);
    else this.waiting.push(task);
  }

  run(task) {
    task.started = true;
    this.running++;
    let result;
    try {
      result = this.fn(new Message(task.delivery, task));
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      () => this.settle(task, ACK),
      (err) => this.settle(task, verbForError(err)));
  }

  settle(task, action) {
    task.settled = true;
    this.running--;
    const session = task.session;
    const id = task.delivery.delivery_id;
    const verb = action.ack ? { delivery_id: id, ack: action.ack }
      : action.nack ? { delivery_id: id, nack: action.nack } : { delivery_id: id, terminate: action.terminate };
    if (session.dead) {
      this.counters.dropped++;
      this.log.warn(`redrive: ${this.name}: dropped the ${verbName(verb)} of ${task.label()}: its stream ended; `
        + 'the daemon delivers it again');
    } else {
      session.tasks.delete(task.delivery.delivery_id);
      if (action.ack) this.counters.acks++;
      else if (action.nack) this.counters.nacks++;
      else this.counters.terminates++;
      session.queueVerb(verb);
    }
    this.pump();
    this.worker._changed();
  }

  pump() {
    while (this.running < this.maxInFlight && this.waiting.length > 0) {
      const task = this.waiting.shift();
      if (!task.session.dead) this.run(task);
    }
  }

  onSessionEnd(session, status) {
    // Held but never started: the daemon redelivers them.
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((task) => task.session !== session);
    if (before > this.waiting.length) {
      this.counters.dropped += before - this.waiting.length;
      this.log.warn(`redrive: ${this.name}: ${before - this.waiting.length} deliveries not started are dropped `
        + 'with their stream; the daemon delivers them again');
    }
    if (this.session === session) this.session = null;
    const err = new RedriveError('Subscribe', status);
    if (this.worker._stopping) {
      this.worker._changed();
      return;
    }
    if (session.registered === null && FATAL_CODES.has(status.code)) {
      this.failed = err;
      this.log.error(`redrive: ${this.name}: ${err.message}; this handler stops`);
      this.onFirstFailure(err);
      this.worker._failed(this, err);
      this.worker._changed();
      return;
    }
    const delay = this.backoff.next();
    const why = session.closing ? 'after a drain' : `with ${err.codeName}: ${status.details}`;
    this.log.warn(`redrive: ${this.name}: the stream ended ${why}; reconnecting in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
    this.worker._changed();
  }

  stop() {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    if (this.session !== null) this.session.close();
  }

  // Grace over: give up on what still runs.
  abandon() {
    const left = this.running + this.waiting.length;
    if (left > 0) {
      this.log.warn(`redrive: ${this.name}: the stop grace ended with ${left} deliveries unsettled; `
        + 'the daemon delivers them again');
    }
    this.waiting = [];
    if (this.session !== null) this.session.abandon();
  }

  idle() {
    return this.running === 0 && this.waiting.length === 0 && this.session === null && this.reconnectTimer === null;
  }

  stats() {
    return { channel: this.register.channel, handlerId: this.register.handler_id, running: this.running,
      connected: this.session !== null && this.session.registered !== null, ...this.counters };
  }
}

export class Worker {
  /**
   * @param {object} options address, token, tls, channelOptions (see Connection);
   *   reconnect { initialMs, maxMs, multiplier, jitter }; logger { debug, info, warn, error };
   *   onError(err, { channel, handlerId }) for a handler stopped by a fatal status.
   */
  constructor(options) {
    this._reconnect = { ...DEFAULT_RECONNECT, ...(options.reconnect || {}) };
    new Backoff(this._reconnect); // validates
    this._conn = new Connection(options, { reconnect: this._reconnect });
    this._log = makeLogger(options.logger);
    this._onError = options.onError || null;
    this._subs = [];
    this._started = false;
    this._stopping = null;
    this._waiters = [];
  }

  /**
   * Registers `fn` for `handlerId` on `channel`. Options: policy (retry policy),
   * deadLetterPolicy, maxInFlight (default 64), leaseMs (default: the daemon's,
   * 30,000), start ('new' | 'backlog' | { afterId }), consumerLabel, autoAck.
   */
  handle(channel, handlerId, fn, options = {}) {
    if (typeof fn !== 'function') throw new TypeError('redrive: handle() needs a handler function');
    if (this._stopping) throw new Error('redrive: the worker is stopping');
    const sub = new Subscription(this, channel, handlerId, fn, options);
    this._subs.push(sub);
    if (this._started) sub.open();
    return this;
  }

  /** Opens every handler's stream; resolves once each is registered (reconnecting meanwhile). */
  async start() {
    if (this._stopping) throw new Error('redrive: the worker is stopping');
    if (!this._started) {
      this._started = true;
      for (const sub of this._subs) sub.open();
    }
    try {
      await Promise.all(this._subs.map((sub) => sub.firstRegistration));
    } catch (err) {
      await this.stop({ graceMs: 0 });
      throw err;
    }
  }

  /**
   * Takes no new work, lets running handlers finish within `graceMs`, closes
   * the streams and the connection. Handlers still running after the grace
   * have their signal aborted and their deliveries are redelivered.
   */
  stop({ graceMs = DEFAULT_GRACE_MS } = {}) {
    if (this._stopping === null) this._stopping = this._stop(graceMs);
    return this._stopping;
  }

  async _stop(graceMs) {
    for (const sub of this._subs) sub.stop();
    const idle = () => this._subs.every((sub) => sub.idle());
    if (!idle()) {
      let timer;
      const graceOver = new Promise((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([graceOver, this._until(idle)]);
      clearTimeout(timer);
    }
    if (!idle()) {
      for (const sub of this._subs) sub.abandon();
      // The cancelled calls' statuses, so that stats() shows them closed.
      let timer;
      const bound = new Promise((resolve) => {
        timer = setTimeout(resolve, 1000);
      });
      await Promise.race([bound, this._until(() => this._subs.every((sub) => sub.session === null))]);
      clearTimeout(timer);
    }
    this._conn.close();
  }

  // Resolves when `condition` holds, checked whenever a handler or stream changes state.
  _until(condition) {
    return new Promise((resolve) => {
      const waiter = () => {
        if (!condition()) return false;
        resolve();
        return true;
      };
      if (!waiter()) this._waiters.push(waiter);
    });
  }

  _changed() {
    if (this._waiters.length > 0) this._waiters = this._waiters.filter((waiter) => !waiter());
  }

  _failed(sub, err) {
    if (this._onError) this._onError(err, { channel: sub.register.channel, handlerId: sub.register.handler_id });
  }

  /** Per handler: counters since start, handlers running, whether a stream is registered. */
  stats() {
    return this._subs.map((sub) => sub.stats());
  }
}
