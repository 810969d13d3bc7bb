// What a handler receives: one redrive.v1.Delivery, read through camelCase
// getters (nothing is copied: a worker may run tens of thousands a second),
// with an AbortSignal that fires when the handler's answer can no longer
// reach the daemon (its stream ended, or the worker stopped past its grace):
// the daemon will deliver the message again.

export class Message {
  /** @param delivery the decoded Delivery; @param task holds the signal, made on first use. */
  constructor(delivery, task) {
    this._d = delivery;
    this._task = task;
  }

  /** The daemon's id of this delivery (uint64, as a decimal string). */
  get deliveryId() { return this._d.delivery_id; }

  get channel() { return this._d.channel; }

  /** The Redis stream it was read from: the channel, or the handler's retry stream. */
  get stream() { return this._d.stream; }

  get entryId() { return this._d.entry_id; }

  /** The entry id the message had in the channel's stream on its first attempt. */
  get originalEntryId() { return this._d.original_entry_id; }

  /** @type {Buffer} */
  get payload() { return this._d.payload; }

  /** Headers in order ({ key, value }); duplicates are kept. */
  get headers() { return this._d.headers; }

  get contentType() { return this._d.content_type; }

  get correlationId() { return this._d.correlation_id; }

  /** W3C trace context: { traceparent, tracestate } ('' when absent). */
  get trace() {
    const t = this._d.trace;
    return { traceparent: t?.traceparent ?? '', tracestate: t?.tracestate ?? '' };
  }

  /** 1 on the first attempt. */
  get attempt() { return this._d.attempt; }

  /** 0 = unlimited retries. */
  get maxAttempts() { return this._d.max_attempts; }

  /** The previous attempt's error text ('' on a first attempt). */
  get previousError() { return this._d.previous_error; }

  get previousErrorCode() { return this._d.previous_error_code; }

  /** When the lease ends unless extended (Unix ms); the worker extends it while the handler runs. */
  get leaseDeadlineUnixMs() { return Number(this._d.lease_deadline_unix_ms); }

  /** SOURCE_FORMAT_BINARY_V1, _LEGACY_JSON, _RAW or _FIELDS. */
  get sourceFormat() { return this._d.source_format; }

  /** For SOURCE_FORMAT_FIELDS: the entry's fields ({ name, value } Buffers), in order. */
  get fields() { return this._d.fields; }

  /** Aborted when this delivery's answer can no longer be sent. */
  get signal() { return this._task.signal; }

  /** The first value of header `key`, or undefined. */
  header(key) {
    return this._d.headers.find((h) => h.key === key)?.value;
  }

  /** The payload as UTF-8 text. */
  text() {
    return this._d.payload.toString('utf8');
  }

  /** The payload parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}
