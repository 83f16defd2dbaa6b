/**
 * The OSCORE server's per-request shortcuts of issue 21 (h21-oscore5), each against the general
 * code it replaces: the endpoint context after a layer (withOscoreLayer: a literal of the
 * interface's fields instead of a copy of the object), the protected response's option list
 * (withOscoreOption with no outer option), the route lookup of a one-segment path, the Uri-Path
 * strings of a request, and the reuse of the inner request unprotect built (oscore-layers). And
 * RFC 7252 §4.5 for OSCORE: a duplicate CON gets the recorded reply bytes, not a second protection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, getOptions, getStringOptions, sortOptions, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { withOscoreLayer, type EndpointContext, type OscoreLayerInfo } from '../src/exchange/context.js';
import { withOscoreOption } from '../src/oscore/cose-object.js';
import { protectRequest, unprotectResponse } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { Router, splitPath } from '../src/server/router.js';
import { CoapServer } from '../src/server/server.js';
import type { ResourceDefinition } from '../src/server/resource.js';
import { encodeMessage } from '../src/coap/codec.js';
import { flush, lockstep, opt } from './support/lockstep.js';

const CONTEXT_FIELDS = ['peer', 'peerKey', 'scheme', 'security', 'oscore', 'scope'] as const;

const layerArb: fc.Arbitrary<OscoreLayerInfo> = fc.oneof(
  fc.record({ peer: fc.string({ maxLength: 4 }), kid: fc.constantFrom("", "01", "0a0b") }),
  fc.record({ peer: fc.string({ maxLength: 4 }), kid: fc.constantFrom("", "01", "0a0b"), kidContext: fc.constantFrom("", "01", "0a0b") }),
);

const contextArb: fc.Arbitrary<EndpointContext> = fc
  .record({
    port: fc.integer({ min: 1, max: 65535 }),
    security: fc.constantFrom(undefined, { identity: 'psk-1', kind: 'psk' }),
    withSecurityKey: fc.boolean(),
    layers: fc.option(fc.array(layerArb, { maxLength: 2 }), { nil: undefined }),
    scope: fc.option(fc.array(fc.constantFrom('r', 'w', 'admin'), { maxLength: 2 }), { nil: undefined }),
  })
  .map(({ port, security, withSecurityKey, layers, scope }) => {
    const c: Record<string, unknown> = { peer: { address: '127.0.0.1', port }, peerKey: `127.0.0.1:${port}`, scheme: 'coap' };
    if (security !== undefined || withSecurityKey) c.security = security;
    if (layers !== undefined) c.oscore = layers;
    if (scope !== undefined) c.scope = scope;
    return c as unknown as EndpointContext;
  });

test('withOscoreLayer: every field of the context, the layer appended, scope only where it was', () => {
  fc.assert(
    fc.property(contextArb, layerArb, (context, layer) => {
      const before = context.oscore === undefined ? undefined : [...context.oscore];
      const expected = Object.assign({}, context, { oscore: [...(context.oscore ?? []), layer] }) as EndpointContext;
      const got = withOscoreLayer(context, layer);
      for (const field of CONTEXT_FIELDS) assert.deepEqual(got[field], expected[field], field);
      assert.equal('scope' in got, 'scope' in expected);
      assert.notEqual(got, context);
      assert.deepEqual(context.oscore, before, 'the source is not changed');
    }),
    { numRuns: 300 },
  );
});

const optionArb: fc.Arbitrary<CoapOption> = fc.record({
  number: fc.constantFrom(1, 3, 4, 8, 11, 12, 14, 15, 17, 35, 39, 60, 258, 292, 2049),
  value: fc.uint8Array({ maxLength: 3 }),
});

test('withOscoreOption: the outer options, the OSCORE option and the extra ones, sorted and stable', () => {
  fc.assert(
    fc.property(fc.array(optionArb, { maxLength: 4 }), fc.array(optionArb, { maxLength: 2 }), fc.uint8Array({ maxLength: 4 }), (outerRaw, extra, value) => {
      const outer = sortOptions(outerRaw);
      const got = withOscoreOption(outer, value, extra);
      const expected = sortOptions([...outer, ...extra, { number: OptionNumber.Oscore, value }]);
      assert.deepEqual(got.map((o) => [o.number, [...o.value]]), expected.map((o) => [o.number, [...o.value]]));
      assert.equal(got.find((o) => o.number === OptionNumber.Oscore)!.value, value);
    }),
    { numRuns: 300 },
  );
});

test('Router.match: a one-segment path finds what the joined key finds', () => {
  const segment = fc.constantFrom('', 'a', 'b', 'hello', 'a\u0000b', 'x y');
  fc.assert(
    fc.property(fc.uniqueArray(fc.array(segment, { minLength: 1, maxLength: 3 }), { maxLength: 6, selector: (p) => p.join('/') }), fc.array(fc.array(segment, { maxLength: 3 }), { maxLength: 8 }), (paths, lookups) => {
      const router = new Router();
      const byKey = new Map<string, ResourceDefinition>();
      for (const p of paths) {
        const path = `/${p.join('/')}`;
        const resource = { path, handlers: {} } as ResourceDefinition;
        try {
          router.add(resource);
        } catch {
          continue; // two paths with the same key once split: the second is refused, as before
        }
        byKey.set(splitPath(path).join('\u0000'), resource);
      }
      for (const lookup of [...lookups, ...paths]) {
        const expected = byKey.get(lookup.join('\u0000'));
        assert.equal(router.match(lookup)?.resource, expected, JSON.stringify(lookup));
      }
    }),
    { numRuns: 300 },
  );
});

test('getStringOptions: the values of one option number, decoded, in order', () => {
  fc.assert(
    fc.property(fc.array(optionArb, { maxLength: 6 }), fc.constantFrom(3, 11, 15, 60), (raw, number) => {
      const message = { options: sortOptions(raw) };
      assert.deepEqual(getStringOptions(message, number), getOptions(message, number).map(decodeString));
    }),
    { numRuns: 300 },
  );
});

const MASTER = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };
const CLIENT_ID = EMPTY_BYTES;
const SERVER_ID = Uint8Array.of(1);

test('RFC 7252 §4.5 with OSCORE: a duplicate CON gets the first reply byte for byte (no second protection), and it verifies', async () => {
  const h = lockstep({}, 5);
  let handled = 0;
  const serverContext = new OscoreSecurityContext({ ...MASTER, senderId: SERVER_ID, recipientIds: [CLIENT_ID] }, new VolatileSequence());
  const s = new CoapServer(h.endpoint, { security: new OscoreServerSecurity([serverContext]) });
  s.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: `n${++handled}` }) });
  const client = new OscoreSecurityContext({ ...MASTER, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence());
  const request: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0x4242, token: Uint8Array.of(7, 7), options: [opt(OptionNumber.UriPath, 'hello')], payload: EMPTY_BYTES };
  const { message, binding } = protectRequest(request, client.sender, 5);
  const datagram = encodeMessage(message);
  h.transport.deliver(datagram);
  await flush();
  h.transport.deliver(datagram);
  await flush();
  const sent = h.transport.take();
  assert.equal(sent.length, 2);
  assert.equal(handled, 1, 'the handler ran once');
  assert.equal(sent[1]!.bytes.toString('hex'), sent[0]!.bytes.toString('hex'));
  const reply = decodeMessage(sent[1]!.bytes);
  assert.equal(reply.type, MessageType.ACK);
  const opened = unprotectResponse(reply, client.recipient(SERVER_ID)!.params, binding);
  assert.ok(opened.ok);
  assert.equal(opened.message.code, ResponseCode.Content);
  assert.equal(Buffer.from(opened.message.payload).toString(), 'n1');
  await s.close();
});
