/**
 * Issue 28: one run of the seeds' topology on loopback — client C → forward proxy P → origin S —
 * with DTLS (PSK) on each hop and nested OSCORE (C–S end to end, C–P to the proxy), each leg
 * captured by a UdpTap. Reports every DTLS session secret and OSCORE context through callbacks,
 * so a caller can write a key log and a Wireshark context file next to the pcap files.
 */
import { randomBytes } from 'node:crypto';
import { CoapClient } from '../client/client.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import { ResponseCode } from '../coap/codes.js';
import type { DtlsSessionSecret } from '../dtls/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../oscore/security-context.js';
import { ForwardProxy } from '../proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { CoapServer } from '../server/server.js';
import type { PeerAddress } from '../transport/transport.js';
import type { CapturedDatagram } from './pcap.js';
import { UdpTap } from './tap.js';

/** How the nodes appear in the captures. */
export const TRACE_NODES = {
  client: { address: '10.0.0.2', port: 40000 },
  proxy: { address: '10.0.0.3', port: 5684 },
  proxyUpstream: { address: '10.0.0.3', port: 40001 },
  server: { address: '10.0.0.1', port: 5684 },
} as const;

export interface TraceLeg {
  name: 'client-proxy' | 'proxy-server';
  from: PeerAddress;
  to: PeerAddress;
  datagrams: CapturedDatagram[];
}

export interface TraceRun {
  legs: TraceLeg[];
  /** The response payload the client accepted. */
  response: string;
  request: { method: 'GET'; path: string };
  /** The contexts of the run, by layer. */
  contexts: { endToEnd: { client: OscoreSecurityContext; server: OscoreSecurityContext }; toProxy: { client: OscoreSecurityContext; proxy: OscoreSecurityContext } };
}

export type TraceNode = 'client' | 'proxy' | 'server';

export interface TraceOptions {
  /** Every DTLS session secret, with the node that derived it (both ends report each session). */
  onSecret?: (secret: DtlsSessionSecret, node: TraceNode) => void;
  /** The request's path on the origin (default "hello"). */
  path?: string;
  timeoutMs?: number;
}

function contextPair(name: string, clientId: number, serverId: number): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = randomBytes(16);
  const masterSalt = randomBytes(8);
  const make = (sender: number, recipient: number, n: string) =>
    new OscoreSecurityContext({ masterSecret, masterSalt, senderId: Buffer.from([sender]), recipientIds: [Buffer.from([recipient])], name: n }, new VolatileSequence());
  return { client: make(clientId, serverId, `${name} (server)`), server: make(serverId, clientId, `${name} (client)`) };
}

export async function runTrace(options: TraceOptions = {}): Promise<TraceRun> {
  const path = options.path ?? 'hello';
  const report = options.onSecret;
  const secretsOf = (node: TraceNode) => (report ? { onSecret: (s: DtlsSessionSecret) => report(s, node) } : {});
  const endToEnd = contextPair('C-S', 0x5f, 0x01);
  const hop = contextPair('C-P', 0x20, 0x02);
  const toProxy = { client: hop.client, proxy: hop.server };
  const pskCP = { identity: 'client', key: randomBytes(16) };
  const pskPS = { identity: 'proxy', key: randomBytes(16) };

  const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk: pskPS, ...secretsOf('server') }, security: new OscoreServerSecurity([endToEnd.server]) });
  const opened: { close(): void | Promise<void> }[] = [origin];
  try {
    origin.resource(`/${path}`, { GET: () => ({ code: ResponseCode.Content, payload: `${path} from the origin` }) });
    const tapPS = await UdpTap.start(origin.address(), { client: TRACE_NODES.proxyUpstream, server: TRACE_NODES.server });
    opened.push(tapPS);
    const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk: pskCP, ...secretsOf('proxy') }, security: new OscoreServerSecurity([toProxy.proxy]) });
    opened.push(proxyServer);
    const upstream = new CoapClient({ dtls: { psk: pskPS, ...secretsOf('proxy') } });
    opened.push(upstream);
    new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] }); // the trace's origin is on loopback
    const tapCP = await UdpTap.start(proxyServer.address(), { client: TRACE_NODES.client, server: TRACE_NODES.proxy });
    opened.push(tapCP);

    const endToEndSecurity = new OscoreClientSecurity(endToEnd.client);
    const client = new CoapClient({
      dtls: { psk: pskCP, ...secretsOf('client') },
      security: () => endToEndSecurity,
      via: () => [{ uri: `coaps://127.0.0.1:${tapCP.address.port}`, context: toProxy.client }],
    });
    opened.push(client);
    const response = await client.request({ method: 1, uri: `coaps://127.0.0.1:${tapPS.address.port}/${path}`, timeout: options.timeoutMs ?? 20_000 });
    return {
      legs: [
        { name: 'client-proxy', from: TRACE_NODES.client, to: TRACE_NODES.proxy, datagrams: tapCP.captured },
        { name: 'proxy-server', from: TRACE_NODES.proxyUpstream, to: TRACE_NODES.server, datagrams: tapPS.captured },
      ],
      response: response.text(),
      request: { method: 'GET', path },
      contexts: { endToEnd, toProxy },
    };
  } finally {
    for (const o of opened.reverse()) await o.close();
  }
}
