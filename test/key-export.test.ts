/**
 * Issue 28 item 2: the DTLS engine reports each session's secret (and only through the optional
 * callback), the key log line has the NSS format, the Wireshark OSCORE export writes contexts from
 * the client's point of view, and the CLI flags warn loudly and keep secrets out of stderr.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { keyExport } from '../src/cli/keylog-args.js';
import { UsageError } from '../src/cli/errors.js';
import { DtlsClient, DtlsServerEngine, type DtlsSessionSecret } from '../src/dtls/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { WiresharkOscoreExport, wiresharkOscoreLine } from '../src/oscore/wireshark-export.js';
import { keyLogLine } from '../src/trace/keylog.js';
import { FakeClock, hasEvent, pump } from './dtls-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-key-export-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const psk = { identity: Buffer.from('id'), key: Buffer.from('0123456789abcdef') };

test('DTLS: both ends report the same client random and master secret once per session', () => {
  const clock = new FakeClock();
  const reported: { side: string; secret: DtlsSessionSecret }[] = [];
  const client = new DtlsClient({ now: clock.now, psk, onSecret: (secret) => reported.push({ side: 'client', secret }) });
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => (id.equals(psk.identity) ? psk.key : undefined), onSecret: (secret) => reported.push({ side: 'server', secret }) });
  const r = pump(client, server, client.start());
  assert.ok(hasEvent(r.clientEvents, 'connected'));
  assert.deepEqual(reported.map((x) => x.side).sort(), ['client', 'server']);
  const [a, b] = reported.map((x) => x.secret);
  assert.equal(a!.clientRandom.length, 32);
  assert.equal(a!.masterSecret.length, 48);
  assert.ok(a!.clientRandom.equals(b!.clientRandom) && a!.masterSecret.equals(b!.masterSecret));
  assert.match(keyLogLine(a!), /^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$/);
});

test('DTLS: without the callback nothing is reported and the handshake is unchanged', () => {
  const clock = new FakeClock();
  const client = new DtlsClient({ now: clock.now, psk });
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => psk.key });
  assert.ok(hasEvent(pump(client, server, client.start()).clientEvents, 'connected'));
});

test('Wireshark OSCORE export: client Sender ID first; a server context is swapped; empty IDs are skipped, not written', () => {
  const masterSecret = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
  const masterSalt = Buffer.from('9e7ca92223786340', 'hex');
  assert.equal(wiresharkOscoreLine({ clientSenderId: Buffer.from([0x01]), serverSenderId: Buffer.from([0x02]), masterSecret, masterSalt }), '"01","02","0102030405060708090a0b0c0d0e0f10","9e7ca92223786340","","AES-CCM-16-64-128 (CCM*)"');
  const server = new OscoreSecurityContext({ masterSecret, masterSalt, senderId: Buffer.from([0x02]), recipientIds: [Buffer.from([0x01]), Buffer.from([0x03])], idContext: Buffer.from('37cbf3210017a2d3', 'hex') }, new VolatileSequence());
  const noSender = new OscoreSecurityContext({ masterSecret, senderId: Buffer.alloc(0), recipientIds: [Buffer.from([0x01])] }, new VolatileSequence());
  const skipped: string[] = [];
  const file = join(dir, 'oscore_contexts');
  const exporter = new WiresharkOscoreExport(file, (reason) => skipped.push(reason));
  exporter.add(server, 'server');
  exporter.add(server, 'server');
  exporter.add(noSender, 'client');
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(lines, [
    '"01","02","0102030405060708090a0b0c0d0e0f10","9e7ca92223786340","37cbf3210017a2d3","AES-CCM-16-64-128 (CCM*)"',
    '"03","02","0102030405060708090a0b0c0d0e0f10","9e7ca92223786340","37cbf3210017a2d3","AES-CCM-16-64-128 (CCM*)"',
  ]);
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!, /empty Sender\/Recipient ID/);
});

test('--keylog / --oscore-export: off by default; a loud warning when on; no secret on stderr', () => {
  const stderr: string[] = [];
  const off = keyExport({}, (l) => stderr.push(l));
  assert.deepEqual(off.dtls, {});
  assert.equal(stderr.length, 0);
  const keylog = join(dir, 'keys.log');
  const on = keyExport({ keylog, 'oscore-export': join(dir, 'ctx') }, (l) => stderr.push(l));
  assert.equal(stderr.length, 2);
  for (const line of stderr) assert.match(line, /^WARNING: --(keylog|oscore-export) .*secret keys/);
  const secret = { clientRandom: Buffer.alloc(32, 0xab), masterSecret: Buffer.alloc(48, 0xcd) };
  on.dtls.onSecret!(secret);
  assert.ok(readFileSync(keylog, 'utf8').includes(keyLogLine(secret)));
  assert.ok(!stderr.join('\n').includes('cdcdcd'), 'the secret goes only to the file');
  assert.throws(() => keyExport({ keylog: join(dir, 'no-such-dir', 'x') }), UsageError);
});
