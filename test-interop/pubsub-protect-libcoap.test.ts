/**
 * End-to-end protected publications through an independent CoAP server: libcoap's example server
 * with dynamic resources (-d) stores what is PUT and serves it with Observe — the topic-data part of
 * a broker (draft-ietf-core-coap-pubsub §3.2), though not its topic collection. `coapsec publish
 * --protect` and `coapsec subscribe --protect` use it as their broker, so the objects pass through
 * code we did not write and still verify. No independent pub-sub broker runs here (docs/pubsub.md).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { COAPSEC, coapsec, HOST, startLibcoapServer, stopAll, which } from './support.js';
import { spawn } from 'node:child_process';
import { issueTopicKeys } from '../test/support/pubsub-keys.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-pubsub-libcoap-'));
process.env['COAPSEC_STATE_DIR'] = join(folder, 'state');
const file = (name: string): string => join(folder, name);
after(async () => {
  await stopAll();
  rmSync(folder, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<void> {
  const r = await coapsec(args);
  assert.equal(r.code, 0, `coapsec ${args.join(' ')}: ${r.stderr}`);
}

test('publish --protect / subscribe --protect through libcoap coap-server -d: every publication verified, in order; the server holds ciphertext only', async () => {
  assert.ok(which('coap-server-notls'), "coap-server-notls not on PATH: install Debian's libcoap3-bin");
  await issueTopicKeys(coapsec, file('kdc.json'), 'sensor', ['display'], (name) => file(`${name}.json`));
  const server = await startLibcoapServer(['-d', '4']);
  const uri = `coap://${HOST}:${server.port}/ps/data/kitchen`;
  // libcoap's dynamic resources keep the payload but not the Content-Format, so none is sent (the binding then names none).
  await ok(['publish', uri, '--payload', 'SECRET-0', '--protect', file('sensor.json')]);

  const subscriber = spawn(process.execPath, [COAPSEC, 'subscribe', uri, '--count', '3', '--protect', file('display.json')], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let stdout = '';
  let stderr = '';
  subscriber.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  subscriber.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const killer = setTimeout(() => subscriber.kill('SIGKILL'), 20_000);
  const exited = new Promise<number | null>((resolve) => subscriber.once('close', (code) => resolve(code)));
  for (let i = 0; i < 200 && !stdout.includes('\n'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(stdout, 'SECRET-0\n', `the subscriber got the stored publication first; stderr: ${stderr}`);
  for (const n of [1, 2]) await ok(['publish', uri, '--payload', `SECRET-${n}`, '--protect', file('sensor.json')]);
  const code = await exited;
  clearTimeout(killer);
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'SECRET-0\nSECRET-1\nSECRET-2\n');

  const stored = await coapsec(['get', uri]);
  assert.equal(stored.code, 0, stored.stderr);
  assert.equal(stored.stdout.includes('SECRET'), false, 'what libcoap stores and serves is not the plaintext');
});
