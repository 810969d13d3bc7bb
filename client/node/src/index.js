// redrive: a Publisher and a Worker for redrived (see README.md, "Node.js").
import grpc from '@grpc/grpc-js';

export { Publisher } from './publisher.js';
export { Worker } from './worker.js';
export { Message } from './message.js';
export { RedriveError, RetryError, TerminateError, retry, terminate } from './errors.js';
export { PROTO_DIR, loadServices } from './protos.js';

/** gRPC status codes (grpc.status of @grpc/grpc-js), to compare with RedriveError.code. */
export const status = grpc.status;
