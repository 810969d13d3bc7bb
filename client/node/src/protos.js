// The redrive.v1 services, loaded once from the .proto files this package
// carries (proto/, a copy of the repository's proto/redrive/v1 that
// test/protos.test.mjs keeps identical) by @grpc/proto-loader at run time:
// no code generator, no generated files to keep in step.
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

/** The directory holding redrive/v1/{common,broker,admin}.proto. */
export const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));

// Messages as plain objects with the .proto field names (snake_case), uint64
// as decimal strings (delivery ids do not fit a double), enums by name, bytes
// as Buffer, every field present, and the name of the set oneof in `kind`.
const LOADER_OPTIONS = {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

let services = null;

/**
 * The generated-at-run-time service constructors: `{ Broker, Admin }`, each a
 * @grpc/grpc-js client class (`new Broker(address, credentials)`).
 */
export function loadServices() {
  if (services === null) {
    const definition = protoLoader.loadSync(['redrive/v1/broker.proto', 'redrive/v1/admin.proto'],
      LOADER_OPTIONS);
    const v1 = grpc.loadPackageDefinition(definition).redrive.v1;
    services = { Broker: v1.Broker, Admin: v1.Admin };
  }
  return services;
}
