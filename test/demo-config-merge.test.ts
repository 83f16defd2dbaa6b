/**
 * The demo's /config JSON Merge Patch (RFC 7396) must treat "__proto__", "constructor" and
 * "prototype" as plain member names: a patch must never change the document's prototype
 * (prototype pollution), and FETCH must select only members the document really has.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeString, encodeUint } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';

function demo() {
  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  addDemoResources(server, { tick: false });
  let mid = 1;
  const call = (code: number, payload: string, contentFormat?: number) => {
    const options = [opt(OptionNumber.UriPath, 'config'), ...(contentFormat !== undefined ? [opt(OptionNumber.ContentFormat, encodeUint(contentFormat))] : [])];
    h.transport.deliver(msg({ code, messageId: mid++, token: Uint8Array.of(mid & 0xff), options, payload: Buffer.from(payload) }));
    const [reply] = h.transport.take();
    return { code: reply!.message.code, text: decodeString(reply!.message.payload) };
  };
  return { call };
}

test('iPATCH with a "__proto__" member leaves the prototype alone; the member is plain data', () => {
  const s = demo();
  assert.equal(s.call(Method.IPATCH, '{"__proto__":{"polluted":"yes","interval":99}}', ContentFormat.MergePatchJson).code, ResponseCode.Changed);
  const fetched = s.call(Method.FETCH, '["polluted","interval"]', ContentFormat.Json);
  assert.equal(fetched.code, ResponseCode.Content);
  assert.deepEqual(JSON.parse(fetched.text), { interval: 10 }, 'nothing inherited through a replaced prototype');
  const document = JSON.parse(s.call(Method.GET, '').text) as Record<string, unknown>;
  assert.equal(document.interval, 10);
  assert.ok(Object.hasOwn(document, '__proto__'), 'stored as an ordinary member, as RFC 7396 reads it');
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
});

test('FETCH of inherited names ("constructor", "toString") selects nothing; patching them stores data', () => {
  const s = demo();
  assert.deepEqual(JSON.parse(s.call(Method.FETCH, '["constructor","toString","hasOwnProperty"]', ContentFormat.Json).text), {});
  assert.equal(s.call(Method.PATCH, '{"constructor":{"prototype":{"x":1}}}', ContentFormat.MergePatchJson).code, ResponseCode.Changed);
  assert.deepEqual(JSON.parse(s.call(Method.FETCH, '["constructor"]', ContentFormat.Json).text), { constructor: { prototype: { x: 1 } } });
  assert.equal(s.call(Method.PATCH, '{"constructor":null}', ContentFormat.MergePatchJson).code, ResponseCode.Changed);
  assert.deepEqual(JSON.parse(s.call(Method.FETCH, '["constructor"]', ContentFormat.Json).text), {});
});
