// What a handler receives: one delivery of a redrive.v1.Delivery, in
// camelCase, with an AbortSignal that fires when the handler's answer can no
// longer reach the daemon (its stream ended, or the worker stopped past its
// grace): the daemon will deliver the message again.

export class Message {
  constructor(delivery, signal) {
    /** The daemon's id of this delivery (uint64, as a decimal string). */
    this.deliveryId = delivery.delivery_id;
    this.channel = delivery.channel;
    /** The Redis stream it was read from: the channel, or the handler's retry stream. */
    this.stream = delivery.stream;
    this.entryId = delivery.entry_id;
    /** The entry id the message had in the channel's stream on its first attempt. */
    this.originalEntryId = delivery.original_entry_id;
    /** @type {Buffer} */
    this.payload = delivery.payload;
    /** Headers in order; duplicates are kept. */
    this.headers = delivery.headers.map((h) => ({ key: h.key, value: h.value }));
    this.contentType = delivery.content_type;
    this.correlationId = delivery.correlation_id;
    this.trace = { traceparent: delivery.trace?.traceparent ?? '', tracestate: delivery.trace?.tracestate ?? '' };
    /** 1 on the first attempt. */
    this.attempt = delivery.attempt;
    /** 0 = unlimited retries. */
    this.maxAttempts = delivery.max_attempts;
    /** The previous attempt's error text and code ('' on a first attempt). */
    this.previousError = delivery.previous_error;
    this.previousErrorCode = delivery.previous_error_code;
    /** When the lease ends unless extended (Unix ms); the worker extends it while the handler runs. */
    this.leaseDeadlineUnixMs = Number(delivery.lease_deadline_unix_ms);
    /** SOURCE_FORMAT_BINARY_V1, _LEGACY_JSON, _RAW or _FIELDS. */
    this.sourceFormat = delivery.source_format;
    /** For SOURCE_FORMAT_FIELDS: the entry's fields, in order. */
    this.fields = delivery.fields.map((f) => ({ name: f.name, value: f.value }));
    /** Aborted when this delivery's answer can no longer be sent. */
    this.signal = signal;
  }

  /** The first value of header `key`, or undefined. */
  header(key) {
    return this.headers.find((h) => h.key === key)?.value;
  }

  /** The payload as UTF-8 text. */
  text() {
    return this.payload.toString('utf8');
  }

  /** The payload parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}
