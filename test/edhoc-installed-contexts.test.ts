/**
 * Issue 21: EDHOC-made OSCORE contexts held as bytes (src/edhoc-coap/installed-contexts.ts, on
 * ContextTable) — a context put away by the LRU and brought back keeps its Sender Sequence Number
 * (never one handed out twice, RFC 8613 §7.2.1) and its replay window with its lower limit (§7.4,
 * Appendix B.1.2); C_R stays unique against idle contexts (RFC 9668 §4.1.2); at most
 * `maxContexts`, the one installed first dropped; ContextTable.remove reuses what it frees without
 * handing a new context anything of the old.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { EdhocServer } from '../src/edhoc-coap/index.js';
import type { EdhocServerOptions } from '../src/edhoc-coap/server.js';
import type { EdhocSession } from '../src/edhoc/session.js';
import type { EndpointContext } from '../src/exchange/context.js';
import { ContextTable } from '../src/oscore/context-table.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { protectRequest, unprotectResponse } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import type { CoapRequest } from '../src/server/resource.js';
import { EdhocInitiator } from '../src/edhoc/index.js';
import { prefixNewSession, prefixWithIdentifier } from '../src/edhoc-coap/transfer.js';
import { clientContextOf, deviceConnectionId, devicePeer, premadeSession } from '../bench/edhoc-contexts.js';
import { edhocPeers } from './support/edhoc-peers.js';

const SOURCE: EndpointContext = { peer: { address: '10.0.0.2', port: 40000 }, scheme: 'coap' } as EndpointContext;
const peer = devicePeer('device');

function server(options: Partial<EdhocServerOptions> = {}, peers = edhocPeers(3, 2)): EdhocServer {
  return new EdhocServer({ responder: peers.responder, ...options }, new FakeScheduler());
}

const getHello = (): CoapMessage => ({ type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [{ number: OptionNumber.UriPath, value: encodeString('hello') }], payload: EMPTY_BYTES });

/** A device: its session installed on `edhoc`, and its client context. */
function device(edhoc: EdhocServer, i: number): { session: EdhocSession; client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const session = premadeSession(peer, deviceConnectionId(i));
  const serverContext = edhoc.installSession(session);
  return { session, client: clientContextOf(session), server: serverContext };
}

/** The device's request with Partial IV `seq`, unprotected by the server: the outcome. */
function send(edhoc: EdhocServer, client: OscoreSecurityContext, seq: number) {
  const { message, binding } = protectRequest(getHello(), client.sender, seq);
  return { outcome: edhoc.unprotect(message, SOURCE)!, request: message, binding };
}

/** The Partial IV of a response the server protected with a fresh one (a notification or challenge). */
function responsePartialIv(response: CoapMessage): number {
  const piv = decodeOscoreOption(getOption(response, OptionNumber.Oscore)!).piv!;
  return piv.reduce((n: number, b: number) => n * 256 + b, 0);
}

const refusal = (outcome: ReturnType<typeof send>['outcome']): string => {
  assert.equal(outcome.ok, false);
  return outcome.ok ? '' : Buffer.from(outcome.response.payload).toString();
};

describe('EDHOC-made contexts as bytes (issue 21)', () => {
  it('a context put away and brought back never hands out a Sender Sequence Number twice', () => {
    const edhoc = server({ activeContexts: 1 });
    const a = device(edhoc, 1);
    const b = device(edhoc, 2);
    const seen: number[] = [];
    for (let round = 0; round < 4; round++) {
      const { outcome } = send(edhoc, a.client, round);
      assert.ok(outcome.ok, `request ${round} of device 1 verified`);
      seen.push(responsePartialIv(outcome.protect({ ...getHello(), type: MessageType.ACK, code: ResponseCode.Content }, 'notification')));
      // The object handed out at installation (onEstablished's) shares the number source.
      seen.push(a.server.nextSequenceNumber());
      assert.ok(send(edhoc, b.client, round).outcome.ok, 'device 2 puts device 1 away');
    }
    assert.equal(new Set(seen).size, seen.length, `numbers ${seen.join(',')} repeat`);
    assert.deepEqual(seen, [...seen].sort((x, y) => x - y));
  });

  it('a replay is still a replay after the context was put away, and B.1.2 lower limit holds', () => {
    const edhoc = server({ activeContexts: 1 });
    const a = device(edhoc, 1);
    const b = device(edhoc, 2);
    const first = send(edhoc, a.client, 100);
    assert.ok(first.outcome.ok);
    assert.ok(send(edhoc, b.client, 0).outcome.ok, 'device 2 puts device 1 away');
    assert.equal(refusal(edhoc.unprotect(first.request, SOURCE)!), 'Replay detected');
    assert.ok(send(edhoc, b.client, 1).outcome.ok);
    // Below the window (32 below 100): maybe never received, so not processed — an Echo challenge.
    const stale = send(edhoc, a.client, 50).outcome;
    assert.equal(stale.ok, false);
    assert.ok(!stale.ok && getOption(stale.response, OptionNumber.Oscore) !== undefined, 'a protected 4.01 challenge, not processed');
    const later = send(edhoc, a.client, 101);
    assert.ok(later.outcome.ok);
    const response = later.outcome.protect({ ...getHello(), type: MessageType.ACK, code: ResponseCode.Content, payload: encodeString('hi') }, 'response');
    // The keys brought back are the context's: the client opens the response.
    assert.ok(unprotectResponse(response, a.client.primaryRecipient.params, later.binding).ok);
  });

  it('holds at most maxContexts, dropping the one installed first (its client gets 4.01), and tells onDropped', () => {
    const dropped: string[] = [];
    const edhoc = server({ maxContexts: 3, onDropped: (kid) => dropped.push(Buffer.from(kid).toString('hex')) });
    const devices = [1, 2, 3, 4, 5].map((i) => device(edhoc, i));
    assert.equal(edhoc.contextCount, 3);
    assert.deepEqual(dropped, ['000001', '000002']);
    assert.equal(refusal(send(edhoc, devices[0]!.client, 0).outcome), 'Security context not found');
    for (const d of devices.slice(2)) assert.ok(send(edhoc, d.client, 0).outcome.ok);
    assert.equal(edhoc.peerFor(deviceConnectionId(5)), peer);
    assert.equal(edhoc.peerFor(deviceConnectionId(1)), undefined);
    // dropContext takes the context it names, not a later one under the same kid.
    const again = device(edhoc, 3); // a new context under kid 000003 replaces the old one
    assert.deepEqual(dropped, ['000001', '000002', '000003']);
    assert.equal(edhoc.dropContext(devices[2]!.server), false, 'the replaced context is gone already');
    assert.equal(edhoc.hasKid(deviceConnectionId(3)), true);
    assert.equal(edhoc.dropContext(again.server), true);
    assert.equal(edhoc.hasKid(deviceConnectionId(3)), false);
    assert.equal(edhoc.contextCount, 2);
  });

  it('4,000 contexts cost a few hundred bytes each (heap and the table\'s ArrayBuffers)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const edhoc = server({ maxContexts: 4000 });
    const used = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    const before = used();
    const sessions = Array.from({ length: 4000 }, (_, i) => premadeSession(peer, deviceConnectionId(i)));
    for (const session of sessions) edhoc.installSession(session);
    sessions.length = 0;
    const perContext = (used() - before) / 4000;
    assert.equal(edhoc.contextCount, 4000);
    // As objects (an OscoreSecurityContext and an OscoreServerSecurity each) they took 3.2 KB.
    assert.ok(perContext < 800, `${perContext.toFixed(0)} bytes per context`);
  });

  it('C_R is never the Recipient ID of an idle EDHOC context (RFC 9668 §4.1.2)', () => {
    const dropped: Uint8Array[] = [];
    const peers = edhocPeers(3, 2);
    const edhoc = server({ activeContexts: 2, maxContexts: 1000, onDropped: (kid) => dropped.push(kid) }, peers);
    // Every one-byte identifier but one taken by an installed context, idle (the LRU holds two).
    for (let b = 0; b < 256; b++) if (b !== 0x42) edhoc.installSession(premadeSession(peer, Uint8Array.of(b), 2, Uint8Array.of(0xc1, 0xc1)));
    const post = (payload: Uint8Array): Uint8Array => {
      const answer = edhoc.handle({ method: Method.POST, payload: Buffer.from(payload), contentFormat: ContentFormat.CidEdhocCborSeq } as CoapRequest);
      assert.equal(answer.code, ResponseCode.Changed);
      return answer.payload as Uint8Array;
    };
    for (let run = 0; run < 4; run++) {
      const { state, message } = new EdhocInitiator(peers.initiator).prepareMessage1({ connectionId: Uint8Array.of(0x30 + run) });
      const processed = state.processMessage2(post(prefixNewSession(message)));
      post(prefixWithIdentifier(processed.connectionIdR, processed.prepareMessage3().message));
    }
    // A C_R equal to an installed context's kid would have replaced it.
    assert.deepEqual(dropped, []);
    assert.equal(edhoc.contextCount, 259);
  });
});

describe('ContextTable.remove', () => {
  it('a removed entry is found no more; its reused entry, rows and bytes give the new context only its own keys and state', () => {
    const table = new ContextTable({ active: 2 });
    const secret = (i: number, generation: number): Uint8Array => Uint8Array.of(i & 0xff, i >> 8, generation, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7);
    const model = new Map<number, { entry: number; generation: number }>();
    let seed = 12345;
    const random = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) % n;
    // 120 kids in a hash of 128–256 slots: long probe runs, so removals move entries back.
    for (let step = 0; step < 6000; step++) {
      const i = random(120);
      const kid = Uint8Array.of(0xee, i);
      const held = model.get(i);
      const action = random(3);
      if (held === undefined || action === 0) {
        if (held !== undefined) table.remove(held.entry);
        const generation = step & 0xff;
        model.set(i, { entry: table.add({ masterSecret: secret(i, generation), senderId: Uint8Array.of(1), recipientIds: [kid], name: `device ${i}.${generation}` }), generation });
      } else if (action === 1) {
        table.remove(held.entry);
        model.delete(i);
        assert.equal(table.has(kid), false);
        assert.equal(table.find(kid, undefined), undefined);
      } else {
        const found = table.find(kid, undefined)!;
        assert.equal(table.entryOf(kid), held.entry);
        assert.deepEqual(table.kidOf(held.entry), kid);
        assert.equal(found.context.name, `device ${i}.${held.generation}`);
        if (step % 8 === 0) {
          // Keys from this context's own secret, whatever the entry held before (compared with a fresh derivation).
          const fresh = new OscoreSecurityContext({ masterSecret: secret(i, held.generation), senderId: Uint8Array.of(1), recipientIds: [kid] }, new VolatileSequence());
          assert.deepEqual(found.context.sender.senderKey, fresh.sender.senderKey);
          assert.deepEqual(found.recipient.params.recipientKey, fresh.primaryRecipient.params.recipientKey);
        }
        // A fresh context's window starts at nothing: a request of an earlier context under this kid left no trace.
        assert.equal(found.recipient.replay.accept(step, false), true);
      }
      assert.equal(table.size, model.size);
    }
    assert.throws(() => table.remove(10_000), RangeError);
  });
});
