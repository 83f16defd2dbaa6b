/** coapsec trace [--pcap DIR] — the per-hop report of issue 28 (src/trace). */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WiresharkOscoreExport } from '../oscore/wireshark-export.js';
import { hopReport, renderHopReport, type NodeSecrets } from '../trace/hop-report.js';
import { KeyLogFile, keyLogLine } from '../trace/keylog.js';
import { encodePcap } from '../trace/pcap.js';
import { runTrace } from '../trace/run.js';
import { parse } from './args.js';
import { UsageError } from './errors.js';

export const TRACE_USAGE = `usage: coapsec trace [--pcap DIR]
  runs client → forward proxy → server on loopback (DTLS PSK on each hop, nested OSCORE: C–S end
  to end and C–P to the proxy), captures each leg and prints what an observer of each leg sees and
  which node can decrypt which layer, computed from the captures
  --pcap DIR              also write DIR/client-proxy.pcap, DIR/proxy-server.pcap, the DTLS key
                          log DIR/keylog.txt and DIR/oscore_contexts (secrets: debugging only); open
                          with: wireshark -o tls.keylog_file:DIR/keylog.txt -d udp.port==5684,dtls
                          after copying oscore_contexts to ~/.config/wireshark/`;

export async function traceCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { pcap: { type: 'string' } }, { min: 0, max: 0, names: '' });
  const dir = values.pcap;
  if (dir !== undefined) {
    try {
      // Not { recursive: true }: Node's recursive mkdir can spin forever under /proc.
      if (!existsSync(dir)) mkdirSync(dir);
      if (!statSync(dir).isDirectory()) throw new UsageError(`--pcap: "${dir}" is not a directory`);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`--pcap: cannot create "${dir}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const secrets: NodeSecrets[] = [];
  const run = await runTrace({ onSecret: (secret, node) => secrets.push({ secret, node }) });
  process.stdout.write(`request GET /${run.request.path} → "${run.response}"\n\n${renderHopReport(hopReport(run, secrets))}\n`);
  if (dir !== undefined) {
    process.stderr.write(`WARNING: --pcap ${dir}: writing this run's DTLS secrets and OSCORE master secrets next to the captures. Debugging only.\n`);
    for (const leg of run.legs) writeFileSync(join(dir, `${leg.name}.pcap`), encodePcap(leg.datagrams));
    const keylog = new KeyLogFile(join(dir, 'keylog.txt'));
    // Both ends report each session; one line per session is enough.
    for (const line of new Set(secrets.map((s) => keyLogLine(s.secret)))) writeFileSync(keylog.path, line + '\n', { flag: 'a' });
    const contexts = new WiresharkOscoreExport(join(dir, 'oscore_contexts'));
    contexts.add(run.contexts.endToEnd.client, 'client');
    contexts.add(run.contexts.toProxy.client, 'client');
    process.stderr.write(`wrote ${run.legs.map((l) => `${l.name}.pcap`).join(', ')}, keylog.txt and oscore_contexts to ${dir}\n`);
  }
  return 0;
}
