/**
 * The browser build's OSCORE (src/browser/oscore.ts on crypto/web-crypto.ts) in Node, whose Web
 * Crypto is the same API a page has: the RFC 8613 Appendix C vectors, AES-CCM from AES-CTR and
 * AES-CBC byte for byte against Node's own CCM, the same protected bytes as the synchronous Node
 * path, and the Appendix B.1.1 reservations behind the IndexedDB store. The same vectors run inside
 * headless Chromium in test/browser-chromium.test.ts.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as browser from '../src/browser/index.js';
import { ReservedSequence, type ReservationStorage } from '../src/credentials/indexeddb-sequence-store.js';
import { WEB_AEADS } from '../src/crypto/web-crypto.js';
import { AesCcm } from '../src/crypto/aes-ccm.js';
import { encodeMessage } from '../src/coap/codec.js';
import { createMessage, encodeString, encodeUint } from '../src/coap/message.js';
import { Method } from '../src/coap/codes.js';
import { OptionNumber } from '../src/coap/options.js';
import { deriveContext, protectRequest, protectResponse, unprotectRequest } from '../src/oscore/index.js';
import { checkAppendixC } from './support/oscore-appendix-c.js';

test('RFC 8613 Appendix C (C.1–C.8) through the asynchronous Web Crypto API', async () => {
  const results = await checkAppendixC(browser);
  assert.equal(results.length, 15);
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`);
});

/**
 * The reference, ciphertext || tag: Node's own CCM, except for an empty message with empty AAD,
 * which OpenSSL refuses ("tag not set"): there the Node build's AesCcm (itself checked against
 * Node's CCM in test/aes-ccm.test.ts).
 */
function referenceCcm(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, tagLength: number): Uint8Array {
  if (aad.length === 0 && plaintext.length === 0) return new AesCcm(key, tagLength, nonce.length).seal(nonce, aad, plaintext);
  const cipher = createCipheriv(`aes-${key.length * 8}-ccm` as 'aes-128-ccm', key, nonce, { authTagLength: tagLength });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

test('AES-CCM from AES-CTR and AES-CBC equals Node’s CCM for every OSCORE parameter set, and refuses every tampered byte', async () => {
  const ccms = WEB_AEADS.filter((a) => a.nonceLength === 13);
  assert.deepEqual(ccms.map((a) => a.id), [10, 11, 30]);
  // Lengths around the block size and the two AAD length encodings of RFC 3610 §2.2 (< and ≥ 0xff00).
  for (const aead of ccms) {
    for (const [aadLength, plaintextLength] of [[0, 0], [0, 1], [1, 15], [35, 16], [11, 17], [300, 1024], [0xff00, 33], [20, 4000]] as const) {
      const key = randomBytes(aead.keyLength);
      const nonce = randomBytes(13);
      const aad = randomBytes(aadLength);
      const plaintext = randomBytes(plaintextLength);
      const sealed = await aead.seal(key, nonce, aad, plaintext);
      assert.deepEqual(Buffer.from(sealed), Buffer.from(referenceCcm(key, nonce, aad, plaintext, aead.tagLength)), `${aead.name} aad ${aadLength} plaintext ${plaintextLength}`);
      assert.deepEqual(Buffer.from((await aead.open(key, nonce, aad, sealed))!), plaintext);
      const at = sealed.length - 1 - (plaintextLength % sealed.length);
      const tampered = sealed.slice();
      tampered[at]! ^= 0x80;
      assert.equal(await aead.open(key, nonce, aad, tampered), undefined, `tampered byte ${at}`);
      if (aadLength > 0) {
        const otherAad = aad.slice();
        otherAad[0]! ^= 1;
        assert.equal(await aead.open(key, nonce, otherAad, sealed), undefined, 'other AAD');
      }
      assert.equal(await aead.open(key, nonce, aad, sealed.subarray(0, aead.tagLength - 1)), undefined, 'shorter than the tag');
    }
  }
});

test('the asynchronous transforms protect exactly as the synchronous Node ones (options, Observe, payload, every AEAD of the browser)', async () => {
  for (const aead of [10, 11, 30, 1, 3]) {
    const params = { masterSecret: encodeString('a master secret'), masterSalt: Uint8Array.of(1, 2), senderId: Uint8Array.of(0xc1), recipientId: Uint8Array.of(0x5e), aead };
    const sync = deriveContext(params);
    const web = await browser.deriveContextAsync(params);
    assert.deepEqual([web.senderKey, web.recipientKey, web.commonIv], [sync.senderKey, sync.recipientKey, sync.commonIv], `derivation ${aead}`);
    const request = createMessage({ code: Method.GET, token: Uint8Array.of(7), messageId: 9, options: [
      { number: OptionNumber.UriHost, value: encodeString('device') },
      { number: OptionNumber.Observe, value: encodeUint(0) },
      { number: OptionNumber.UriPath, value: encodeString('sensor') },
    ] });
    const a = protectRequest(request, sync.sender, 300);
    const b = await browser.protectRequestAsync(request, web.sender, 300);
    assert.deepEqual(Buffer.from(browser.encodeMessage(b.message)), Buffer.from(encodeMessage(a.message)), `request ${aead}`);
    const server = deriveContext({ ...params, senderId: params.recipientId, recipientId: params.senderId });
    const received = unprotectRequest(a.message, () => server.recipient);
    assert.ok(received.ok);
    const response = createMessage({ code: 0x45, token: Uint8Array.of(7), options: [{ number: OptionNumber.Observe, value: encodeUint(5) }], payload: encodeString('21.5 C') });
    const notification = protectResponse(response, server.sender, received.binding, { sequenceNumber: 12 });
    const opened = await browser.unprotectResponseAsync(notification, web.recipient, b.binding);
    assert.ok(opened.ok, opened.ok ? '' : opened.reason);
    assert.equal(opened.sequenceNumber, 12);
    assert.equal(new TextDecoder().decode(opened.message.payload), '21.5 C');
  }
  assert.throws(() => browser.browserAead(24), /not available in the browser build.*AES-CCM-16-64-128 \(10\)/);
});

/** Reservations in memory, with each reserve held until the test lets it commit. */
class HeldStorage implements ReservationStorage {
  stored = new Map<string, number>();
  held: Array<() => void> = [];
  hold = false;
  reserve(key: string, count: number): Promise<number> {
    const start = this.stored.get(key) ?? 0;
    const commit = (resolve: (n: number) => void): void => {
      this.stored.set(key, start + count);
      resolve(start);
    };
    return new Promise((resolve) => (this.hold ? this.held.push(() => commit(resolve)) : commit(resolve)));
  }
}

test('RFC 8613 B.1.1 in the browser store: a block is committed before its first number is used, a reopened counter starts above every used one, two users get disjoint blocks', async () => {
  const storage = new HeldStorage();
  const first = await ReservedSequence.open(storage, 'ctx', 4);
  assert.equal(storage.stored.get('ctx'), 4);
  const used = [await first.next(), await first.next(), await first.next(), await first.next()];
  assert.deepEqual(used, [0, 1, 2, 3]);
  // The fifth number needs the next block: it must not come before that block is stored.
  storage.hold = true;
  let fifth: number | undefined;
  const pending = [first.next().then((n) => (fifth = n)), first.next()];
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fifth, undefined, 'a number of an uncommitted block was handed out');
  assert.equal(storage.held.length, 1, 'concurrent callers share one reservation');
  storage.held.shift()!();
  storage.hold = false;
  used.push(...(await Promise.all(pending)));
  assert.deepEqual(used, [0, 1, 2, 3, 4, 5]);
  // A reload: the new counter starts at the stored reservation, above everything used.
  const reopened = await ReservedSequence.open(storage, 'ctx', 4);
  const next = await reopened.next();
  assert.ok(next > Math.max(...used), `reopened at ${next}`);
  // Another tab still holding the old instance gets the block after the reopened one's.
  const other = [await first.next(), await first.next(), await first.next()];
  for (const n of other) assert.ok(!used.includes(n) && n !== next, `number ${n} handed out twice`);
});
