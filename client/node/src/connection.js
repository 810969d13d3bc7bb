// Connection settings shared by Publisher and Worker: the address (`unix:/path`
// or host:port), an optional bearer token sent on every call, optional TLS
// (the daemon's CA, a client certificate and key for mutual TLS), extra
// @grpc/grpc-js channel options.
import fs from 'node:fs';

import grpc from '@grpc/grpc-js';

import { loadServices } from './protos.js';

function pem(value, file, what) {
  if (value !== undefined && file !== undefined) {
    throw new TypeError(`redrive: tls.${what} and tls.${what}File are exclusive`);
  }
  if (file !== undefined) return fs.readFileSync(file);
  if (value === undefined || value === null) return null;
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}

function credentials(address, tls) {
  if (!tls) return grpc.credentials.createInsecure();
  if (address.startsWith('unix:')) {
    throw new TypeError(`redrive: TLS was asked for on ${address}; the daemon's Unix sockets are plaintext`);
  }
  const options = tls === true ? {} : tls;
  const ca = pem(options.ca, options.caFile, 'ca');
  const cert = pem(options.cert, options.certFile, 'cert');
  const key = pem(options.key, options.keyFile, 'key');
  if ((cert === null) !== (key === null)) {
    throw new TypeError('redrive: tls.cert and tls.key go together (mutual TLS needs both)');
  }
  return grpc.credentials.createSsl(ca, key, cert);
}

/**
 * A @grpc/grpc-js client of the Broker (or Admin) service and the metadata
 * each call carries. `reconnect` caps gRPC's own channel reconnection backoff
 * so that it does not outlast the worker's.
 */
export class Connection {
  constructor(options, { service = 'Broker', reconnect = null } = {}) {
    if (!options || typeof options.address !== 'string' || options.address === '') {
      throw new TypeError('redrive: options.address is required: "unix:/path/redrive.sock" or "host:port"');
    }
    const channelOptions = {};
    if (reconnect !== null) {
      channelOptions['grpc.initial_reconnect_backoff_ms'] = reconnect.initialMs;
      channelOptions['grpc.max_reconnect_backoff_ms'] = reconnect.maxMs;
    }
    const tls = options.tls;
    if (tls && typeof tls === 'object' && tls.serverName) {
      channelOptions['grpc.ssl_target_name_override'] = tls.serverName;
      channelOptions['grpc.default_authority'] = tls.serverName;
    }
    Object.assign(channelOptions, options.channelOptions || {});
    this.address = options.address;
    this.token = options.token || null;
    const Service = loadServices()[service];
    this.client = new Service(options.address, credentials(options.address, tls), channelOptions);
  }

  /** Metadata for one call: the bearer token when one is set; waitForReady is a metadata option in grpc-js. */
  metadata(waitForReady = false) {
    const md = new grpc.Metadata({ waitForReady });
    if (this.token !== null) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  close() {
    this.client.close();
  }
}
