/**
 * Issue 26 item "what must be shown": Redis, nginx's stream module as UDP balancer
 * (deploy/nginx-coap.conf via scripts/farm.mjs) and 3 `coapsec serve --store` nodes; 20 OSCORE
 * clients, each with its own context, send GETs for RUN_SECONDS; one node is SIGKILLed at a third
 * of the run and started again (same port, nothing written back) at two thirds.
 * - every request settles exactly once: a 2.05 answer or a clear error, counted;
 * - no (key, nonce) pair is used twice across the farm: every datagram to and from each client is
 *   recorded by a relay in front of the balancer (so the audit sees what every node sent), and
 *   each response's nonce is worked out as in RFC 8613 §5.2 (its own Partial IV under the server's
 *   key, or the request's with the client's Sender ID);
 * - a request recorded through the balancer and replayed straight to each node is refused: the
 *   node that ran it says Replay detected (4.01), the others challenge with Echo (a protected
 *   answer with a Partial IV of their own, never one under the request's nonce; Appendix B.1.2).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { provisionDevices, startFarm } from './farm-devices.js';
import { auditNonces, recordingRelay, type RecordingRelay } from './store-relay.js';

const RUN_SECONDS = Number(process.env['COAPSEC_FARM_SECONDS'] ?? 60);
const CLIENTS = 20;
const NODES = 3;

const directory = mkdtempSync(join(tmpdir(), 'coapsec-farm-test-'));
process.env['COAPSEC_STATE_DIR'] = directory;
after(() => rmSync(directory, { recursive: true, force: true }));

test(`farm: 3 nodes behind nginx, 20 OSCORE clients for ${RUN_SECONDS} s, a node SIGKILLed and restarted`, { timeout: (RUN_SECONDS + 120) * 1000 }, async (t) => {
  // Every client here shares 127.0.0.1, so the balancer hashes address and port (each client's relay has its own).
  const farm = await startFarm({ nodes: NODES, hashKey: '$remote_addr:$remote_port' });
  t.after(() => farm.stop());

  const credentials = await provisionDevices(directory, farm.redisUrl, CLIENTS);

  const relays: RecordingRelay[] = await Promise.all(credentials.map(() => recordingRelay(farm.port)));
  t.after(() => relays.forEach((r) => r.close()));
  const clients = credentials.map((context) => {
    const security = new OscoreClientSecurity(new OscoreSecurityContext(context, new VolatileSequence(0)));
    return new CoapClient({ security: () => security, parameters: { ackTimeout: 1000, maxRetransmit: 3 } });
  });
  t.after(() => Promise.all(clients.map((c) => c.close())));

  const outcomes = { issued: 0, answered: 0, errors: new Map<string, number>(), otherStatus: new Map<string, number>() };
  const end = Date.now() + RUN_SECONDS * 1000;
  const drive = async (client: CoapClient, relay: RecordingRelay): Promise<void> => {
    while (Date.now() < end) {
      outcomes.issued++;
      try {
        const response = await client.get(`coap://127.0.0.1:${relay.port}/hello`);
        if (response.status === '2.05 Content') outcomes.answered++;
        else outcomes.otherStatus.set(response.status, (outcomes.otherStatus.get(response.status) ?? 0) + 1);
      } catch (error) {
        const message = (error as Error).message.replace(/\d+/g, 'N');
        outcomes.errors.set(message, (outcomes.errors.get(message) ?? 0) + 1);
      }
    }
  };
  const victim = farm.nodes[1]!;
  const failover = (async () => {
    await sleep((RUN_SECONDS * 1000) / 3);
    assert.equal(await victim.kill('SIGKILL'), 'SIGKILL');
    await sleep((RUN_SECONDS * 1000) / 3);
    await victim.restart();
  })();
  await Promise.all([...clients.map((c, i) => drive(c, relays[i]!)), failover]);

  const errors = [...outcomes.errors.values()].reduce((a, b) => a + b, 0);
  const others = [...outcomes.otherStatus.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`requests ${outcomes.issued}: ${outcomes.answered} answered 2.05, ${others} other answers ${JSON.stringify([...outcomes.otherStatus])}, ${errors} errors ${JSON.stringify([...outcomes.errors])}`);
  assert.equal(outcomes.answered + others + errors, outcomes.issued, 'every request settled exactly once');
  assert.equal(others, 0, 'no answer but 2.05 reached a client (Echo challenges are answered inside the client)');
  for (const message of outcomes.errors.keys()) assert.match(message, /no acknowledgement|timed out|unreachable/i, `a clear error: ${message}`);
  assert.ok(errors <= CLIENTS * 2, `errors only around the failover: ${errors}`);
  assert.ok(outcomes.answered >= CLIENTS * RUN_SECONDS, `the farm kept serving: ${outcomes.answered} answers`);

  let ownPartialIvs = 0;
  for (const relay of relays) ownPartialIvs += auditNonces(relay.log);
  t.diagnostic(`nonce audit: ${relays.reduce((n, r) => n + r.log.length, 0)} datagrams, ${ownPartialIvs} responses with the nodes' own Partial IVs (Echo challenges), no nonce used twice`);
  assert.ok(ownPartialIvs >= CLIENTS, 'every client met at least one Echo challenge (its first node, then the failover)');

  // Replay: the last request one client sent, straight to every node (bypassing the balancer).
  const captured = relays[0]!.log.filter((e) => e.fromClient && decodeMessage(e.datagram).code !== 0).at(-1)!.datagram;
  const answers = await Promise.all(farm.nodes.map((n) => sendRaw(n.port, captured)));
  for (const [i, answer] of answers.entries()) {
    const oscore = getOption(answer, OptionNumber.Oscore);
    const refused = answer.code === ResponseCode.Unauthorized || (oscore !== undefined && decodeOscoreOption(oscore).piv !== undefined);
    assert.ok(refused, `node ${i} refused the replayed request (4.01 Replay detected or an Echo challenge), got code ${answer.code}`);
  }
  assert.doesNotMatch(farm.balancer.errorLog(), /\[(emerg|alert|crit)\]/);
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sendRaw(port: number, datagram: Buffer): Promise<CoapMessage> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no answer from 127.0.0.1:${port} within 5 s`));
    }, 5000);
    socket.on('message', (data) => {
      clearTimeout(timer);
      socket.close();
      resolve(decodeMessage(data));
    });
    socket.send(datagram, port, '127.0.0.1');
  });
}
