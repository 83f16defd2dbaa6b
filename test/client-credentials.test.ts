/**
 * OSCORE from a credentials file through the public API, over loopback sockets:
 * `new CoapClient({ credentials })` and `CoapServer.listen({ credentials })`; a request no context
 * matches is refused before anything is sent (unless unprotected requests are allowed); one sender
 * context has one sequence counter however it is configured (RFC 8613 Appendix B.1.1), so using
 * it from a credentials file and then from a libcoap conf does not end in "Replay detected".
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoapClient, CoapServer, CredentialsError, NoSecurityContextError, OscoreClientSecurity, ResponseCode, loadCredentials } from '../src/index.js';
import { decodeMessage } from '../src/coap/codec.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { formatLibcoapConf, loadLibcoapConf } from '../src/credentials/libcoap-conf.js';
import { openSecurityContext } from '../src/credentials/runtime.js';

const root = mkdtempSync(join(tmpdir(), 'coapsec-client-credentials-'));
// The common state directory, where every context is registered: this test's own.
process.env['COAPSEC_STATE_DIR'] = join(root, 'common-state');

const SECRET = '0102030405060708090a0b0c0d0e0f10';
let server: CoapServer;
let port: number;
let requests = 0;

function clientFile(name: string, match: string, extra: Record<string, unknown> = {}): string {
  const path = join(root, name);
  writeFileSync(path, JSON.stringify({ stateDirectory: `${name}-state`, oscore: [{ match, context: { masterSecret: SECRET, senderId: '01', recipientId: '02', ...extra } }] }));
  return path;
}

before(async () => {
  const serverFile = join(root, 'server.json');
  writeFileSync(serverFile, JSON.stringify({ stateDirectory: 'server-state', recipients: { '01': { name: 'client', context: { masterSecret: SECRET, senderId: '02' } } } }));
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0, credentials: serverFile });
  server.resource('/secret', { GET: (req) => (requests++, { code: ResponseCode.Content, payload: `hello ${req.context.oscore?.[0]?.peer}` }) }, { requireOscore: true });
  server.resource('/open', { GET: () => ({ code: ResponseCode.Content, payload: 'plain' }) });
  port = server.address().port;
});
after(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

/** A UDP socket that only records what reaches it: proof that nothing was sent. */
async function listener(): Promise<{ socket: Socket; port: number; received: Buffer[] }> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (data) => received.push(data));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port, received };
}

test('new CoapClient({ credentials: path }) and CoapServer.listen({ credentials }) talk OSCORE', async () => {
  const client = new CoapClient({ credentials: clientFile('client-a.json', `coap://127.0.0.1:${port}/*`) });
  try {
    const response = await client.get(`coap://127.0.0.1:${port}/secret`);
    assert.equal(response.status, '2.05 Content');
    assert.equal(response.text(), 'hello client');
    assert.equal(response.context.oscore?.[0]?.kid, '02', "verified with the server's Sender ID");
    assert.ok(response.wire && getOption(response.wire, OptionNumber.Oscore) !== undefined, 'it went protected');
  } finally {
    await client.close();
  }
  // An already-loaded Credentials object works the same.
  const loaded = new CoapClient({ credentials: loadCredentials(clientFile('client-b.json', `coap://127.0.0.1:${port}/*`, { senderId: '01' })) });
  try {
    assert.equal((await loaded.get(`coap://127.0.0.1:${port}/secret`)).text(), 'hello client');
  } finally {
    await loaded.close();
  }
});

test('a client with credentials refuses a request no context matches: nothing is sent, the error names the URI and the patterns', async () => {
  const target = await listener();
  const pattern = `coap://127.0.0.1:${target.port + 1}/*`;
  const client = new CoapClient({ credentials: clientFile('client-c.json', pattern) });
  try {
    const uri = `coap://127.0.0.1:${target.port}/oscore/hello/1`;
    await assert.rejects(client.get(uri), (e: unknown) => e instanceof NoSecurityContextError && e.message.includes(uri) && e.message.includes(pattern) && e.patterns[0] === pattern);
    await assert.rejects(client.observe(uri), NoSecurityContextError, 'observe too');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(target.received.length, 0, 'nothing was sent');

    // Explicitly allowed, per request: sent as plain CoAP.
    const sent = client.get(uri, { allowUnprotected: true, timeout: 200, confirmable: false });
    await sent.catch(() => undefined);
    assert.equal(target.received.length, 1);
    const message = decodeMessage(target.received[0]!);
    assert.equal(getOption(message, OptionNumber.Oscore), undefined);
  } finally {
    await client.close();
    target.socket.close();
  }
  // Or for the whole client.
  const mixed = new CoapClient({ credentials: clientFile('client-d.json', `coap://127.0.0.1:${port}/secret`), allowUnprotected: true });
  try {
    assert.equal((await mixed.get(`coap://127.0.0.1:${port}/open`)).text(), 'plain');
    assert.equal((await mixed.get(`coap://127.0.0.1:${port}/secret`)).text(), 'hello client');
  } finally {
    await mixed.close();
  }
});

test('the same sender context from a credentials file, then from a libcoap conf with its own sequence file: one counter, no "Replay detected"', async () => {
  // The server has seen this sender context's numbers from the tests before: each store continues them.
  const file = clientFile('client-e.json', `coap://127.0.0.1:${port}/*`, { senderId: '01' });
  const first = new CoapClient({ credentials: file });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await first.get(`coap://127.0.0.1:${port}/secret`)).status, '2.05 Content');
  } finally {
    await first.close();
  }
  const conf = join(root, 'client-e.conf');
  writeFileSync(conf, formatLibcoapConf(loadCredentials(file).oscore[0]!.context));
  const registryDirectory = process.env['COAPSEC_STATE_DIR']!;
  const opened = openSecurityContext(loadLibcoapConf(conf), { sequenceFile: join(root, 'client-e.seq'), registryDirectory });
  const security = new OscoreClientSecurity(opened.context);
  const second = new CoapClient({ security: () => security });
  try {
    const response = await second.get(`coap://127.0.0.1:${port}/secret`);
    assert.equal(response.status, '2.05 Content', 'the second store continues above the first one’s numbers');
  } finally {
    await second.close();
    opened.close();
  }
});

test('two stores for one sender context at the same time: the second is refused, saying what happened', async () => {
  const file = clientFile('client-f.json', `coap://127.0.0.1:${port}/*`);
  const first = new CoapClient({ credentials: file });
  const conf = join(root, 'client-f.conf');
  writeFileSync(conf, formatLibcoapConf(loadCredentials(file).oscore[0]!.context));
  try {
    await first.get(`coap://127.0.0.1:${port}/secret`);
    assert.throws(
      () => openSecurityContext(loadLibcoapConf(conf), { sequenceFile: join(root, 'client-f.seq'), registryDirectory: process.env['COAPSEC_STATE_DIR']! }),
      (e: unknown) => e instanceof CredentialsError && /already in use with another sequence number store/.test(e.message) && /replays/.test(e.message),
    );
  } finally {
    await first.close();
  }
  // Once the first is closed, the context opens again.
  openSecurityContext(loadLibcoapConf(conf), { sequenceFile: join(root, 'client-f.seq'), registryDirectory: process.env['COAPSEC_STATE_DIR']! }).close();
});

test('a counter kept where coapsec cannot see it gets "Replay detected" with how to recover; raising it recovers without restarting the server', async () => {
  const file = clientFile('client-g.json', `coap://127.0.0.1:${port}/*`);
  const registered = new CoapClient({ credentials: file });
  try {
    assert.equal((await registered.get(`coap://127.0.0.1:${port}/secret`)).status, '2.05 Content');
  } finally {
    await registered.close();
  }
  // E.g. libcoap's coap-client with its own sequence file: a second counter, starting at 0.
  const config = loadCredentials(file).oscore[0]!.context;
  const sequenceFile = join(root, 'elsewhere.seq');
  const request = async (): Promise<string> => {
    const opened = openSecurityContext(config, { sequenceFile });
    const security = new OscoreClientSecurity(opened.context);
    const client = new CoapClient({ security: () => security });
    try {
      return (await client.get(`coap://127.0.0.1:${port}/secret`)).status;
    } finally {
      await client.close();
      opened.close();
    }
  };
  await assert.rejects(request(), (e: unknown) => e instanceof Error && /"Replay detected" — the server has already accepted this sequence number/.test(e.message) && /needs no restart/.test(e.message));
  // The documented reset: a number above the other counter's.
  writeFileSync(sequenceFile, '1000000\n');
  assert.equal(await request(), '2.05 Content');
});
