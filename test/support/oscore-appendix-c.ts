/**
 * The RFC 8613 Appendix C test vectors (C.1–C.8) as a check of the browser build's asynchronous
 * OSCORE API, written to run unchanged in Node (test/browser-oscore.test.ts) and inside headless
 * Chromium (test/browser-chromium.test.ts bundles this module for the test page): no imports, no
 * Node built-ins; the API under test is passed in. Each vector is a result, never a throw, so the
 * page reports every one.
 */
import type * as Browser from '../../src/browser/index.js';

export type AppendixCApi = Pick<
  typeof Browser,
  'deriveContextAsync' | 'protectRequestAsync' | 'unprotectRequestAsync' | 'protectResponseAsync' | 'unprotectResponseAsync' | 'encodeMessage' | 'decodeMessage' | 'hexToBytes' | 'bytesToHex' | 'nonce'
>;

export interface VectorResult {
  name: string;
  ok: boolean;
  /** What differed, when not ok. */
  detail: string;
}

const MASTER_SECRET = '0102030405060708090a0b0c0d0e0f10';
const MASTER_SALT = '9e7ca92223786340';
const ID_CONTEXT = '37cbf3210017a2d3';

interface Derivation {
  name: string;
  salt?: string;
  idContext?: string;
  senderId: string;
  recipientId: string;
  senderKey: string;
  recipientKey: string;
  commonIv: string;
  /** The sender's and the recipient's nonce with Partial IV 0. */
  senderNonce: string;
  recipientNonce: string;
}

const DERIVATIONS: Derivation[] = [
  { name: 'C.1.1 client', salt: MASTER_SALT, senderId: '', recipientId: '01', senderKey: 'f0910ed7295e6ad4b54fc793154302ff', recipientKey: 'ffb14e093c94c9cac9471648b4f98710', commonIv: '4622d4dd6d944168eefb54987c', senderNonce: '4622d4dd6d944168eefb54987c', recipientNonce: '4722d4dd6d944169eefb54987c' },
  { name: 'C.1.2 server', salt: MASTER_SALT, senderId: '01', recipientId: '', senderKey: 'ffb14e093c94c9cac9471648b4f98710', recipientKey: 'f0910ed7295e6ad4b54fc793154302ff', commonIv: '4622d4dd6d944168eefb54987c', senderNonce: '4722d4dd6d944169eefb54987c', recipientNonce: '4622d4dd6d944168eefb54987c' },
  { name: 'C.2.1 client', senderId: '00', recipientId: '01', senderKey: '321b26943253c7ffb6003b0b64d74041', recipientKey: 'e57b5635815177cd679ab4bcec9d7dda', commonIv: 'be35ae297d2dace910c52e99f9', senderNonce: 'bf35ae297d2dace910c52e99f9', recipientNonce: 'bf35ae297d2dace810c52e99f9' },
  { name: 'C.2.2 server', senderId: '01', recipientId: '00', senderKey: 'e57b5635815177cd679ab4bcec9d7dda', recipientKey: '321b26943253c7ffb6003b0b64d74041', commonIv: 'be35ae297d2dace910c52e99f9', senderNonce: 'bf35ae297d2dace810c52e99f9', recipientNonce: 'bf35ae297d2dace910c52e99f9' },
  { name: 'C.3.1 client', salt: MASTER_SALT, idContext: ID_CONTEXT, senderId: '', recipientId: '01', senderKey: 'af2a1300a5e95788b356336eeecd2b92', recipientKey: 'e39a0c7c77b43f03b4b39ab9a268699f', commonIv: '2ca58fb85ff1b81c0b7181b85e', senderNonce: '2ca58fb85ff1b81c0b7181b85e', recipientNonce: '2da58fb85ff1b81d0b7181b85e' },
  { name: 'C.3.2 server', salt: MASTER_SALT, idContext: ID_CONTEXT, senderId: '01', recipientId: '', senderKey: 'e39a0c7c77b43f03b4b39ab9a268699f', recipientKey: 'af2a1300a5e95788b356336eeecd2b92', commonIv: '2ca58fb85ff1b81c0b7181b85e', senderNonce: '2da58fb85ff1b81d0b7181b85e', recipientNonce: '2ca58fb85ff1b81c0b7181b85e' },
];
const [C11, C12, C21, C22, C31, C32] = DERIVATIONS as [Derivation, Derivation, Derivation, Derivation, Derivation, Derivation];

interface RequestVector {
  name: string;
  client: Derivation;
  server: Derivation;
  unprotected: string;
  kidContext?: boolean;
  protected: string;
}

const REQUESTS: RequestVector[] = [
  { name: 'C.4 request (C.1 context)', client: C11, server: C12, unprotected: '44015d1f00003974396c6f63616c686f737483747631', protected: '44025d1f00003974396c6f63616c686f7374620914ff612f1092f1776f1c1668b3825e' },
  { name: 'C.5 request (C.2 context)', client: C21, server: C22, unprotected: '440171c30000b932396c6f63616c686f737483747631', protected: '440271c30000b932396c6f63616c686f737463091400ff4ed339a5a379b0b8bc731fffb0' },
  { name: 'C.6 request with kid context (C.3 context)', client: C31, server: C32, unprotected: '44012f8eef9bbf7a396c6f63616c686f737483747631', kidContext: true, protected: '44022f8eef9bbf7a396c6f63616c686f73746b19140837cbf3210017a2d3ff72cd7273fd331ac45cffbe55c3' },
];

const RESPONSE_UNPROTECTED = '64455d1f00003974ff48656c6c6f20576f726c6421';
const RESPONSES = [
  { name: 'C.7 response without Partial IV', sequenceNumber: undefined, protected: '64445d1f0000397490ffdbaad1e9a7e7b2a813d3c31524378303cdafae119106' },
  { name: 'C.8 response with Partial IV', sequenceNumber: 0, protected: '64445d1f00003974920100ff4d4c13669384b67354b2b6175ff4b8658c666a6cf88e' },
];

/** Runs every vector through `api`; one result per vector. */
export async function checkAppendixC(api: AppendixCApi): Promise<VectorResult[]> {
  const hex = (text: string): Uint8Array => api.hexToBytes(text)!;
  const derive = (v: Derivation) =>
    api.deriveContextAsync({
      masterSecret: hex(MASTER_SECRET),
      ...(v.salt ? { masterSalt: hex(v.salt) } : {}),
      ...(v.idContext ? { idContext: hex(v.idContext) } : {}),
      senderId: hex(v.senderId),
      recipientId: hex(v.recipientId),
    });
  const results: VectorResult[] = [];
  const check = async (name: string, run: (expect: (what: string, actual: Uint8Array | string | number | undefined, expected: string | number | undefined) => void) => Promise<void>): Promise<void> => {
    const differences: string[] = [];
    const expect = (what: string, actual: Uint8Array | string | number | undefined, expected: string | number | undefined): void => {
      const shown = actual instanceof Uint8Array ? api.bytesToHex(actual) : actual;
      if (shown !== expected) differences.push(`${what}: got ${String(shown)}, expected ${String(expected)}`);
    };
    try {
      await run(expect);
    } catch (error) {
      differences.push(`threw ${(error as Error).message}`);
    }
    results.push({ name, ok: differences.length === 0, detail: differences.join('; ') });
  };

  for (const v of DERIVATIONS) {
    await check(`RFC 8613 ${v.name}: keys, Common IV and nonces`, async (expect) => {
      const c = await derive(v);
      expect('Sender Key', c.senderKey, v.senderKey);
      expect('Recipient Key', c.recipientKey, v.recipientKey);
      expect('Common IV', c.commonIv, v.commonIv);
      expect('sender nonce', api.nonce(c.commonIv, c.senderId, Uint8Array.of(0)), v.senderNonce);
      expect('recipient nonce', api.nonce(c.commonIv, c.recipientId, Uint8Array.of(0)), v.recipientNonce);
    });
  }

  for (const v of REQUESTS) {
    await check(`RFC 8613 ${v.name}: the client's protected bytes`, async (expect) => {
      const client = await derive(v.client);
      const { message } = await api.protectRequestAsync(api.decodeMessage(hex(v.unprotected)), client.sender, 20, v.kidContext ? { kidContext: 'include' } : {});
      expect('protected request', api.encodeMessage(message), v.protected);
    });
    await check(`RFC 8613 ${v.name}: the server unprotects them`, async (expect) => {
      const server = await derive(v.server);
      const result = await api.unprotectRequestAsync(api.decodeMessage(hex(v.protected)), (kid) => (api.bytesToHex(kid) === v.server.recipientId ? server.recipient : undefined));
      if (!result.ok) return expect('unprotect', result.reason, 'ok');
      expect('unprotected request', api.encodeMessage(result.message), v.unprotected);
      expect('Partial IV', result.sequenceNumber, 20);
    });
  }

  for (const r of RESPONSES) {
    await check(`RFC 8613 ${r.name}: the server's protected bytes, verified by the client`, async (expect) => {
      const server = await derive(C12);
      const request = await api.unprotectRequestAsync(api.decodeMessage(hex(REQUESTS[0]!.protected)), () => server.recipient);
      if (!request.ok) return expect('unprotect request', request.reason, 'ok');
      const response = await api.protectResponseAsync(api.decodeMessage(hex(RESPONSE_UNPROTECTED)), server.sender, request.binding, r.sequenceNumber === undefined ? {} : { sequenceNumber: r.sequenceNumber });
      expect('protected response', api.encodeMessage(response), r.protected);
      const client = await derive(C11);
      const { binding } = await api.protectRequestAsync(api.decodeMessage(hex(REQUESTS[0]!.unprotected)), client.sender, 20);
      const back = await api.unprotectResponseAsync(api.decodeMessage(hex(r.protected)), client.recipient, binding);
      if (!back.ok) return expect('unprotect response', back.reason, 'ok');
      expect('unprotected response', api.encodeMessage(back.message), RESPONSE_UNPROTECTED);
      expect('Partial IV', back.sequenceNumber, r.sequenceNumber);
    });
  }

  await check('RFC 8613 C.4 tampered: one flipped ciphertext bit fails verification', async (expect) => {
    const server = await derive(C12);
    const tampered = hex(REQUESTS[0]!.protected);
    tampered[tampered.length - 1]! ^= 0x01;
    const result = await api.unprotectRequestAsync(api.decodeMessage(tampered), () => server.recipient);
    expect('verdict', result.ok ? 'accepted' : result.reason, 'Decryption failed');
  });
  return results;
}
