// Publisher: Broker.Publish and Broker.PublishBatch as promises of entry ids.
import { DEFAULT_RECONNECT } from './backoff.js';
import { Connection } from './connection.js';
import { RedriveError } from './errors.js';

const DEFAULT_DEADLINE_MS = 10_000;

function toBuffer(payload, what) {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new TypeError(`redrive: ${what} must be a Buffer, Uint8Array or string`);
}

// Headers as given: a { key: value } object, [key, value] pairs or
// { key, value } objects (the last two keep order and duplicates).
function toHeaders(headers) {
  if (headers === undefined || headers === null) return [];
  const list = Array.isArray(headers) || typeof headers[Symbol.iterator] === 'function'
    ? [...headers]
    : Object.entries(headers);
  return list.map((h) => (Array.isArray(h)
    ? { key: String(h[0]), value: String(h[1]) }
    : { key: String(h.key), value: String(h.value) }));
}

/** One OutgoingMessage from a payload and its options. */
export function outgoing(payload, options = {}, what = 'payload') {
  const message = {
    payload: toBuffer(payload, what),
    headers: toHeaders(options.headers),
    content_type: options.contentType || '',
    correlation_id: options.correlationId || '',
    reply_to: options.replyTo || '',
  };
  if (options.trace) {
    message.trace = { traceparent: options.trace.traceparent || '', tracestate: options.trace.tracestate || '' };
  }
  return message;
}

export class Publisher {
  /**
   * @param {object} options address, token, tls, channelOptions (see Connection),
   *   deadlineMs per call (default 10,000); waitForReady (default true): a call
   *   made while the daemon is unreachable (restarting) waits for it until its
   *   deadline (DEADLINE_EXCEEDED) instead of failing at once (UNAVAILABLE).
   */
  constructor(options) {
    this._conn = new Connection(options, { reconnect: DEFAULT_RECONNECT });
    this._deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this._waitForReady = options.waitForReady ?? true;
  }

  _call(method, request) {
    const callOptions = { deadline: Date.now() + this._deadlineMs };
    return new Promise((resolve, reject) => {
      this._conn.client[method](request, this._conn.metadata(this._waitForReady), callOptions,
        (err, response) => (err ? reject(new RedriveError(method, err)) : resolve(response)));
    });
  }

  /** Appends one message to `channel`; resolves to its Redis entry id. */
  async publish(channel, payload, options = {}) {
    const response = await this._call('Publish', {
      channel,
      message: outgoing(payload, options),
      max_len: String(options.maxLen ?? 0),
    });
    return response.entry_id;
  }

  /**
   * Appends several messages to `channel`, all or none; resolves to their
   * entry ids in order. Each item is a payload or { payload, ...options }.
   */
  async publishBatch(channel, messages, options = {}) {
    const request = {
      channel,
      messages: messages.map((m, i) => (Buffer.isBuffer(m) || typeof m === 'string' || m instanceof Uint8Array
        ? outgoing(m, {}, `messages[${i}]`)
        : outgoing(m.payload, m, `messages[${i}].payload`))),
      max_len: String(options.maxLen ?? 0),
    };
    const response = await this._call('PublishBatch', request);
    return response.entry_ids;
  }

  close() {
    this._conn.close();
  }
}
