/**
 * The seed's example for `npm start` (draft-ietf-core-oscore-capable-proxies, Appendix B.1):
 * a client reads the alarm status and actuates the valve through an OSCORE-capable forward proxy,
 * with OSCORE client↔server (end to end) and client↔proxy (hop by hop). Each leg is tapped, and
 * for each exchange the demo prints what an observer of the leg sees and what each node decrypted.
 */
import { randomBytes } from 'node:crypto';
import { decodeMessage } from '../coap/codec.js';
import { codeToString } from '../coap/codes.js';
import { MESSAGE_TYPE_NAMES, type CoapMessage } from '../coap/message.js';
import { optionName } from '../coap/options.js';
import { CoapClient } from '../client/client.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import type { EndpointContext } from '../exchange/context.js';
import { CoapEndpoint } from '../exchange/endpoint.js';
import { OscoreSecurityContext, VolatileSequence } from '../oscore/security-context.js';
import { ForwardProxy } from '../proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { CoapServer } from '../server/server.js';
import type { KeyExport } from './keylog-args.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../transport/transport.js';
import { UdpTransport } from '../transport/udp.js';

interface Capture {
  leg: string;
  message: CoapMessage;
}

/** Records every datagram a node sends and receives, as an observer on its link would. */
class TappedTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  constructor(
    private readonly inner: UdpTransport,
    private readonly record: (direction: 'in' | 'out', peer: PeerAddress, data: Uint8Array) => void,
  ) {}
  send(data: Uint8Array, peer: PeerAddress): void {
    this.record('out', peer, data);
    this.inner.send(data, peer);
  }
  setHandler(handler: DatagramHandler): void {
    this.inner.setHandler((data, peer, security) => {
      this.record('in', peer, data);
      handler(data, peer, security);
    });
  }
  localAddress(): PeerAddress {
    return this.inner.localAddress();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function contextPair(name: string, senderId: number, receiverId: number) {
  const masterSecret = randomBytes(16); // fresh per run: no (key, nonce) pair of one run meets another's
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: Uint8Array.of(senderId), recipientIds: [Uint8Array.of(receiverId)], name }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: Uint8Array.of(receiverId), recipientIds: [Uint8Array.of(senderId)], name }, new VolatileSequence()),
  };
}

function describeOuter(m: CoapMessage): string {
  const options = [...new Set(m.options.map((o) => optionName(o.number)))].join(', ') || 'none';
  const payload = m.payload.length > 0 ? `, ${m.payload.length}-byte encrypted payload` : '';
  return `${MESSAGE_TYPE_NAMES[m.type]} ${codeToString(m.code)}, options [${options}]${payload}`;
}

const layerNames = (context: EndpointContext): string[] => (context.oscore ?? []).map((l) => l.peer);

export async function oscoreProxyDemo(out: (line: string) => void, paint: (code: string, text: string) => string, keys: KeyExport): Promise<void> {
  const cs = contextPair('client↔server', 0x5f, 0x01);
  const cp = contextPair('client↔proxy', 0x20, 0x02);
  // Both layers, so Wireshark can open the outer (client↔proxy) and then the inner (client↔server) one.
  keys.context(cs.client, 'client');
  keys.context(cp.client, 'client');
  const captures: Capture[] = [];
  const decrypted: string[] = [];
  let originPort = 0;
  let proxyPort = 0;
  const leg = (node: 'P' | 'S') => (direction: 'in' | 'out', peer: PeerAddress, data: Uint8Array) => {
    let message: CoapMessage;
    try {
      message = decodeMessage(data);
    } catch {
      return;
    }
    if (message.code === 0) return; // empty ACKs say nothing here
    const other = node === 'S' ? 'P' : peer.port === originPort ? 'S' : 'C';
    if (node === 'P' && other === 'S') return; // the P–S leg is recorded at S
    captures.push({ leg: direction === 'in' ? `${other} → ${node}` : `${node} → ${other}`, message });
  };

  const originTransport = await UdpTransport.bind({ host: '127.0.0.1', port: 0 });
  originPort = originTransport.localAddress().port;
  const origin = new CoapServer(new CoapEndpoint({ transport: new TappedTransport(originTransport, leg('S')) }), { security: new OscoreServerSecurity([cs.server]) });
  let alarm = 'off';
  let valve = 0;
  origin.resource('/alarm', { GET: (r) => (decrypted.push(`server removed the ${layerNames(r.context).join(' + ')} layer → sees GET /alarm`), { code: 69, contentFormat: 0, payload: `alarm ${alarm}` }) }, { requireOscore: true });
  origin.resource('/valve', {
    PUT: (r) => {
      decrypted.push(`server removed the ${layerNames(r.context).join(' + ')} layer → sees PUT /valve "${r.text()}"`);
      valve = Number(r.text());
      return { code: 68, contentFormat: 0, payload: `valve at ${valve}` };
    },
  }, { requireOscore: true });

  const proxyTransport = await UdpTransport.bind({ host: '127.0.0.1', port: 0 });
  proxyPort = proxyTransport.localAddress().port;
  const proxyServer = new CoapServer(new CoapEndpoint({ transport: new TappedTransport(proxyTransport, leg('P')) }), { security: new OscoreServerSecurity([cp.server]) });
  const upstream = new CoapClient();
  const proxy = new ForwardProxy(proxyServer, {
    upstream,
    allowDestinations: ['127.0.0.1'], // the demo's origin is on loopback (issue 17: refused unless allowed)
    authorize: (context, message) => {
      const visible = message.options.filter((o) => o.number !== 9).map((o) => optionName(o.number));
      decrypted.push(`proxy removed the ${layerNames(context).join(' + ')} layer → sees only [${[...new Set(visible)].join(', ')}] and an OSCORE message it cannot open`);
      return layerNames(context).includes('client↔proxy'); // only the client it shares a context with
    },
  });
  const client = new CoapClient({
    via: () => [{ uri: `coap://127.0.0.1:${proxyPort}`, context: cp.client }],
    security: () => new OscoreClientSecurity(cs.client),
  });
  const base = `coap://127.0.0.1:${originPort}`;

  out(paint('1', 'OSCORE-capable proxy (draft-ietf-core-oscore-capable-proxies, Appendix B.1): OSCORE client↔server end to end, and client↔proxy'));
  out(paint('2', `  client → proxy 127.0.0.1:${proxyPort} → server 127.0.0.1:${originPort}; fresh random keys for this run`));
  out('');
  try {
    for (const [what, run] of [
      ['read the alarm status', () => client.get(`${base}/alarm`, { timeout: 5000 })],
      ['actuate the valve', () => client.put(`${base}/valve`, '7', { timeout: 5000, contentFormat: 0 })],
    ] as const) {
      captures.length = 0;
      decrypted.length = 0;
      out(paint('2', `# ${what}`));
      const response = await run();
      for (const c of captures) out(`  ${paint('36', c.leg.padEnd(6))} an observer sees: ${describeOuter(c.message)}`);
      for (const d of decrypted) out(`  ${paint('33', '◆')} ${d}`);
      out(`  ${paint('32', '←')} client removed ${layerNames(response.context).join(', then ')} → ${codeToString(response.code)} "${response.text()}"`);
      out('');
    }
  } finally {
    await client.close();
    await proxy.close();
    await upstream.close();
    await proxyServer.close();
    await origin.close();
  }
}
