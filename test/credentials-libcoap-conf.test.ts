import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatLibcoapConf,
  loadLibcoapConf,
  parseLibcoapConf,
  parseOscoreConfArgument,
} from '../src/credentials/libcoap-conf.js';
import { CredentialsError } from '../src/credentials/errors.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const SECRET_HEX = '0102030405060708090a0b0c0d0e0f10';

/** As in the coap-oscore-conf(5) man page example (RFC 8613 Appendix C.1 test vector inputs). */
const MAN_PAGE_SAMPLE = `# OSCORE configuration (libcoap coap-oscore-conf(5))
#
# Master Secret (same for both sides)
master_secret,hex,"${SECRET_HEX}"
# Master Salt
master_salt,hex,"9e7ca92223786340"
# Sender ID
sender_id,hex,""
# Recipient ID
recipient_id,hex,"01"
# Replay Window
replay_window,integer,30
# AEAD COSE Algorithm
aead_alg,integer,10
# HKDF COSE Algorithm
hkdf_alg,integer,-10
`;

test('the man page sample parses into the context it describes', () => {
  const { config, warnings } = parseLibcoapConf(MAN_PAGE_SAMPLE, 'client.conf');
  assert.deepEqual(config, {
    masterSecret: hex(SECRET_HEX),
    masterSalt: hex('9e7ca92223786340'),
    senderId: new Uint8Array(0),
    recipientIds: [hex('01')],
    aead: 10,
    hkdf: -10,
    replayWindow: 30,
    echoOnRestart: true,
    rederivation: false,
    sequenceSaveInterval: 64,
  });
  assert.deepEqual(warnings, []);
});

test('defaults: salt empty, AES-CCM-16-64-128, HKDF SHA-256, window 32, B.1.2 on, B.2 off', () => {
  const { config } = parseLibcoapConf(`master_secret,hex,"${SECRET_HEX}"\nsender_id,hex,"01"\nrecipient_id,hex,""\n`);
  assert.deepEqual(config.masterSalt, new Uint8Array(0));
  assert.equal(config.idContext, undefined);
  assert.equal(config.aead, 10);
  assert.equal(config.hkdf, -10);
  assert.equal(config.replayWindow, 32);
  assert.equal(config.echoOnRestart, true);
  assert.equal(config.rederivation, false);
});

test('all keywords and encodings, with whitespace, CRLF, unquoted values and indented comments', () => {
  const text = [
    '  # indented comment',
    'master_secret , ascii , "a secret, with comma"',
    'master_salt,hex,9E7CA92223786340',
    'id_context,hex,"37cbf3210017a2d3"',
    'sender_id,ascii,"client"',
    'recipient_id,ascii,"server"',
    'recipient_id,hex,"02"',
    'replay_window,integer,"64"',
    'ssn_freq,integer,10',
    'aead_alg,text,"AES-CCM-16-64-128"',
    'hkdf_alg,text,"direct+HKDF-SHA-256"',
    'rfc8613_b_1_2,bool,false',
    'rfc8613_b_2,bool,"true"',
    '',
    'break_sender_key,bool,false',
    'break_recipient_key,bool,true',
  ].join('\r\n');
  const { config, warnings } = parseLibcoapConf(text, 'server.conf');
  assert.deepEqual(config.masterSecret, new Uint8Array(Buffer.from('a secret, with comma')));
  assert.deepEqual(config.masterSalt, hex('9e7ca92223786340'));
  assert.deepEqual(config.idContext, hex('37cbf3210017a2d3'));
  assert.deepEqual(config.senderId, new Uint8Array(Buffer.from('client')));
  assert.deepEqual(config.recipientIds, [new Uint8Array(Buffer.from('server')), hex('02')]);
  assert.equal(config.replayWindow, 64);
  assert.equal(config.sequenceSaveInterval, 10);
  assert.equal(config.echoOnRestart, false);
  assert.equal(config.rederivation, true);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /^server\.conf:15: break_sender_key is a libcoap test option; coapsec ignores it$/);
  assert.match(warnings[1]!, /^server\.conf:16: break_recipient_key/);
});

test('algorithm names and ids beyond libcoap\'s two are accepted', () => {
  const base = `master_secret,hex,"${SECRET_HEX}"\nsender_id,hex,"01"\nrecipient_id,hex,"02"\n`;
  const cases: [string, 'aead' | 'hkdf', number][] = [
    ['aead_alg,text,"A128GCM"', 'aead', 1],
    ['aead_alg,text,"ChaCha20/Poly1305"', 'aead', 24],
    ['aead_alg,text,"AES-CCM-16-128-128"', 'aead', 30],
    ['aead_alg,integer,3', 'aead', 3],
    ['hkdf_alg,text,"HKDF SHA-512"', 'hkdf', -11],
    ['hkdf_alg,text,"HKDF-SHA-256"', 'hkdf', -10],
    ['hkdf_alg,integer,-11', 'hkdf', -11],
  ];
  for (const [line, field, id] of cases) assert.equal(parseLibcoapConf(base + line + '\n').config[field], id, line);
});

test('round trip: format then parse gives the same context; the output is libcoap-strict', () => {
  const { config } = parseLibcoapConf(MAN_PAGE_SAMPLE);
  const withEverything = {
    ...config,
    idContext: hex('37cbf3210017a2d3'),
    recipientIds: [hex('01'), hex('0203')],
    aead: 1,
    hkdf: -11,
    echoOnRestart: false,
    rederivation: true,
    sequenceSaveInterval: 5,
  };
  for (const original of [config, withEverything]) {
    const text = formatLibcoapConf(original);
    assert.ok(text.endsWith('\n'), 'libcoap ignores a last line without a newline');
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      assert.match(line, /^[a-z_0-9]+,(hex|integer|bool),("[0-9a-f]*"|-?\d+|true|false)$/, `libcoap-parsable: ${line}`);
    }
    assert.deepEqual(parseLibcoapConf(text).config, original);
  }
  const named = formatLibcoapConf({ ...config, name: 'server' });
  assert.ok(!named.includes('server'), 'name has no libcoap keyword');
});

/** Asserts a CredentialsError at `file:line` whose message matches, and that no secret leaks. */
function assertConfError(text: string, line: number | undefined, pattern: RegExp): void {
  assert.throws(
    () => parseLibcoapConf(text, 'bad.conf'),
    (error: unknown) => {
      assert.ok(error instanceof CredentialsError, 'a CredentialsError');
      const where = line === undefined ? 'bad.conf: ' : `bad.conf:${line}: `;
      assert.ok(error.message.startsWith(where), `"${error.message}" starts with "${where}"`);
      assert.match(error.message, pattern);
      assert.equal(error.file, 'bad.conf');
      assert.equal(error.line, line);
      assert.ok(!error.message.includes(SECRET_HEX) && !error.message.includes('0102030405'), 'no key material in the message');
      return true;
    },
  );
}

const SECRET = `master_secret,hex,"${SECRET_HEX}"`;
const VALID_TAIL = 'sender_id,hex,"01"\nrecipient_id,hex,"02"\n';

test('errors: structure of a line', () => {
  assertConfError(`${SECRET}\nsender_id\n`, 2, /expected "keyword,encoding,value"/);
  assertConfError(`${SECRET}\nsender_id,hex\n`, 2, /expected "keyword,encoding,value"/);
  assertConfError(`${SECRET}\nsecret_master,hex,"01"\n`, 2, /unknown keyword "secret_master"; known: master_secret/);
  assertConfError(`${SECRET}\nsender_id,base64,"AQ=="\n`, 2, /sender_id: unknown encoding "base64"; known: hex, ascii, integer, text, bool/);
  assertConfError(`${SECRET}\nreplay_window,hex,"20"\n`, 2, /replay_window: encoding "hex" is not allowed here; use integer/);
  assertConfError(`${SECRET}\nsender_id,integer,1\n`, 2, /sender_id: encoding "integer" is not allowed here; use hex or ascii/);
  assertConfError(`${SECRET}\nsender_id,hex,"01\n`, 2, /closing double quote is missing/);
  assertConfError(`${SECRET}\nsender_id,hex,"01" x\n`, 2, /unexpected text after the quoted value/);
});

test('errors: bad values', () => {
  assertConfError(`master_secret,hex,"${SECRET_HEX}0"\n`, 1, /master_secret: hex value has an odd number of digits \(33\)/);
  assertConfError(`master_secret,hex,"${SECRET_HEX.slice(0, 30)}zz"\n`, 1, /master_secret: hex value has a non-hex character at position 31/);
  assertConfError(`master_secret,hex,"0x0102"\n`, 1, /non-hex character at position 2/);
  assertConfError(`${SECRET}\nsender_id,ascii,"clïent"\n`, 2, /sender_id: ascii value has a non-ASCII character at position 3/);
  assertConfError(`${SECRET}\nreplay_window,integer,thirty\n`, 2, /replay_window: "thirty" is not an integer/);
  assertConfError(`${SECRET}\nreplay_window,integer,3.5\n`, 2, /not an integer/);
  assertConfError(`${SECRET}\nssn_freq,integer,99999999999999999999\n`, 2, /out of range/);
  assertConfError(`${SECRET}\nrfc8613_b_2,bool,yes\n`, 2, /rfc8613_b_2: "yes" is not a bool \(true or false\)/);
  assertConfError(`${SECRET}\naead_alg,integer,12\n`, 2, /aead_alg: unknown AEAD algorithm 12; known: "AES-CCM-16-64-128" \(10\)/);
  assertConfError(`${SECRET}\naead_alg,text,"AES-128"\n`, 2, /aead_alg: unknown algorithm name "AES-128"/);
  assertConfError(`${SECRET}\nhkdf_alg,integer,5\n`, 2, /hkdf_alg: unknown HKDF algorithm 5/);
  assertConfError(`${SECRET}\nhkdf_alg,text,"SHA-256"\n`, 2, /hkdf_alg: unknown algorithm name "SHA-256"/);
});

test('errors: duplicates and missing required keywords', () => {
  assertConfError(`${SECRET}\n${SECRET}\n`, 2, /master_secret is given twice \(first on line 1\)/);
  assertConfError(`${SECRET}\nreplay_window,integer,30\nreplay_window,integer,31\n`, 3, /replay_window is given twice \(first on line 2\)/);
  assertConfError(`${SECRET}\nsender_id,hex,"01"\nsender_id,ascii,"x"\n`, 3, /sender_id is given twice/);
  assertConfError(VALID_TAIL, undefined, /master_secret is missing/);
  assertConfError(`${SECRET}\nrecipient_id,hex,"02"\n`, undefined, /sender_id is missing/);
  assertConfError(`${SECRET}\nsender_id,hex,"01"\n`, undefined, /recipient_id is missing/);
  assertConfError('# only a comment\n', undefined, /master_secret is missing/);
});

test('errors: values that break RFC 8613 rules, reported at their line', () => {
  assertConfError(`${SECRET}\nsender_id,hex,"0102030405060708"\nrecipient_id,hex,"02"\n`, 2, /sender_id: the sender ID is 8 bytes; at most 7 with this AEAD/);
  assertConfError(
    `${SECRET}\naead_alg,integer,1\nsender_id,hex,"01020304050607"\nrecipient_id,hex,"02"\n`,
    3,
    /at most 6 with this AEAD/,
  );
  assertConfError(`${SECRET}\nsender_id,hex,"01"\nrecipient_id,hex,"02"\nrecipient_id,hex,"0102030405060708"\n`, 4, /recipient ID is 8 bytes/);
  assertConfError(`${SECRET}\nsender_id,hex,"01"\nrecipient_id,hex,"02"\nrecipient_id,hex,"02"\n`, 4, /listed twice/);
  assertConfError(`${SECRET}\nsender_id,hex,"01"\nrecipient_id,hex,"01"\n`, 3, /equals the sender ID/);
  assertConfError(`master_secret,hex,""\n${VALID_TAIL}`, 1, /master secret is empty/);
  assertConfError(`${SECRET}\n${VALID_TAIL}replay_window,integer,0\n`, 4, /replay window must be an integer from 1/);
  assertConfError(`${SECRET}\n${VALID_TAIL}ssn_freq,integer,-3\n`, 4, /sequence save interval must be an integer from 1/);
});

test('loadLibcoapConf reads a file, names it in errors and passes warnings on', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'coapsec-conf-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, 'client.conf');
  writeFileSync(path, `${MAN_PAGE_SAMPLE}break_sender_key,bool,false\n`);
  const warnings: string[] = [];
  assert.equal(loadLibcoapConf(path, (w) => warnings.push(w)).replayWindow, 30);
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0]!.startsWith(`${path}:`));
  writeFileSync(path, 'master_secret,hex,"zz"\n');
  assert.throws(() => loadLibcoapConf(path), (error: unknown) => error instanceof CredentialsError && error.message.startsWith(`${path}:1: `));
  const missing = join(directory, 'missing.conf');
  assert.throws(() => loadLibcoapConf(missing), (error: unknown) => error instanceof CredentialsError && error.message.startsWith(`${missing}: cannot read`));
});

test('--oscore-conf FILE[,SEQFILE]', () => {
  assert.deepEqual(parseOscoreConfArgument('client.conf'), { confPath: 'client.conf' });
  assert.deepEqual(parseOscoreConfArgument('client.conf,client.seq'), { confPath: 'client.conf', sequenceFile: 'client.seq' });
  assert.throws(() => parseOscoreConfArgument(''), /configuration file name is empty/);
  assert.throws(() => parseOscoreConfArgument('client.conf,'), /sequence number file name after "," is empty/);
  assert.throws(() => parseOscoreConfArgument(',x'), CredentialsError);
});
