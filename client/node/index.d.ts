// Type declarations of the redrive package (src/*.js), written by hand.
// test/types/usage.ts uses every export under `tsc --strict`, and
// test/unit.test.mjs checks that the runtime exports are the declared ones.
/// <reference types="node" />

import type { Metadata, ServiceClientConstructor, status as grpcStatus } from '@grpc/grpc-js';

/** How to reach redrived. */
export interface ConnectionOptions {
  /** `unix:/path/redrive.sock` or `host:port`. */
  address: string;
  /** Bearer token sent as `authorization: Bearer <token>` on every call (`--broker-auth=token`). */
  token?: string;
  /** TLS to a TCP address (`true`: the system's roots). Not with `unix:`. */
  tls?: true | TlsOptions;
  /** Extra @grpc/grpc-js channel options, e.g. `{ 'grpc.keepalive_time_ms': 30000 }`. */
  channelOptions?: Record<string, string | number>;
}

/** PEM contents (`ca`, `cert`, `key`) or file paths (`caFile`, ...); `cert` and `key` go together. */
export interface TlsOptions {
  ca?: string | Buffer;
  caFile?: string;
  cert?: string | Buffer;
  certFile?: string;
  key?: string | Buffer;
  keyFile?: string;
  /** The name the daemon's certificate must carry when it is not the address's host. */
  serverName?: string;
}

export type Payload = Buffer | Uint8Array | string;

/** Headers: an object, or (to keep order and duplicates) pairs or `{ key, value }` items. */
export type Headers = Record<string, string> | Iterable<readonly [string, string]> | Iterable<Header>;

export interface Header {
  key: string;
  value: string;
}

export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

export interface PublishOptions {
  headers?: Headers;
  contentType?: string;
  /** A random UUID is written when empty. */
  correlationId?: string;
  replyTo?: string;
  /** W3C trace context of the message. */
  trace?: TraceContext;
  /** XADD MAXLEN ~ n (publish only; publishBatch takes it in its own options). */
  maxLen?: number;
}

export interface BatchMessage extends Omit<PublishOptions, 'maxLen'> {
  payload: Payload;
}

export interface PublisherOptions extends ConnectionOptions {
  /** Deadline of each call, default 10,000 ms. */
  deadlineMs?: number;
  /**
   * Default true: a call made while the daemon is unreachable (e.g. restarting)
   * waits for it until the deadline (then DEADLINE_EXCEEDED); false: UNAVAILABLE at once.
   */
  waitForReady?: boolean;
}

export declare class Publisher {
  constructor(options: PublisherOptions);
  /** Resolves to the Redis entry id; rejects with a RedriveError. */
  publish(channel: string, payload: Payload, options?: PublishOptions): Promise<string>;
  /** All or none; resolves to the entry ids in order; rejects with a RedriveError. */
  publishBatch(channel: string, messages: ReadonlyArray<Payload | BatchMessage>,
    options?: { maxLen?: number }): Promise<string[]>;
  close(): void;
}

export type SourceFormat =
  | 'SOURCE_FORMAT_UNSPECIFIED'
  | 'SOURCE_FORMAT_BINARY_V1'
  | 'SOURCE_FORMAT_LEGACY_JSON'
  | 'SOURCE_FORMAT_RAW'
  | 'SOURCE_FORMAT_FIELDS';

/** One delivery, as the handler sees it. */
export declare class Message {
  private constructor();
  /** The daemon's id of this delivery (a uint64 as a decimal string). */
  readonly deliveryId: string;
  readonly channel: string;
  /** The stream it was read from: the channel, or the handler's retry stream. */
  readonly stream: string;
  readonly entryId: string;
  /** The entry id it had in the channel on its first attempt. */
  readonly originalEntryId: string;
  readonly payload: Buffer;
  readonly headers: ReadonlyArray<Header>;
  readonly contentType: string;
  readonly correlationId: string;
  readonly trace: { traceparent: string; tracestate: string };
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** 0 = unlimited. */
  readonly maxAttempts: number;
  /** The previous attempt's error text ('' on a first attempt). */
  readonly previousError: string;
  readonly previousErrorCode: string;
  readonly leaseDeadlineUnixMs: number;
  readonly sourceFormat: SourceFormat;
  readonly fields: ReadonlyArray<{ name: Buffer; value: Buffer }>;
  /** Aborted when this delivery's answer can no longer reach the daemon (it will be delivered again). */
  readonly signal: AbortSignal;
  /** The first value of a header, or undefined. */
  header(key: string): string | undefined;
  text(): string;
  json<T = unknown>(): T;
}

/** Resolve → ACK; throw → NACK (RetryError: with its delay); TerminateError → TERMINATE. */
export type Handler = (message: Message) => unknown | Promise<unknown>;

export interface RetryPolicy {
  /** Retries after the first attempt (default 5). */
  maxRetries?: number;
  unlimited?: boolean;
  initialBackoffMs?: number;
  multiplier?: number;
  maxBackoffMs?: number;
  jitter?: number;
}

export interface DeadLetterPolicy {
  maxLen: number;
  overflow?: 'evict-oldest' | 'hold';
}

export type StartPosition = 'new' | 'backlog' | { afterId: string };

export interface HandleOptions {
  /** The retry policy (the daemon's defaults when absent). */
  policy?: RetryPolicy;
  deadLetterPolicy?: DeadLetterPolicy;
  /** Deliveries unsettled and handlers running at once, default 64. */
  maxInFlight?: number;
  /** Default: the daemon's (30,000). */
  leaseMs?: number;
  /** Where a new consumer group starts (default 'new'). */
  start?: StartPosition;
  consumerLabel?: string;
  autoAck?: boolean;
}

export interface ReconnectOptions {
  /** First delay, default 100 ms. */
  initialMs?: number;
  /** Cap, default 5,000 ms. */
  maxMs?: number;
  /** Growth per failure, default 2. */
  multiplier?: number;
  /** Fraction of the delay taken off at random, default 0.5. */
  jitter?: number;
}

export interface Logger {
  debug?(line: string): void;
  info?(line: string): void;
  warn?(line: string): void;
  error?(line: string): void;
}

export interface WorkerOptions extends ConnectionOptions {
  reconnect?: ReconnectOptions;
  /** Default: warnings and errors on the console. */
  logger?: Logger;
  /** A handler stopped by a status that retrying cannot fix (e.g. INVALID_ARGUMENT). */
  onError?: (error: RedriveError, handler: { channel: string; handlerId: string }) => void;
}

export interface HandlerStats {
  channel: string;
  handlerId: string;
  running: number;
  connected: boolean;
  registrations: number;
  /** Deliveries messages received (each a batch of deliveries). */
  deliveryMessages: number;
  deliveries: number;
  /** Verbs messages sent (each a batch of verbs). */
  verbMessages: number;
  acks: number;
  nacks: number;
  terminates: number;
  extends: number;
  dropped: number;
  notices: number;
}

export declare class Worker {
  constructor(options: WorkerOptions);
  handle(channel: string, handlerId: string, fn: Handler, options?: HandleOptions): this;
  /** Resolves once every handler is registered; rejects (and stops) on a fatal status. */
  start(): Promise<void>;
  /** No new work; running handlers finish within graceMs (default 10,000); streams closed. */
  stop(options?: { graceMs?: number }): Promise<void>;
  stats(): HandlerStats[];
}

/** A failed call: `code` is the gRPC status code. */
export declare class RedriveError extends Error {
  private constructor();
  readonly code: grpcStatus;
  /** e.g. 'INVALID_ARGUMENT'. */
  readonly codeName: string;
  readonly details: string;
  readonly metadata: Metadata;
}

export declare class RetryError extends Error {
  constructor(message: string, options?: { delayMs?: number; code?: string });
  readonly delayMs: number | undefined;
  code?: string;
}

export declare class TerminateError extends Error {
  constructor(message: string, options?: { code?: string });
  code?: string;
}

/** `throw retry(5000)`: NACK, redelivered after 5 s. */
export declare function retry(delayMs: number, message?: string, options?: { code?: string }): RetryError;
/** `throw terminate('bad order')`: straight to the DLQ. */
export declare function terminate(message: string, options?: { code?: string }): TerminateError;

/** The gRPC status codes. */
export declare const status: typeof grpcStatus;

/** Where the package's .proto files are (redrive/v1/*.proto). */
export declare const PROTO_DIR: string;

/** The services as @grpc/grpc-js client classes, for calls this package does not wrap (e.g. Admin). */
export declare function loadServices(): { Broker: ServiceClientConstructor; Admin: ServiceClientConstructor };
