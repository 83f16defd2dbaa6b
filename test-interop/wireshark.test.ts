/**
 * Issue 28: Wireshark (tshark) sees inside every layer of a DTLS + nested OSCORE exchange with the
 * keys coapsec exports, and inside none without them. The run is the seeds' topology on loopback
 * (src/trace/run.ts: C → P → S, DTLS PSK on each hop, OSCORE C–S end to end plus C–P); the pcap
 * files are written by src/trace/pcap.ts, the key log by src/trace/keylog.ts and the OSCORE
 * contexts by src/oscore/wireshark-export.ts, in the format tshark reads (tls.keylog_file, and
 * the "oscore_contexts" UAT in the personal configuration directory).
 *
 * Wireshark 4.0 decrypts one OSCORE layer per message: on the C–P leg it shows the outer layer's
 * plaintext (the request for P: Proxy-Scheme, Uri-Host, the inner OSCORE option), on the P–S leg
 * the inner layer's (GET /hello). Together that is the decrypted request of every layer.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { WiresharkOscoreExport } from '../src/oscore/wireshark-export.js';
import { KeyLogFile } from '../src/trace/keylog.js';
import { encodePcap } from '../src/trace/pcap.js';
import { runTrace } from '../src/trace/run.js';
import { which } from './support.js';

const TSHARK = which('tshark');
const dir = mkdtempSync(join(tmpdir(), 'coapsec-wireshark-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Frame {
  coapCode: string;
  outerKid: string;
  oscoreCode: string;
  proxyScheme: string;
  uriPath: string;
  innerKid: string;
}

/** One row per frame: what tshark decoded, with or without the exported keys. */
async function dissect(pcap: string, keys: { keylog?: string; configHome: string }): Promise<Frame[]> {
  if (!TSHARK) assert.fail('tshark is not installed: apt-get install -y tshark (the CI script .ci/run installs it)');
  const fields = ['coap.code', 'coap.opt.object_security_kid', 'oscore.code', 'oscore.opt.proxy_scheme', 'oscore.opt.uri_path', 'oscore.opt.object_security_kid'];
  const args = ['-n', '-r', pcap, '-d', 'udp.port==5684,dtls', ...(keys.keylog ? ['-o', `tls.keylog_file:${keys.keylog}`] : []), '-T', 'fields', ...fields.flatMap((f) => ['-e', f])];
  const { stdout } = await promisify(execFile)(TSHARK, args, { timeout: 30_000, env: { ...process.env, XDG_CONFIG_HOME: keys.configHome, HOME: keys.configHome } });
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const [coapCode = '', outerKid = '', oscoreCode = '', proxyScheme = '', uriPath = '', innerKid = ''] = line.split('\t');
      return { coapCode, outerKid, oscoreCode, proxyScheme, uriPath, innerKid };
    });
}

const run = (async () => {
  const keylog = new KeyLogFile(join(dir, 'keylog.txt'));
  const trace = await runTrace({ onSecret: keylog.onSecret, path: 'hello' });
  const configHome = join(dir, 'with-keys');
  mkdirSync(join(configHome, 'wireshark'), { recursive: true });
  const contexts = new WiresharkOscoreExport(join(configHome, 'wireshark', 'oscore_contexts'));
  contexts.add(trace.contexts.endToEnd.client, 'client');
  // The C–P layer as the proxy holds it: the export swaps the IDs to the client's point of view.
  contexts.add(trace.contexts.toProxy.proxy, 'server');
  const noKeys = join(dir, 'no-keys');
  mkdirSync(join(noKeys, 'wireshark'), { recursive: true });
  const pcaps = Object.fromEntries(
    trace.legs.map((leg) => {
      const file = join(dir, `${leg.name}.pcap`);
      writeFileSync(file, encodePcap(leg.datagrams));
      return [leg.name, file];
    }),
  ) as Record<'client-proxy' | 'proxy-server', string>;
  return { trace, pcaps, keylog: keylog.path, configHome, noKeys };
})();

test('the exported files have the formats Wireshark reads', async () => {
  const { keylog, configHome } = await run;
  const lines = readFileSync(keylog, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.ok(lines.length >= 2, 'a secret per DTLS session (two hops)');
  for (const l of lines) assert.match(l, /^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$/);
  const uat = readFileSync(join(configHome, 'wireshark', 'oscore_contexts'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(
    uat.map((l) => l.split(',').slice(0, 2).join(',')),
    ['"5f","01"', '"20","02"'],
    'client Sender ID first, then Recipient ID, for both layers',
  );
  for (const l of uat) assert.match(l, /^"[0-9a-f]+","[0-9a-f]+","[0-9a-f]{32}","[0-9a-f]{16}","","AES-CCM-16-64-128 \(CCM\*\)"$/);
});

test('tshark with the key log and the OSCORE contexts decrypts DTLS and the OSCORE layer of each leg', async () => {
  const { pcaps, keylog, configHome, trace } = await run;
  assert.equal(trace.response, 'hello from the origin');
  // C–P leg: DTLS decrypted (a CoAP POST with the outer OSCORE option, kid 20 = C's ID for P),
  // and the outer layer decrypted: the request for P, carrying the inner layer's OSCORE option.
  const cp = await dissect(pcaps['client-proxy'], { keylog, configHome });
  const cpRequest = cp.find((f) => f.outerKid === '20');
  assert.ok(cpRequest, `no decrypted CoAP request with the C–P layer's kid on the C–P leg: ${JSON.stringify(cp)}`);
  assert.equal(cpRequest.oscoreCode, '2', 'the outer layer decrypted: inner code POST (the C–S layer)');
  assert.equal(cpRequest.proxyScheme, 'coaps', 'the outer layer decrypted: the Proxy-Scheme meant for P');
  assert.equal(cpRequest.innerKid, '5f', 'inside the outer layer: the end-to-end layer\'s OSCORE option (kid 5f)');
  assert.equal(cpRequest.uriPath, '', 'the path stays hidden on this leg: it is in the inner layer');
  // P–S leg: DTLS decrypted (a CoAP POST with the end-to-end OSCORE option, kid 5f), and the
  // end-to-end layer decrypted: the application's request, GET /hello.
  const ps = await dissect(pcaps['proxy-server'], { keylog, configHome });
  const psRequest = ps.find((f) => f.outerKid === '5f');
  assert.ok(psRequest, `no decrypted CoAP request with the C–S layer's kid on the P–S leg: ${JSON.stringify(ps)}`);
  assert.equal(psRequest.oscoreCode, '1', 'the inner layer decrypted: GET');
  assert.equal(psRequest.uriPath, 'hello');
  // The responses are decrypted too (2.05 Content inside 2.04 Changed).
  assert.ok(ps.some((f) => f.coapCode === '68' && f.oscoreCode === '69'), `the response's inner 2.05 on the P–S leg: ${JSON.stringify(ps)}`);
});

test('without the exported keys tshark decrypts nothing; with only the key log, OSCORE stays opaque', async () => {
  const { pcaps, keylog, noKeys } = await run;
  for (const pcap of Object.values(pcaps)) {
    const frames = await dissect(pcap, { configHome: noKeys });
    assert.ok(frames.length >= 7, 'the handshake and the exchange were captured');
    assert.deepEqual(frames.filter((f) => f.coapCode || f.oscoreCode || f.uriPath || f.proxyScheme), [], `${pcap}: nothing inside DTLS visible without the key log`);
    const dtlsOnly = await dissect(pcap, { keylog, configHome: noKeys });
    assert.ok(dtlsOnly.some((f) => f.coapCode === '2'), `${pcap}: with the key log the CoAP messages appear`);
    assert.deepEqual(dtlsOnly.filter((f) => f.oscoreCode || f.uriPath || f.proxyScheme), [], `${pcap}: nothing inside OSCORE visible without the contexts`);
  }
});
