/** coapsec demo: a server and a client on loopback, every exchange printed readably. */
import { codeToString, methodFromName, methodName } from '../coap/codes.js';
import { ContentFormat, contentFormatName } from '../coap/content-format.js';
import { encodeUint } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { CoapClient, type ClientRequest, type ClientResponse } from '../client/client.js';
import { addDemoResources } from '../demo/resources.js';
import { CoapServer } from '../server/server.js';
import { parse } from './args.js';

const useColor = process.stdout.isTTY && !process.env['NO_COLOR'];
const paint = (code: string, text: string): string => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);

export async function demoCommand(argv: string[]): Promise<number> {
  parse(argv, {}, { min: 0, max: 0, names: '' });
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
