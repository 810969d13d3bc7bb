// Errors: a failed call (RedriveError, with the gRPC status code), and what a
// handler throws to choose its verb (RetryError: NACK with a delay;
// TerminateError: straight to the dead-letter queue).
import grpc from '@grpc/grpc-js';

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

/** A call to the daemon failed: `code` is the gRPC status code (grpc.status). */
export class RedriveError extends Error {
  constructor(method, status) {
    const codeName = CODE_NAMES[status.code] || String(status.code);
    super(`${method}: ${codeName}: ${status.details}`);
    this.name = 'RedriveError';
    this.code = status.code;
    this.codeName = codeName;
    this.details = status.details;
    this.metadata = status.metadata;
  }
}

// The daemon's bounds on a NACK/TERMINATE (broker.proto): longer reasons or
// codes, or a delay out of range, would make it ignore the verb.
export const MAX_REASON_BYTES = 4096;
export const MAX_ERROR_CODE_BYTES = 128;
export const MAX_DELAY_MS = 86_400_000;

function checkDelay(delayMs) {
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
    throw new RangeError(`redrive: delayMs ${delayMs} is not an integer in 0..${MAX_DELAY_MS}`);
  }
  return delayMs;
}

/** Thrown by a handler: NACK, redelivered after `delayMs` (the policy's backoff when absent). */
export class RetryError extends Error {
  constructor(message, { delayMs, code } = {}) {
    super(message);
    this.name = 'RetryError';
    this.delayMs = delayMs === undefined ? undefined : checkDelay(delayMs);
    if (code !== undefined) this.code = code;
  }
}

/** Thrown by a handler: TERMINATE, the message goes to the handler's DLQ at once. */
export class TerminateError extends Error {
  constructor(message, { code } = {}) {
    super(message);
    this.name = 'TerminateError';
    if (code !== undefined) this.code = code;
  }
}

/** `throw retry(5000, 'rate limited')`: a RetryError with that delay. */
export function retry(delayMs, message = `retry in ${delayMs} ms`, options = {}) {
  return new RetryError(message, { ...options, delayMs });
}

/** `throw terminate('bad order')`: a TerminateError. */
export function terminate(message, options = {}) {
  return new TerminateError(message, options);
}

// The first `max` bytes of `text` in UTF-8, cut on a character boundary.
export function truncateUtf8(text, max) {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

/** The verb answering a handler that threw `err` (anything may be thrown). */
export function verbForError(err) {
  const isError = err instanceof Error;
  const reason = truncateUtf8(isError ? err.message || err.name : String(err), MAX_REASON_BYTES);
  const code = isError && typeof err.code === 'string' ? truncateUtf8(err.code, MAX_ERROR_CODE_BYTES) : '';
  if (isError && (err instanceof TerminateError || err.name === 'TerminateError')) {
    return { terminate: { reason, error_code: code } };
  }
  const nack = { reason, error_code: code };
  if (isError && Number.isInteger(err.delayMs) && err.delayMs >= 0 && err.delayMs <= MAX_DELAY_MS) {
    nack.delay_ms = err.delayMs;
  }
  return { nack };
}
