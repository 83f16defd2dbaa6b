/**
 * Issue 21: a server's idle contexts kept as bytes (ContextTable) and materialised on use in a
 * small LRU behave exactly as the same contexts held as objects: the same recipient for every kid,
 * the same replay verdicts (RFC 8613 §7.4) and B.1.2 state across eviction, the same challenge
 * budgets, and Sender Sequence Numbers that never repeat (§7.2.1), even from an evicted object a
 * response in flight still holds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../src/cli/errors.js';
import { serverOscore } from '../src/cli/oscore-args.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { AeadId, findHkdfAlgorithm, HkdfId } from '../src/oscore/algorithms.js';
import { ContextTable } from '../src/oscore/context-table.js';
import { protectRequest } from '../src/oscore/protect.js';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence, serving, type ChallengeBudget, type DirectoryEntry, type SecurityContextInput } from '../src/oscore/security-context.js';
import type { RecipientParams, SenderParams } from '../src/oscore/context.js';
import { securedSender, withEchoRetry } from '../src/client/security.js';
import { EdhocClientSecurity, EdhocServer, postOverEndpoint } from '../src/edhoc-coap/index.js';
import { serverCredentials } from '../src/server/credentials.js';
import { CoapServer } from '../src/server/server.js';
import { edhocPeers } from './support/edhoc-peers.js';
import { FakeNetwork } from './support/network.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import type { EndpointContext } from '../src/exchange/context.js';

/** A small deterministic generator (the model test must fail the same way every time). */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const DEVICES = 40;

/** Device i: its own secret; some with an ID Context, windows of 32 or 64, every third one resumed (B.1.2). */
function deviceInput(i: number): SecurityContextInput {
  return {
    masterSecret: Uint8Array.of(0x5a, i, 1, 2, 3, 4, 5, 6),
    senderId: Uint8Array.of(0xee),
    recipientIds: i % 7 === 3 ? [Uint8Array.of(i), Uint8Array.of(i, 0x99)] : [Uint8Array.of(i)],
    ...(i % 5 === 0 ? { idContext: Uint8Array.of(0xc0, i) } : {}),
    replayWindow: i % 2 === 0 ? 32 : 64,
    ...(i % 4 === 1 ? { name: `device-${i}` } : {}),
  };
}
const resumed = (i: number): boolean => i % 3 === 0;

/** A challenge budget's four counters (a table's budget reads them from its slab: accessors, not own fields). */
const budgetOf = (b: ChallengeBudget): ChallengeBudget => ({ second: b.second, count: b.count, accepted: b.accepted, acceptedBefore: b.acceptedBefore });

function objects(): ContextDirectory {
  return new ContextDirectory(Array.from({ length: DEVICES }, (_, i) => new OscoreSecurityContext(deviceInput(i), new VolatileSequence(), resumed(i))));
}

function table(active: number): ContextDirectory {
  const t = new ContextTable({ active, sequences: { source: () => new VolatileSequence(), resumes: (entry) => resumed(entry) } });
  for (let i = 0; i < DEVICES; i++) assert.equal(t.add(deviceInput(i)), i);
  return new ContextDirectory([], t);
}

/** What a step observes of a recipient, compared between the two directories. */
function observe(entry: DirectoryEntry | undefined): unknown {
  if (entry === undefined) return undefined;
  const { recipient, context } = entry;
  // As a server uses them (the objects a table lends on, security-context.ts `serving`): the
  // Recipient Key to verify the request, then the Sender Key to answer; and the public copies.
  const keys = (params: RecipientParams, sender: SenderParams): unknown => ({
    key: [...params.recipientKey],
    iv: [...params.commonIv],
    recipient: { id: [...params.recipientId], aead: params.aead, idContext: params.idContext && [...params.idContext], fields: Object.keys(params) },
    sender: { id: [...sender.senderId], key: [...sender.senderKey], iv: [...sender.commonIv], aead: sender.aead, idContext: sender.idContext && [...sender.idContext], fields: Object.keys(sender) },
  });
  const served = keys(serving.params(recipient), serving.sender(context));
  assert.deepEqual(keys(recipient.params, context.sender), served, 'the public keys are the served ones');
  return {
    name: recipient.name,
    kid: recipient.kidHex,
    layer: { ...serving.plainLayer(recipient) },
    idContext: context.idContext && [...context.idContext],
    served,
  };
}

test('model: random requests from 40 devices through a table of 3 active contexts match the same contexts as objects', () => {
  const next = random(21);
  const model = objects();
  const subject = table(3);
  const highest = new Array<number>(DEVICES).fill(0);
  // The object a request in flight may still hold: found earlier, maybe evicted since. Its replay
  // window and budget must be the device's, in step with the object serving it now (in place).
  const held = new Map<string, DirectoryEntry>();
  for (let step = 0; step < 3000; step++) {
    const device = next(DEVICES + 2); // two kids no device has
    const input = device < DEVICES ? deviceInput(device) : undefined;
    const kid = input ? input.recipientIds[next(input.recipientIds.length)]! : Uint8Array.of(0x77, device);
    const kidContext = input?.idContext && next(2) === 0 ? input.idContext : undefined;
    const a = model.find(kid, kidContext);
    let b = subject.find(kid, kidContext);
    assert.deepEqual(observe(b), observe(a), `step ${step}: find`);
    if (a === undefined || b === undefined) continue;
    const heldKey = `${[...kid]}/${kidContext !== undefined}`;
    const earlier = held.get(heldKey);
    // A high bit: the generator's low bits repeat with short periods (next(2) alternates).
    if (earlier === undefined || next(0x40000000) < 0x20000000) held.set(heldKey, b);
    else {
      b = earlier;
      // An evicted object gave its key objects to a later context (recycled): its own come back.
      assert.deepEqual(observe(b), observe(a), `step ${step}: keys of the object held`);
    }
    const action = next(10);
    if (action < 2) {
      assert.equal(b.context.nextSequenceNumber(), a.context.nextSequenceNumber(), `step ${step}: sequence number`);
      continue;
    }
    // A Partial IV: mostly new, sometimes a replay or one far below the window.
    const seq = action < 7 ? (highest[device] += 1 + next(3)) : Math.max(0, highest[device]! - next(80));
    const proven = next(8) === 0;
    // The server's objects (which a table lends on at eviction) or, one time in four, the public ones
    // (a table-made recipient's own, on the same slot): both read and write the device's state.
    const ra = a.recipient;
    const rb = next(0x40000000) < 0x30000000 ? serving.state(b.recipient) : b.recipient;
    assert.equal(rb.replay.initialised, ra.replay.initialised, `step ${step}: initialised`);
    if (!ra.replay.initialised) {
      // B.1.2: the request that echoed the challenge sets the window's lower limit.
      if (proven) {
        ra.replay.initialiseAt(seq);
        rb.replay.initialiseAt(seq);
      }
      continue;
    }
    assert.equal(rb.replay.verdict(seq, proven), ra.replay.verdict(seq, proven), `step ${step}: verdict for ${seq}`);
    const accepted = ra.replay.accept(seq, proven);
    assert.equal(rb.replay.accept(seq, proven), accepted, `step ${step}: accept ${seq}`);
    if (accepted) {
      ra.challenges.accepted++;
      rb.challenges.accepted++;
    } else {
      ra.challenges.count++;
      rb.challenges.count++;
    }
    assert.deepEqual(budgetOf(rb.challenges), budgetOf(ra.challenges), `step ${step}: challenge budget`);
  }
});

test('an evicted context a response still holds draws from the same sequence as its successor: no number twice', () => {
  const directory = table(1);
  const held = directory.find(Uint8Array.of(1), undefined)!.context;
  const numbers = [held.nextSequenceNumber()];
  directory.find(Uint8Array.of(2), undefined); // evicts device 1
  const again = directory.find(Uint8Array.of(1), undefined)!.context;
  assert.notEqual(again, held, 'device 1 was materialised anew');
  for (let i = 0; i < 5; i++) numbers.push(held.nextSequenceNumber(), again.nextSequenceNumber());
  assert.deepEqual(numbers, Array.from({ length: 11 }, (_, i) => i));
});

test('a device that comes back after its context was put away derives no key again (its keys stay in the table)', () => {
  const hkdf = findHkdfAlgorithm(HkdfId.HKDF_SHA_256)!;
  const derive = hkdf.derive;
  let runs = 0;
  hkdf.derive = (...args) => (runs++, derive(...args));
  try {
    const directory = table(1);
    const keysOf = (kid: number): unknown => observe(directory.find(Uint8Array.of(kid), undefined));
    const first = keysOf(1);
    assert.equal(runs, 3, 'Sender Key, Recipient Key and Common IV derived once');
    keysOf(2); // puts device 1 away
    assert.equal(runs, 6);
    assert.deepEqual(keysOf(1), first, 'device 1 has its keys back');
    keysOf(2);
    assert.equal(runs, 6, 'no HKDF run for a device that came back');
  } finally {
    hkdf.derive = derive;
  }
});

test('a table refuses what an object context refuses, and contexts that run Appendix B.2', () => {
  const t = new ContextTable();
  assert.throws(() => t.add({ ...deviceInput(1), recipientIds: [] }), /at least one recipient/);
  assert.throws(() => t.add({ ...deviceInput(1), replayWindow: 0 }), /replay window/);
  assert.throws(() => t.add({ ...deviceInput(1), rederivation: true }), /Appendix B.2/);
  assert.throws(() => new ContextTable({ active: 0 }), RangeError);
  assert.equal(t.size, 0);
});

const source: EndpointContext = { peer: { address: '127.0.0.1', port: 40000 }, peerKey: '127.0.0.1:40000', scheme: 'coap' } as EndpointContext;

function get(client: OscoreSecurityContext, seq: number): CoapMessage {
  const request: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: seq, token: Uint8Array.of(seq), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  return protectRequest(request, client.sender, seq).message;
}

test('the server: a request accepted before its context was put away is still a replay after', () => {
  const t = new ContextTable({ active: 2 });
  for (let i = 0; i < 5; i++) t.add({ masterSecret: Uint8Array.of(i, 9, 9, 9), senderId: new Uint8Array(0), recipientIds: [Uint8Array.of(i)] });
  const server = new OscoreServerSecurity([], { table: t });
  const client = (i: number) => new OscoreSecurityContext({ masterSecret: Uint8Array.of(i, 9, 9, 9), senderId: Uint8Array.of(i), recipientIds: [new Uint8Array(0)] }, new VolatileSequence());
  const first = get(client(0), 7);
  assert.equal(server.unprotect(first, source)?.ok, true);
  for (let i = 1; i < 5; i++) assert.equal(server.unprotect(get(client(i), 1), source)?.ok, true, `device ${i}`);
  assert.equal(t.active.length, 2, 'device 0 was put away');
  const replay = server.unprotect(first, source);
  assert.equal(replay?.ok, false);
  assert.equal(replay!.ok === false && replay!.response.code, ResponseCode.Unauthorized);
  assert.match(Buffer.from(replay!.ok === false ? replay!.response.payload : []).toString(), /Replay detected/);
  assert.equal(server.unprotect(get(client(0), 8), source)?.ok, true, 'the next request is fresh');
  assert.equal(server.contextCount, 5);
});

test('serverCredentials({ activeContexts }) and serve --active-contexts size the LRU of a credentials file\'s recipients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-active-'));
  try {
    const recipients = Object.fromEntries(
      Array.from({ length: 5 }, (_, i) => [`0${i}`, { name: `device-${i}`, context: { masterSecret: `5a0${i}01020304`, senderId: '', echoOnRestart: false } }]),
    );
    const file = join(dir, 'server.json');
    writeFileSync(file, JSON.stringify({ stateDirectory: 'state', recipients }));
    const loaded = serverCredentials(file, { registryDirectory: join(dir, 'registry'), activeContexts: 2 });
    try {
      const client = (i: number) => new OscoreSecurityContext({ masterSecret: Uint8Array.of(0x5a, i, 1, 2, 3, 4), senderId: Uint8Array.of(i), recipientIds: [new Uint8Array(0)] }, new VolatileSequence());
      for (let i = 0; i < 5; i++) assert.equal(loaded.security.unprotect(get(client(i), 1), source)?.ok, true, `device ${i}`);
      assert.equal(loaded.security.contexts.length, 2, 'two contexts ready, the others put away');
      assert.equal(loaded.security.contextCount, 5);
    } finally {
      loaded.close();
    }
    assert.throws(() => serverOscore({ credentials: file, 'active-contexts': '0' }), UsageError);
    assert.throws(() => serverOscore({ 'active-contexts': '8' }), /--active-contexts goes with --credentials/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('EDHOC never picks as C_R the kid of an idle context in the table: with all one-byte kids there, C_R is two bytes long', async () => {
  const net = new FakeNetwork();
  const server = { address: '10.0.0.1', port: 5683 };
  const peers = edhocPeers(3, 2);
  const t = new ContextTable({ active: 1 });
  for (let i = 0; i < 256; i++) t.add({ masterSecret: Uint8Array.of(0x5a, i, 1, 2), senderId: Uint8Array.of(1, 2, 3), recipientIds: [Uint8Array.of(i)] });
  const coap = new CoapServer(net.endpoint(server, {}, 1), { security: new OscoreServerSecurity([], { table: t }) });
  coap.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hello' }) });
  const edhoc = EdhocServer.attach(coap, { responder: peers.responder });
  const endpoint = net.endpoint({ address: '10.0.0.2', port: 40000 }, {}, 2);
  const security = new EdhocClientSecurity({ initiator: peers.initiator, post: postOverEndpoint(endpoint, server) });
  const hello: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(0), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  const response = await net.until(withEchoRetry(securedSender(endpoint, server, security))(hello));
  assert.equal(response.message.code, ResponseCode.Content);
  assert.equal(edhoc.contexts[0]!.primaryRecipient.params.recipientId.length, 2);
  assert.equal(t.active.length, 0, 'asking about the kids materialised none of the idle contexts');
});

test('a removed entry\'s reused row and window slot start empty: nothing of the old device (keys, window, lower limit, budget, restart) reaches the new one', () => {
  let resumes = true;
  const t = new ContextTable({ active: 1, sequences: { source: () => new VolatileSequence(), resumes: () => resumes } });
  const input = (secret: number, kid: number): SecurityContextInput => ({ masterSecret: Uint8Array.of(0x5a, secret, 1, 2), senderId: new Uint8Array(0), recipientIds: [Uint8Array.of(kid)], echoOnRestart: true });
  const old = t.add(input(1, 1));
  t.add(input(2, 2));
  const first = t.find(Uint8Array.of(1), undefined)!;
  assert.equal(first.recipient.replay.initialised, false, 'resumed with echoOnRestart: uninitialised (B.1.2)');
  first.recipient.replay.initialiseAt(50);
  assert.equal(first.recipient.replay.accept(51), true);
  Object.assign(first.recipient.challenges, { second: 5, count: 3, accepted: 7, acceptedBefore: 2 });
  void first.recipient.params; // derives the keys, kept at eviction
  t.find(Uint8Array.of(2), undefined); // puts device 1 away: its keys go to the table
  t.remove(old);
  resumes = false;
  assert.equal(t.add(input(3, 3)), old, 'the removed entry is reused');
  const reused = t.find(Uint8Array.of(3), undefined)!;
  const fresh = new OscoreSecurityContext(input(3, 3), new VolatileSequence()).recipients[0]!;
  assert.deepEqual([...reused.recipient.params.recipientKey], [...fresh.params.recipientKey], 'its own keys');
  assert.deepEqual([...reused.context.sender.senderKey], [...new OscoreSecurityContext(input(3, 3), new VolatileSequence()).sender.senderKey]);
  const replay = reused.recipient.replay;
  assert.equal(replay.initialised, true, 'not resumed: initialised');
  assert.equal(replay.highest, undefined);
  assert.equal(replay.accept(60), true);
  assert.equal(replay.verdict(45), 'fresh', 'no lower limit of the old window');
  assert.equal(replay.verdict(51), 'fresh');
  assert.deepEqual(budgetOf(reused.recipient.challenges), { second: -1, count: 0, accepted: 0, acceptedBefore: 0 });
  // The old device's object, still held: it must not read or write the new device's state.
  assert.throws(() => first.recipient.replay.verdict(52), /removed/);
  assert.throws(() => first.recipient.challenges.accepted++, /removed/);
  assert.equal(replay.verdict(60), 'replayed');
});

test('a context of a removed entry that never verified a request cannot set up a window on the entry\'s next use', () => {
  const t = new ContextTable({ active: 4 });
  const input = (i: number): SecurityContextInput => ({ masterSecret: Uint8Array.of(0x5a, i, 1, 2), senderId: new Uint8Array(0), recipientIds: [Uint8Array.of(i)] });
  const entry = t.add(input(1));
  const stale = t.find(Uint8Array.of(1), undefined)!;
  t.remove(entry);
  t.add(input(2));
  assert.throws(() => stale.recipient.replay, /removed/);
  assert.equal(t.find(Uint8Array.of(2), undefined)!.recipient.replay.accept(0), true);
});

test('key objects taken over from an evicted context carry only the new device\'s keys, IDs and AEAD; the evicted object derives its own again', () => {
  const t = new ContextTable({ active: 1 });
  // Same array lengths, so device 2's objects are reused for device 1; another AEAD (same key and nonce sizes).
  const input = (i: number): SecurityContextInput => ({ masterSecret: Uint8Array.of(0x5a, i, 1, 2), senderId: Uint8Array.of(0xe0 + i), recipientIds: [Uint8Array.of(i)], ...(i === 2 ? { aead: AeadId.AES_CCM_16_128_128 } : {}) });
  const expected = (i: number): unknown => observe(new ContextDirectory([new OscoreSecurityContext(input(i), new VolatileSequence())]).find(Uint8Array.of(i), undefined));
  t.add(input(1));
  t.add(input(2));
  const directory = new ContextDirectory([], t);
  assert.deepEqual(observe(directory.find(Uint8Array.of(1), undefined)), expected(1));
  const two = directory.find(Uint8Array.of(2), undefined)!; // device 1 put away, its keys kept
  assert.deepEqual(observe(two), expected(2));
  const twoSender = serving.sender(two.context);
  const one = directory.find(Uint8Array.of(1), undefined)!; // device 2 put away; device 1 takes over its key objects
  assert.equal(serving.sender(one.context), twoSender, 'the key objects were reused (else this test shows nothing)');
  assert.deepEqual(observe(one), expected(1));
  assert.deepEqual(observe(two), expected(2), 'the evicted object has its own keys again');
  assert.notEqual(serving.sender(two.context), twoSender);
});
