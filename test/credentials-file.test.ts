import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findServerRecipient,
  loadCredentials,
  matchClientContext,
  parseCredentials,
} from '../src/credentials/credentials-file.js';
import { CredentialsError } from '../src/credentials/errors.js';

const FILE = '/etc/coapsec/credentials.json';
const SECRET_HEX = '0102030405060708090a0b0c0d0e0f10';
const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const ascii = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'));

const clientContext = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  masterSecret: SECRET_HEX,
  senderId: '',
  recipientId: '01',
  ...extra,
});

const parse = (json: unknown): ReturnType<typeof parseCredentials> => parseCredentials(JSON.stringify(json), FILE);

test('a client and server file with every byte form, defaults and paths resolved', () => {
  const credentials = parse({
    $comment: 'test fixture',
    stateDirectory: 'seq',
    oscore: [
      {
        match: 'coap://[2001:db8::1]/*',
        context: {
          masterSecret: { hex: SECRET_HEX },
          masterSalt: '9e7ca92223786340',
          idContext: { ascii: 'ctx' },
          senderId: { ascii: 'client' },
          recipientId: { ascii: 'server' },
          aead: 'A128GCM',
          hkdf: -11,
          replayWindow: 64,
          echoOnRestart: false,
          rederivation: true,
          sequenceSaveInterval: 16,
          name: 'sensor-gateway',
        },
      },
    ],
    recipients: {
      '01': { name: 'alice', context: { masterSecret: SECRET_HEX, senderId: '' } },
      '': { name: 'bob', context: { masterSecret: SECRET_HEX, senderId: '02' } },
    },
  });
  assert.equal(credentials.file, FILE);
  assert.equal(credentials.stateDirectory, '/etc/coapsec/seq');
  assert.deepEqual(credentials.warnings, []);
  assert.deepEqual(credentials.oscore[0]!.context, {
    masterSecret: hex(SECRET_HEX),
    masterSalt: hex('9e7ca92223786340'),
    idContext: ascii('ctx'),
    senderId: ascii('client'),
    recipientIds: [ascii('server')],
    aead: 1,
    hkdf: -11,
    replayWindow: 64,
    echoOnRestart: false,
    rederivation: true,
    sequenceSaveInterval: 16,
    name: 'sensor-gateway',
  });
  const alice = findServerRecipient(credentials, hex('01'))!;
  assert.equal(alice.name, 'alice');
  assert.equal(alice.context.name, 'alice');
  assert.deepEqual(alice.context.recipientIds, [hex('01')]);
  assert.deepEqual(alice.context.masterSalt, new Uint8Array(0));
  assert.equal(alice.context.aead, 10);
  assert.equal(alice.context.hkdf, -10);
  assert.equal(alice.context.replayWindow, 32);
  assert.equal(alice.context.echoOnRestart, true);
  assert.equal(alice.context.rederivation, false);
  assert.equal(alice.context.sequenceSaveInterval, 64);
  assert.equal(alice.context.idContext, undefined);
  assert.equal(findServerRecipient(credentials, new Uint8Array(0))!.name, 'bob');
  assert.equal(findServerRecipient(credentials, hex('03')), undefined);
});

test('stateDirectory defaults to "state" beside the file; absolute paths stay', () => {
  assert.equal(parse({}).stateDirectory, '/etc/coapsec/state');
  assert.equal(parse({ stateDirectory: '/var/lib/coapsec' }).stateDirectory, '/var/lib/coapsec');
});

test('the dtls section is reserved: accepted with a warning, not read', () => {
  const credentials = parse({ dtls: { psk: { identity: 'x' } } });
  assert.equal(credentials.warnings.length, 1);
  assert.match(credentials.warnings[0]!, /dtls: reserved for DTLS credentials; this version does not read it yet/);
});

test('client matching: longest pattern wins, exact beats wildcard, host and port normalised', () => {
  const credentials = parse({
    oscore: [
      { match: 'coap://example.com/*', context: clientContext({ name: 'any' }) },
      { match: 'coap://example.com:5683/sensors/*', context: clientContext({ name: 'sensors' }) },
      { match: 'coap://example.com/sensors/temp', context: clientContext({ name: 'temp-exact' }) },
      { match: 'coap://example.com/sensors/temp*', context: clientContext({ name: 'temp-prefix' }) },
      { match: 'coap://[2001:DB8::1]:5700*', context: clientContext({ name: 'v6' }) },
      { match: 'coaps://example.com/*', context: clientContext({ name: 'coaps' }) },
    ],
  });
  const nameFor = (uri: string): string | undefined => matchClientContext(credentials, uri)?.context.name;
  assert.equal(nameFor('coap://example.com/'), 'any');
  assert.equal(nameFor('coap://example.com'), 'any');
  assert.equal(nameFor('coap://EXAMPLE.com:5683/other?x=1'), 'any');
  assert.equal(nameFor('coap://example.com/sensors/humidity'), 'sensors');
  assert.equal(nameFor('coap://example.com/sensors/temp'), 'temp-exact');
  assert.equal(nameFor('coap://example.com/sensors/temperature'), 'temp-prefix');
  assert.equal(nameFor('coap://[2001:db8::1]:5700/x'), 'v6');
  assert.equal(nameFor('coaps://example.com/sensors/temp'), 'coaps');
  assert.equal(nameFor('coap://example.com:5684/'), undefined, 'another port');
  assert.equal(nameFor('coap://example.org/'), undefined, 'another host');
  assert.equal(nameFor('not a uri'), undefined);
});

/** Asserts a CredentialsError whose message starts with `FILE: path: ` and matches. */
function assertFileError(json: unknown, path: string, pattern: RegExp): void {
  assert.throws(
    () => (typeof json === 'string' ? parseCredentials(json, FILE) : parse(json)),
    (error: unknown) => {
      assert.ok(error instanceof CredentialsError, 'a CredentialsError');
      assert.ok(error.message.startsWith(`${FILE}: ${path}: `), `"${error.message}" starts with "${FILE}: ${path}: "`);
      assert.equal(error.field, path);
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('0102030405'), 'no key material in the message');
      return true;
    },
  );
}

test('errors: top level and structure', () => {
  assert.throws(
    () => parseCredentials('{\n  "oscore": [\n    }\n', FILE),
    (error: unknown) => error instanceof CredentialsError && error.message.startsWith(`${FILE}:3:5: not valid JSON: `),
  );
  assert.throws(
    () => parseCredentials(`{"oscore": [{"context": {"masterSecret": "${SECRET_HEX}" "senderId": ""}}]}`, FILE),
    (error: unknown) => error instanceof CredentialsError && /^\S+:1:\d+: not valid JSON: /.test(error.message) && !error.message.includes('0102030405'),
  );
  assertFileError([], '(top level)', /expected an object/);
  assertFileError({ oscores: [] }, 'oscores', /unknown field; expected one of stateDirectory, oscore, recipients, groups, dtls/);
  assertFileError({ stateDirectory: 5 }, 'stateDirectory', /expected a string/);
  assertFileError({ stateDirectory: '' }, 'stateDirectory', /must not be empty/);
  assertFileError({ oscore: {} }, 'oscore', /expected an array/);
  assertFileError({ recipients: [] }, 'recipients', /expected an object/);
  assertFileError({ dtls: 'yes' }, 'dtls', /expected an object/);
});

test('errors: client entries', () => {
  assertFileError({ oscore: [{ context: clientContext() }] }, 'oscore[0].match', /is missing/);
  assertFileError({ oscore: [{ match: 'coap://h/*' }] }, 'oscore[0].context', /is missing/);
  assertFileError({ oscore: [{ match: 'coap://h/*', context: clientContext(), extra: 1 }] }, 'oscore[0].extra', /unknown field/);
  assertFileError({ oscore: [{ match: 'coap://h/*/x', context: clientContext() }] }, 'oscore[0].match', /only allowed as the last character/);
  assertFileError({ oscore: [{ match: 'h/*', context: clientContext() }] }, 'oscore[0].match', /expected an absolute URI/);
  assertFileError({ oscore: [{ match: 'coap://user@h/*', context: clientContext() }] }, 'oscore[0].match', /userinfo/);
  assertFileError(
    { oscore: [{ match: 'coap://h/*', context: clientContext() }, { match: 'coap://H:5683/*', context: clientContext() }] },
    'oscore[1].match',
    /the same pattern as oscore\[0\]\.match/,
  );
});

test('errors: context fields', () => {
  const entry = (context: unknown): unknown => ({ oscore: [{ match: 'coap://h/*', context }] });
  const at = (field: string): string => `oscore[0].context${field}`;
  assertFileError(entry('x'), at(''), /expected an object/);
  assertFileError(entry({ senderId: '', recipientId: '01' }), at('.masterSecret'), /is missing/);
  assertFileError(entry({ masterSecret: SECRET_HEX, recipientId: '01' }), at('.senderId'), /is missing/);
  assertFileError(entry({ masterSecret: SECRET_HEX, senderId: '' }), at('.recipientId'), /is missing/);
  assertFileError(entry(clientContext({ masterSecret: `${SECRET_HEX}z` })), at('.masterSecret'), /odd number of digits/);
  assertFileError(entry(clientContext({ masterSecret: { hex: `${SECRET_HEX.slice(0, 4)}g0` } })), at('.masterSecret.hex'), /non-hex character at position 5/);
  assertFileError(entry(clientContext({ senderId: { ascii: 'ü' } })), at('.senderId.ascii'), /non-ASCII character at position 1/);
  assertFileError(entry(clientContext({ senderId: { base64: 'AQ==' } })), at('.senderId'), /expected bytes: a hex string, \{"hex": "..."\} or \{"ascii": "..."\}/);
  assertFileError(entry(clientContext({ senderId: { hex: '01', ascii: 'x' } })), at('.senderId'), /expected bytes/);
  assertFileError(entry(clientContext({ senderId: 1 })), at('.senderId'), /expected bytes/);
  assertFileError(entry(clientContext({ recipientIds: ['02'] })), at('.recipientIds'), /either "recipientId" or "recipientIds", not both/);
  assertFileError(entry({ ...clientContext(), recipientId: undefined, recipientIds: '02' }), at('.recipientIds'), /expected an array/);
  assertFileError(entry({ ...clientContext(), recipientId: undefined, recipientIds: [] }), at('.recipientIds'), /at least one recipient ID/);
  assertFileError(entry({ ...clientContext(), recipientId: undefined, recipientIds: ['02', '02'] }), at('.recipientIds[1]'), /listed twice/);
  assertFileError(entry(clientContext({ recipientId: '' })), at('.recipientId'), /equals the sender ID/);
  assertFileError(entry(clientContext({ senderId: '0102030405060708' })), at('.senderId'), /8 bytes; at most 7/);
  assertFileError(entry(clientContext({ masterSecret: '' })), at('.masterSecret'), /empty/);
  assertFileError(entry(clientContext({ aead: 'AES-GCM' })), at('.aead'), /unknown AEAD algorithm "AES-GCM"; known: "AES-CCM-16-64-128" \(10\)/);
  assertFileError(entry(clientContext({ aead: 99 })), at('.aead'), /unknown AEAD algorithm 99/);
  assertFileError(entry(clientContext({ aead: true })), at('.aead'), /expected an algorithm name or COSE id/);
  assertFileError(entry(clientContext({ hkdf: 'SHA-256' })), at('.hkdf'), /unknown HKDF algorithm/);
  assertFileError(entry(clientContext({ replayWindow: 1.5 })), at('.replayWindow'), /expected an integer/);
  assertFileError(entry(clientContext({ replayWindow: 0 })), at('.replayWindow'), /from 1 to/);
  assertFileError(entry(clientContext({ sequenceSaveInterval: '64' })), at('.sequenceSaveInterval'), /expected an integer/);
  assertFileError(entry(clientContext({ echoOnRestart: 'true' })), at('.echoOnRestart'), /expected true or false/);
  assertFileError(entry(clientContext({ rederivation: 1 })), at('.rederivation'), /expected true or false/);
  assertFileError(entry(clientContext({ name: 7 })), at('.name'), /expected a string/);
  assertFileError(entry(clientContext({ master_secret: SECRET_HEX })), at('.master_secret'), /unknown field; expected one of masterSecret/);
});

test('errors: server recipients', () => {
  const context = { masterSecret: SECRET_HEX, senderId: '' };
  assertFileError({ recipients: { zz: { name: 'a', context } } }, 'recipients["zz"]', /the key must be the recipient ID in hex/);
  assertFileError({ recipients: { '01': { context } } }, 'recipients["01"].name', /is missing/);
  assertFileError({ recipients: { '01': { name: '', context } } }, 'recipients["01"].name', /must not be empty/);
  assertFileError({ recipients: { '01': { name: 'a' } } }, 'recipients["01"].context', /is missing/);
  assertFileError({ recipients: { '01': 'a' } }, 'recipients["01"]', /expected an object/);
  assertFileError({ recipients: { '01': { name: 'a', context, role: 'admin' } } }, 'recipients["01"].role', /unknown field/);
  assertFileError(
    { recipients: { '01': { name: 'a', context: { ...context, recipientId: '01' } } } },
    'recipients["01"].context.recipientId',
    /the recipient ID is the key of this entry/,
  );
  assertFileError(
    { recipients: { '01': { name: 'a', context: { ...context, name: 'b' } } } },
    'recipients["01"].context.name',
    /differs from the entry's "name"/,
  );
  assertFileError({ recipients: { '0a': { name: 'a', context }, '0A': { name: 'b', context } } }, 'recipients["0A"]', /the same recipient ID as recipients\["0a"\]/);
  assertFileError({ recipients: { '': { name: 'a', context } } }, 'recipients[""]', /equals the sender ID/);
  assertFileError({ recipients: { '1112131415161718': { name: 'a', context } } }, 'recipients["1112131415161718"]', /8 bytes; at most 7/);
});

test('loadCredentials reads a file and resolves the state directory beside it', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'coapsec-credentials-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, 'client.json');
  writeFileSync(path, JSON.stringify({ stateDirectory: './ssn', oscore: [{ match: 'coap://localhost/*', context: clientContext() }] }));
  const credentials = loadCredentials(path);
  assert.equal(credentials.stateDirectory, join(directory, 'ssn'));
  assert.equal(matchClientContext(credentials, 'coap://localhost/x')!.match, 'coap://localhost/*');
  const missing = join(directory, 'missing.json');
  assert.throws(() => loadCredentials(missing), (error: unknown) => error instanceof CredentialsError && error.message.startsWith(`${missing}: cannot read`));
});
