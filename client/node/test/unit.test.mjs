// What needs no daemon: the package's protos are the repository's, its runtime
// exports are the declared ones, a handler's error becomes the right verb, the
// reconnect backoff grows, is capped and jittered.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as redrive from 'redrive';

import { Backoff } from '../src/backoff.js';
import { truncateUtf8, verbForError } from '../src/errors.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_PROTO = path.resolve(HERE, '../../../proto/redrive/v1');

test('the package carries exactly the repository\'s redrive/v1 protos, byte for byte', () => {
  const mine = path.join(redrive.PROTO_DIR, 'redrive/v1');
  const names = fs.readdirSync(REPO_PROTO).sort();
  assert.deepEqual(fs.readdirSync(mine).sort(), names);
  for (const name of names) {
    assert.ok(fs.readFileSync(path.join(mine, name)).equals(fs.readFileSync(path.join(REPO_PROTO, name))),
      `client/node/proto/redrive/v1/${name} differs from proto/redrive/v1/${name}: copy it again`);
  }
});

test('the runtime exports are exactly those index.d.ts declares', () => {
  const dts = fs.readFileSync(path.resolve(HERE, '../index.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(Object.keys(redrive).sort(), declared.sort());
});

test('a handler error becomes NACK with its text and code; RetryError adds the delay; TerminateError terminates', () => {
  const plain = new Error('card declined');
  assert.deepEqual(verbForError(plain), { nack: { reason: 'card declined', error_code: '' } });
  const coded = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });
  assert.deepEqual(verbForError(coded), { nack: { reason: 'connect failed', error_code: 'ECONNREFUSED' } });
  assert.deepEqual(verbForError(redrive.retry(2500, 'busy', { code: 'E_BUSY' })),
    { nack: { reason: 'busy', error_code: 'E_BUSY', delay_ms: 2500 } });
  assert.deepEqual(verbForError(new redrive.RetryError('no delay')), { nack: { reason: 'no delay', error_code: '' } });
  assert.deepEqual(verbForError(redrive.terminate('bad order', { code: 'E_BAD' })),
    { terminate: { reason: 'bad order', error_code: 'E_BAD' } });
  assert.deepEqual(verbForError('a string'), { nack: { reason: 'a string', error_code: '' } });
  assert.deepEqual(verbForError(new TypeError('')), { nack: { reason: 'TypeError', error_code: '' } });
  const long = verbForError(new Error('é'.repeat(3000))).nack.reason; // 6,000 bytes
  assert.equal(long, 'é'.repeat(2048)); // cut to 4,096 bytes on a character boundary
  assert.equal(truncateUtf8('aé', 2), 'a');
  assert.throws(() => redrive.retry(-1), RangeError);
  assert.throws(() => redrive.retry(86_400_001), RangeError);
});

test('the reconnect backoff doubles up to its cap, less its jitter, and starts again after a reset', () => {
  const exact = new Backoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 });
  assert.deepEqual(Array.from({ length: 6 }, () => exact.next()), [100, 200, 400, 800, 1000, 1000]);
  exact.reset();
  assert.equal(exact.next(), 100);
  const jittered = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 1);
  assert.deepEqual([jittered.next(), jittered.next()], [50, 100]);
  assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new redrive.Worker({ address: 'x:1', reconnect: { jitter: 2 } }), RangeError);
});

test('connection options are checked: an address is required, TLS is refused on unix:', () => {
  assert.throws(() => new redrive.Publisher({}), /options.address is required/);
  assert.throws(() => new redrive.Publisher({ address: 'unix:/tmp/x.sock', tls: true }), /Unix sockets are plaintext/);
  assert.throws(() => new redrive.Publisher({ address: 'localhost:1', tls: { cert: 'x' } }), /cert and tls.key go together/);
});
