/** coapsec demo: a server and a client on loopback, every exchange printed readably. */
import { codeToString, methodFromName, methodName } from '../coap/codes.js';
import { ContentFormat, contentFormatName } from '../coap/content-format.js';
import { encodeUint } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { CoapClient, type ClientRequest, type ClientResponse } from '../client/client.js';
import { addDemoResources } from '../demo/resources.js';
import { CoapServer } from '../server/server.js';
import { parse } from './args.js';
import { oscoreProxyDemo } from './demo-legs.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport, type KeyExport } from './keylog-args.js';
import { randomBytes } from 'node:crypto';
import { OscoreClientSecurity } from '../client/oscore.js';
import { addPlugtestResources } from '../demo/plugtest.js';
import { OscoreSecurityContext, VolatileSequence } from '../oscore/security-context.js';
import { ResponseCache } from '../proxy/cache.js';
import { ForwardProxy } from '../proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../server/oscore.js';

const useColor = process.stdout.isTTY && !process.env['NO_COLOR'];
const paint = (code: string, text: string): string => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);

export const DEMO_USAGE = `usage: coapsec demo      run a server and a client on loopback and show their exchanges
${KEY_EXPORT_USAGE}
                          (the demo runs no DTLS: --keylog stays empty; its OSCORE keys are fresh per run)`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...KEY_EXPORT_FLAGS }, { min: 0, max: 0, names: '' });
  const keys = keyExport(values);
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server);
  const base = `coap://127.0.0.1:${server.address().port}`;
  const client = new CoapClient();
  const out = (line: string): void => void process.stdout.write(line + '\n');
  out(paint('1', `coapsec demo — server on ${base}, client on an ephemeral port (CoAP over UDP, RFC 7252)`));
  out('');

  const steps: Array<[string, Omit<ClientRequest, 'uri'> & { path: string }]> = [
    ['discover the resources (RFC 6690)', { method: 'GET', path: '/.well-known/core' }],
    ['filter discovery by resource type', { method: 'GET', path: '/.well-known/core?rt=demo.valve' }],
    ['plain text', { method: 'GET', path: '/hello' }],
    ['echo a body back', { method: 'POST', path: '/echo', payload: 'ping from the client', contentFormat: ContentFormat.TextPlain }],
    ['a Non-confirmable request', { method: 'GET', path: '/hello', confirmable: false }],
    ['alarm status, never cached (Max-Age 0)', { method: 'GET', path: '/alarm' }],
    ['actuate: set the valve to 7', { method: 'PUT', path: '/valve', payload: '7' }],
    ['read the valve back', { method: 'GET', path: '/valve' }],
    ['an invalid level gets 4.00 with a diagnostic', { method: 'PUT', path: '/valve', payload: '42' }],
    ['FETCH selected keys (RFC 8132)', { method: 'FETCH', path: '/config', payload: '["interval","unit"]', contentFormat: ContentFormat.Json }],
    ['PATCH with a JSON merge patch', { method: 'PATCH', path: '/config', payload: '{"interval":30}', contentFormat: ContentFormat.MergePatchJson }],
    ['iPATCH guarded by a stale ETag gets 4.12', { method: 'IPATCH', path: '/config', payload: '{"unit":"kelvin"}', contentFormat: ContentFormat.MergePatchJson, options: [{ number: OptionNumber.IfMatch, value: encodeUint(1) }] }],
    ['PATCH of a read-only key gets 4.09', { method: 'PATCH', path: '/config', payload: '{"id":"x"}', contentFormat: ContentFormat.MergePatchJson }],
    ['the current time', { method: 'GET', path: '/time' }],
    ['a large resource (8 KiB)', { method: 'GET', path: '/large' }],
    ['an unsupported method gets 4.05', { method: 'DELETE', path: '/hello' }],
    ['an unknown resource gets 4.04', { method: 'GET', path: '/nothing-here' }],
  ];
  let failures = 0;
  try {
    for (const [what, { path, ...request }] of steps) {
      out(paint('2', `# ${what}`));
      out(`${paint('36', '→')} ${methodName(methodFromName(String(request.method))!)} ${base}${path}${request.payload !== undefined ? `  ${JSON.stringify(String(request.payload))}` : ''}${request.confirmable === false ? '  (NON)' : ''}`);
      const started = performance.now();
      try {
        const response = await client.request({ ...request, uri: base + path, timeout: 5000 });
        out(`${paint(response.ok ? '32' : '33', '←')} ${describe(response)}  ${paint('2', `${(performance.now() - started).toFixed(1)} ms`)}`);
      } catch (error) {
        failures++;
        out(`${paint('31', '✗')} ${(error as Error).message}`);
      }
      out('');
    }
    out(paint('2', '# block-wise GET in 64-byte blocks with early negotiation (RFC 7959)'));
    let blocks = 0;
    const started = performance.now();
    const large = await client.get(`${base}/large`, { blockSize: 64, onProgress: () => blocks++ });
    out(`${paint('32', '←')} ${describe(large)}  ${paint('2', `${blocks} blocks, ${(performance.now() - started).toFixed(1)} ms`)}`);
    out('');

    out(paint('2', '# observe /time for three notifications, then cancel with Observe 1 (RFC 7641)'));
    out(`${paint('36', '→')} GET ${base}/time  Observe: 0`);
    const observation = await client.observe(`${base}/time`, { timeout: 5000 });
    let count = 0;
    for await (const notification of observation) {
      const sequence = notification.options.find((o) => o.number === OptionNumber.Observe);
      out(`${paint('32', '←')} ${describe(notification)}  ${paint('2', `Observe ${sequence ? sequence.value.reduce((v, b) => v * 256 + b, 0) : '-'}`)}`);
      if (++count === 3) break;
    }
    out(`${paint('36', '→')} GET ${base}/time  Observe: 1 (deregistered)`);
    out('');

    await proxyDemo(base, server, out, keys);
    await oscoreProxyDemo(out, paint, keys);

    const rtt = await client.ping(base);
    out(paint('2', '# CoAP ping (Empty CON answered by RST, §4.3)'));
    out(`${paint('32', '←')} pong in ${rtt.toFixed(1)} ms`);
  } finally {
    await client.close();
    await server.close();
  }
  return failures === 0 ? 0 : 1;
}

function describe(response: ClientResponse): string {
  const parts = [paint('1', codeToString(response.code))];
  if (response.contentFormat !== undefined) parts.push(`[${contentFormatName(response.contentFormat) ?? response.contentFormat}]`);
  const maxAge = response.options.find((o) => o.number === OptionNumber.MaxAge);
  if (maxAge) parts.push(`Max-Age ${maxAge.value.reduce((v, b) => v * 256 + b, 0)}`);
  const etag = response.options.find((o) => o.number === OptionNumber.ETag);
  if (etag) parts.push(`ETag 0x${Buffer.from(etag.value).toString('hex')}`);
  const text = response.text();
  if (response.payload.length > 200) parts.push(`${response.payload.length} bytes: ${JSON.stringify(text.slice(0, 60))}…`);
  else if (response.payload.length > 0) parts.push(JSON.stringify(text));
  return parts.join('  ');
}

/**
 * Through a caching forward proxy: a forwarded GET, the same GET from the cache, and an OSCORE
 * request the proxy forwards without being able to read it. The OSCORE keys are random per run,
 * so no (key, nonce) pair of one run can ever meet another's.
 */
async function proxyDemo(base: string, origin: CoapServer, out: (line: string) => void, keys: KeyExport): Promise<void> {
  const masterSecret = randomBytes(16);
  // The client's Sender ID is 0x00, not empty: Wireshark (--oscore-export) cannot use an empty one.
  origin.security = new OscoreServerSecurity([new OscoreSecurityContext({ masterSecret, senderId: Uint8Array.of(1), recipientIds: [Uint8Array.of(0)], name: 'demo-client' }, new VolatileSequence())]);
  addPlugtestResources(origin);
  const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const upstream = new CoapClient();
  const proxy = new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'], cache: new ResponseCache({ maxBytes: 1 << 20, now: () => proxyServer.endpoint.scheduler.now() }) });
  const proxyUri = `coap://127.0.0.1:${proxyServer.address().port}`;
  const oscore = new OscoreClientSecurity(new OscoreSecurityContext({ masterSecret, senderId: Uint8Array.of(0), recipientIds: [Uint8Array.of(1)], name: 'the origin' }, new VolatileSequence()));
  keys.context(oscore.context, 'client');
  const viaProxy = new CoapClient({ proxy: proxyUri, security: (uri) => (uri.includes('/oscore/') ? oscore : undefined) });
  try {
    out(paint('1', `Through a forward proxy with a cache on ${proxyUri} (RFC 7252 §5.7, §5.6)`));
    out('');
    for (const [what, path] of [['forwarded to the origin', '/hello'], ['the same request, answered from the proxy cache', '/hello'], ['Max-Age 0: never cached, forwarded again', '/alarm']] as const) {
      out(paint('2', `# ${what}`));
      out(`${paint('36', '→')} GET ${base}${path}  via ${proxyUri}`);
      const response = await viaProxy.get(base + path, { timeout: 5000 });
      out(`${paint('32', '←')} ${describe(response)}`);
      out('');
    }
    out(paint('2', '# OSCORE end to end through the proxy (RFC 8613): the proxy forwards what it cannot read'));
    out(`${paint('36', '→')} GET ${base}/oscore/hello/1  via ${proxyUri}, protected`);
    const protectedResponse = await viaProxy.get(`${base}/oscore/hello/1`, { timeout: 5000 });
    if (protectedResponse.wire) out(`   on the wire: ${codeToString(protectedResponse.wire.code)} with ${protectedResponse.wire.payload.length} bytes of ciphertext`);
    out(`${paint('32', '←')} ${describe(protectedResponse)}  ${paint('2', `verified: ${protectedResponse.context.oscore?.[0]?.peer ?? '?'}`)}`);
    out(paint('2', `   proxy: ${proxy.stats.forwarded} forwarded, ${proxy.stats.cacheHits} from its cache`));
    out('');
  } finally {
    await viaProxy.close();
    await proxy.close();
    await upstream.close();
    await proxyServer.close();
  }
}
