/**
 * Group benchmark (issue 20): one request to a group of 3 servers, time until all 3 responses, in
 * three modes — plain CoAP, Group OSCORE group mode (one request, countersigned, answered by each
 * server with a countersigned response), and Group OSCORE pairwise mode (one pairwise-protected
 * request to each server, §8; answered with pairwise keys, no signatures) — with the servers'
 * Leisure set to 0. In the same run, signature ops/s of the group's algorithms (Ed25519 and ECDSA
 * P-256, sign and verify) as the floor: a group-mode exchange with 3 servers costs the client one
 * signature and three verifications, and each server one verification and one signature.
 *
 * No multicast: the 3 servers (CoapServer with the group stages, in this process) listen on
 * 127.0.0.1 port 0, and the group client's transport copies each datagram it sends to the group
 * address to the 3 servers' unicast addresses — the servers treat it as a request to the group
 * (Leisure, suppressed errors), as the multicast socket would tell them. It refuses every other
 * destination, so nothing leaves loopback. The client and the servers share one thread: the time
 * to all 3 responses includes the 3 servers' work, done one after the other.
 *
 *   node dist/bench/group.js [--quick] [--rounds N] [--duration MS]
 */
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex } from '../src/cose/cbor.js';
import { CoseSignAlg, signBytes, verifyBytes } from '../src/cose/sign.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { GroupContextStore, type GroupSecurityContext } from '../src/group-oscore/context.js';
import { DEFAULT_GROUP_ALGORITHMS, GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { GroupClient } from '../src/group/group-client.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramTransport, PeerAddress } from '../src/transport/transport.js';
import { UdpClientTransport } from '../src/transport/udp-client.js';
import { UdpTransport } from '../src/transport/udp.js';
import { median } from './common.js';
import { environment, fmt, parseCommonArgs, runMain, runMicroCases, table } from './harness.js';
import { generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

const USAGE = 'usage: node dist/bench/group.js [--quick] [--rounds N] [--duration MS]';
/** The group's address as the client names it; the fan-out transport below never sends to it. */
const GROUP_ADDRESS: PeerAddress = { address: '224.0.1.187', port: 5683 };
const SERVERS = ['s1', 's2', 's3'] as const;
const MODES = ['plain', 'group mode', 'pairwise mode'] as const;
type Mode = (typeof MODES)[number];

/** The client's UDP transport, with datagrams to the group address copied to each server instead. */
function fanOut(inner: DatagramTransport, members: readonly PeerAddress[]): DatagramTransport {
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver) as unknown;
      return (data: Uint8Array, peer: PeerAddress): void => {
        if (peer.address === GROUP_ADDRESS.address && peer.port === GROUP_ADDRESS.port) for (const member of members) target.send(data, member);
        else if (members.some((m) => m.address === peer.address && m.port === peer.port)) target.send(data, peer);
        else throw new Error(`the benchmark sends only to its own servers, not to ${peer.address}:${peer.port}`);
      };
    },
  });
}

interface Setup {
  client: GroupClient;
  clientContext: GroupSecurityContext;
  servers: { server: CoapServer; address: PeerAddress; senderId: Uint8Array }[];
  /** What the servers' group stage is told: does the datagram come to the group? */
  membership: { receivingGroupDatagram: boolean };
  close(): Promise<void>;
}

async function setUp(signature: number): Promise<Setup> {
  const gm = GroupManager.create({ name: 'lights', algorithms: { ...DEFAULT_GROUP_ALGORITHMS, signature } });
  for (const name of ['client', ...SERVERS]) gm.addMember(name);
  const membership = { receivingGroupDatagram: true };
  const servers = await Promise.all(
    SERVERS.map(async (name) => {
      const contexts = new GroupContextStore();
      contexts.install('lights', contextFromMemberFile(gm.memberFile(name)));
      const transport = await UdpTransport.bind({ host: '127.0.0.1', port: 0 });
      const server = new CoapServer(new CoapEndpoint({ transport }), { group: { membership, contexts, leisureMs: 0 } });
      server.resource('/light', { GET: () => ({ code: ResponseCode.Content, payload: `${name}: on` }) });
      return { server, address: transport.localAddress(), senderId: fromHex(gm.memberFile(name).senderId) };
    }),
  );
  const client = new GroupClient({ transport: fanOut(await UdpClientTransport.bind({ host: '127.0.0.1', port: 0 }), servers.map((s) => s.address)) });
  return {
    client,
    clientContext: contextFromMemberFile(gm.memberFile('client')),
    servers,
    membership,
    close: async () => {
      await client.close();
      await Promise.all(servers.map((s) => s.server.close()));
    },
  };
}

const TIMEOUT_MS = 2000;

/** One request to the group (pairwise: one to each server); resolves with ms until the 3rd response. */
async function exchange(setup: Setup, mode: Mode): Promise<number> {
  const start = performance.now();
  const uri = (to: PeerAddress): string => `coap://${to.address}:${to.port}/light`;
  const streams =
    mode === 'pairwise mode'
      ? setup.servers.map((s) => setup.client.request({ uri: uri(s.address), timeout: TIMEOUT_MS, security: { context: setup.clientContext, target: { mode: 'pairwise', recipientId: s.senderId } } }))
      : [setup.client.request({ uri: uri(GROUP_ADDRESS), timeout: TIMEOUT_MS, ...(mode === 'group mode' ? { security: { context: setup.clientContext } } : {}) })];
  let answered = 0;
  await Promise.all(
    streams.map(async (stream) => {
      for await (const response of stream) {
        if (response.code !== ResponseCode.Content) throw new Error(`${mode}: ${response.origin.port} answered ${response.code}`);
        answered += 1;
        if (answered === SERVERS.length || mode === 'pairwise mode') stream.cancel();
      }
    }),
  );
  if (answered !== SERVERS.length) throw new Error(`${mode}: ${answered} of ${SERVERS.length} responses within ${TIMEOUT_MS} ms (refused: ${streams.flatMap((s) => s.refusals.map((r) => r.reason)).join(', ') || 'none'})`);
  return performance.now() - start;
}

/** Exchanges one after the other for `ms`; the median and the count. */
async function measure(setup: Setup, mode: Mode, ms: number): Promise<{ medianMs: number; exchanges: number; cpuMicros: number }> {
  setup.membership.receivingGroupDatagram = mode !== 'pairwise mode';
  for (let i = 0; i < 20; i++) await exchange(setup, mode);
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  const until = performance.now() + ms;
  while (performance.now() < until && times.length < 100_000) times.push(await exchange(setup, mode));
  const cpu = process.cpuUsage(cpu0);
  return { medianMs: median(times), exchanges: times.length, cpuMicros: (cpu.user + cpu.system) / times.length };
}

function signatureCases(): Array<[string, () => void]> {
  const data = new Uint8Array(120).fill(0x5a);
  const cases: Array<[string, () => void]> = [];
  for (const [label, alg, pair] of [
    ['Ed25519', CoseSignAlg.EdDSA, generateKeyPairOn(CoseCurve.Ed25519)],
    ['ECDSA P-256', CoseSignAlg.ES256, generateKeyPairOn(CoseCurve.P256)],
  ] as const) {
    const signature = signBytes(alg, pair.privateKey, data);
    cases.push([`${label} sign`, () => void signBytes(alg, pair.privateKey, data)]);
    cases.push([`${label} verify`, () => {
      if (!verifyBytes(alg, pair.publicKey, data, signature)) throw new Error(`${label}: verify failed`);
    }]);
  }
  return cases;
}

async function main(): Promise<void> {
  const settings = parseCommonArgs(process.argv.slice(2), { quick: false, rounds: 3, warmupMs: 200, durationMs: 2000, portBase: 0, socketBuffer: 0 }, { rounds: 2, durationMs: 500 }, USAGE);
  console.log(`# Group request to 3 servers (loopback unicast fan-out, Leisure 0), ${settings.rounds} rounds × ${settings.durationMs} ms per mode and algorithm\n${environment()}\n`);
  const rows: string[][] = [['signature', 'mode', 'ms to all 3 (median of rounds)', 'exchanges/s', 'CPU µs/exchange', '÷ plain (time)']];
  for (const [label, alg] of [['EdDSA/Ed25519', CoseSignAlg.EdDSA], ['ECDSA/P-256', CoseSignAlg.ES256]] as const) {
    const setup = await setUp(alg);
    try {
      const perMode = new Map<Mode, { medianMs: number[]; rate: number[]; cpu: number[] }>(MODES.map((m) => [m, { medianMs: [], rate: [], cpu: [] }]));
      for (let round = 0; round < settings.rounds; round++) {
        for (let k = 0; k < MODES.length; k++) {
          const mode = MODES[(k + round) % MODES.length]!;
          const r = await measure(setup, mode, settings.durationMs);
          const slot = perMode.get(mode)!;
          slot.medianMs.push(r.medianMs);
          slot.rate.push(r.exchanges / (settings.durationMs / 1000));
          slot.cpu.push(r.cpuMicros);
        }
      }
      const plain = median(perMode.get('plain')!.medianMs);
      for (const mode of MODES) {
        const slot = perMode.get(mode)!;
        rows.push([mode === 'plain' ? '—' : label, mode, fmt(median(slot.medianMs), 3), fmt(median(slot.rate)), fmt(median(slot.cpu)), `${(median(slot.medianMs) / plain).toFixed(2)}×`]);
      }
    } finally {
      await setup.close();
    }
  }
  console.log(table(rows));
  const cases = signatureCases();
  const results = runMicroCases(cases, Math.max(300, settings.durationMs / 2), settings.rounds);
  console.log('\n' + table([['signature floor', 'ops/s (median)', 'CPU µs/op'], ...cases.map(([name], i) => [name, fmt(median(results[i]!.ops)), fmt(median(results[i]!.cpu), 1)])]));
}

runMain(main);
