/**
 * One builder for the addressing options (client/addressing.ts), used by the client's `proxy`
 * path, a route's hops and the forward proxy's upstream leg. The Uri-Port rule of the Proxy-Scheme
 * form (RFC 7252 §5.10.2 → §6.5 step 4): without Uri-Port a strict proxy takes its own port, others
 * the scheme's default; the option is left out only where both give the target's port.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, getOption, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { optionsToUri, parseCoapUri } from '../src/coap/uri.js';
import { directAddressing, proxySchemeAddressing } from '../src/client/addressing.js';
import { CoapClient } from '../src/client/client.js';
import { RouteSecurity } from '../src/client/route.js';
import { PLAIN } from '../src/client/security.js';
import { targetOf } from '../src/proxy/request-target.js';

const PROXY_ADDRESS = '10.0.0.3';

/** The target URI a proxy on `proxyPort` composes from `options`: strictly by §6.5, and as coapsec's proxy does. */
function readings(options: CoapMessage['options'], proxyPort: number): { strict: string; defaultPort: string } {
  const message: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options, payload: EMPTY_BYTES };
  const scheme = decodeString(getOption(message, OptionNumber.ProxyScheme)!);
  const strict = optionsToUri(options.filter((o) => o.number !== OptionNumber.ProxyScheme), { scheme: scheme as 'coap', host: PROXY_ADDRESS, port: proxyPort });
  const target = targetOf(message);
  assert.ok('uri' in target);
  const parsed = parseCoapUri(target.uri);
  return { strict, defaultPort: `coap://${parsed.host}${parsed.port === 5683 ? '' : `:${parsed.port}`}${parsed.path.length ? `/${parsed.path.join('/')}` : '/'}` };
}

test('Proxy-Scheme form: a default-port target through a proxy on another port carries Uri-Port, so both readings of §6.5 give the target', () => {
  const options = proxySchemeAddressing(parseCoapUri('coap://10.0.0.1/alarm'), 40000, true);
  assert.equal(getUintOption({ options }, OptionNumber.UriPort), 5683);
  assert.deepEqual(readings(options, 40000), { strict: 'coap://10.0.0.1/alarm', defaultPort: 'coap://10.0.0.1/alarm' });
});

test('Proxy-Scheme form: Uri-Port left out only when the target and the proxy are both on the default port; a non-default target port always carried', () => {
  const onDefault = proxySchemeAddressing(parseCoapUri('coap://10.0.0.1/alarm'), 5683, true);
  assert.equal(getOption({ options: onDefault }, OptionNumber.UriPort), undefined);
  assert.deepEqual(readings(onDefault, 5683), { strict: 'coap://10.0.0.1/alarm', defaultPort: 'coap://10.0.0.1/alarm' });
  const elsewhere = proxySchemeAddressing(parseCoapUri('coap://10.0.0.1:61616/alarm'), 61616, true);
  assert.equal(getUintOption({ options: elsewhere }, OptionNumber.UriPort), 61616, 'the same port as the proxy: the default-port reading needs it');
  assert.deepEqual(readings(elsewhere, 61616), { strict: 'coap://10.0.0.1:61616/alarm', defaultPort: 'coap://10.0.0.1:61616/alarm' });
  assert.equal(decodeString(getOption({ options: proxySchemeAddressing(parseCoapUri('coap://[2001:db8::1]/x'), 5683, false) }, OptionNumber.UriHost)!), '[2001:db8::1]');
});

test('direct form (§6.4): Uri-Host and Uri-Port only where they differ from the destination', () => {
  assert.deepEqual(directAddressing('coap://10.0.0.1:61616/a', { address: '10.0.0.1', port: 61616 }).map((o) => o.number), [OptionNumber.UriPath]);
  assert.deepEqual(directAddressing('coap://example.com/a', { address: '10.0.0.1', port: 5684 }).map((o) => o.number), [OptionNumber.UriHost, OptionNumber.UriPort, OptionNumber.UriPath]);
});

test("a route's hop (via) names the target with the same options as the builder: Uri-Port through a proxy on another port", () => {
  const target = parseCoapUri('coap://10.0.0.1/alarm');
  const route = new RouteSecurity(target, [{ uri: `coap://${PROXY_ADDRESS}:40000` }], PLAIN);
  const request: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES };
  const sent = route.protect(request).message;
  assert.deepEqual(sent.options, proxySchemeAddressing(target, 40000, false));
  assert.equal(getUintOption(sent, OptionNumber.UriPort), 5683);
});

test("the client's `proxy` option sends the builder's options: Uri-Port for a default-port target through a proxy on another port", async () => {
  // A stand-in proxy on loopback that records the request and answers it itself.
  const proxy = createSocket('udp4');
  proxy.bind(0, '127.0.0.1');
  await once(proxy, 'listening');
  const port = proxy.address().port;
  const seen: CoapMessage[] = [];
  proxy.on('message', (data, from) => {
    const request = decodeMessage(data);
    seen.push(request);
    proxy.send(encodeMessage({ type: MessageType.ACK, code: ResponseCode.Content, messageId: request.messageId, token: request.token, options: [], payload: Buffer.from('ok') }), from.port, from.address);
  });
  const client = new CoapClient({ proxy: `coap://127.0.0.1:${port}`, bindIpv4: '127.0.0.1' });
  try {
    const response = await client.get('coap://10.0.0.1/alarm?x=1', { timeout: 5_000 });
    assert.equal(response.text(), 'ok');
    const target = parseCoapUri('coap://10.0.0.1/alarm?x=1');
    const wire = (options: CoapMessage['options']) => options.map((o) => `${o.number}=${Buffer.from(o.value).toString('hex')}`);
    assert.deepEqual(wire(seen[0]!.options), wire(proxySchemeAddressing(target, port, true)));
    assert.equal(getUintOption(seen[0]!, OptionNumber.UriPort), 5683);
  } finally {
    await client.close();
    proxy.close();
  }
});
