// How the Publisher and the Worker reach the daemon: mutual TLS on its TCP
// port (certificates made by the openssl CLI here), the Broker bearer token
// (--broker-auth=token) on every call, plaintext on the Unix socket.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Publisher, RedriveError, Worker, status } from 'redrive';

import { Env, waitFor } from './env.mjs';

const TEST_TIMEOUT_MS = 60000;

function openssl(...args) {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (err) {
    if (err.code === 'ENOENT') throw new Error('openssl is not on PATH; run scripts/deps.sh');
    throw new Error(`openssl ${args.join(' ')}: ${err.stderr}`);
  }
}

// A CA, the daemon's certificate (localhost, 127.0.0.1) and a client's, EC P-256.
function makePki(dir) {
  const p = (name) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=test-ca');
  for (const [name, usage, serial] of [['server', 'serverAuth', '1001'], ['client', 'clientAuth', '1002']]) {
    fs.writeFileSync(p(`${name}.ext`), `subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=${usage}\n`);
    openssl('req', '-new', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'),
      '-set_serial', serial, '-days', '1', '-extfile', p(`${name}.ext`), '-out', p(`${name}.crt`));
  }
  return p;
}

describe('TLS and the Broker token', () => {
  let env;
  let pki;
  const brokerToken = crypto.randomBytes(16).toString('hex');
  const closers = [];

  before(async () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'redrive-node-pki-'));
    closers.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    pki = makePki(dir);
    fs.writeFileSync(path.join(dir, 'broker-token'), brokerToken, { mode: 0o600 });
    env = await Env.start([`--tls-cert=${pki('server.crt')}`, `--tls-key=${pki('server.key')}`,
      `--tls-client-ca=${pki('ca.crt')}`, '--broker-auth=token', `--broker-token-file=${dir}/broker-token`],
    { tcp: true });
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    await env?.stop();
  });

  function publisher(options) {
    const p = new Publisher({ deadlineMs: 3000, waitForReady: false, ...options });
    closers.push(() => p.close());
    return p;
  }

  test('mutual TLS with the token: published and handled over the TCP port; the same token works on the socket',
    { timeout: TEST_TIMEOUT_MS }, async () => {
      const tls = { caFile: pki('ca.crt'), certFile: pki('client.crt'), key: fs.readFileSync(pki('client.key')) };
      const secure = publisher({ address: env.tcpAddress, tls, token: brokerToken });
      const [id] = await secure.publishBatch('node.tls', ['over-tls']);
      const viaSocket = publisher({ address: env.address, token: brokerToken });
      await viaSocket.publish('node.tls', 'over-the-socket');
      const seen = [];
      const w = new Worker({ address: env.tcpAddress, tls, token: brokerToken })
        .handle('node.tls', 'tls', (m) => { seen.push([m.text(), m.entryId]); }, { start: 'backlog' });
      closers.push(() => w.stop({ graceMs: 1000 }));
      await w.start();
      await waitFor(async () => seen.length === 2 && env.settled('node.tls', 'tls'), 'both handled');
      assert.deepEqual(seen[0], ['over-tls', id]);
      assert.equal(seen[1][0], 'over-the-socket');
      // With a serverName: the name the certificate carries, not the address's.
      const named = publisher({ address: env.tcpAddress, tls: { ...tls, serverName: 'localhost' }, token: brokerToken });
      assert.match(await named.publish('node.tls', 'named'), /^\d+-\d+$/);
    });

  test('without the token: UNAUTHENTICATED, from Publish and from Worker.start()', { timeout: TEST_TIMEOUT_MS }, async () => {
    const tls = { caFile: pki('ca.crt'), certFile: pki('client.crt'), keyFile: pki('client.key') };
    await assert.rejects(publisher({ address: env.tcpAddress, tls }).publish('node.tls', 'x'),
      (err) => err instanceof RedriveError && err.code === status.UNAUTHENTICATED);
    await assert.rejects(publisher({ address: env.address, token: 'wrong-token-0123456789' }).publish('node.tls', 'x'),
      (err) => err.code === status.UNAUTHENTICATED);
    const w = new Worker({ address: env.address, logger: {} }).handle('node.tls', 'no-token', () => {});
    await assert.rejects(w.start(), (err) => err.code === status.UNAUTHENTICATED);
  });

  test('without a client certificate, or plaintext on the TLS port: refused (UNAVAILABLE)', { timeout: TEST_TIMEOUT_MS }, async () => {
    await assert.rejects(publisher({ address: env.tcpAddress, tls: { caFile: pki('ca.crt') }, token: brokerToken })
      .publish('node.tls', 'x'), (err) => err.code === status.UNAVAILABLE);
    await assert.rejects(publisher({ address: env.tcpAddress, token: brokerToken }).publish('node.tls', 'x'),
      (err) => err.code === status.UNAVAILABLE);
  });
});
