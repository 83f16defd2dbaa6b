/**
 * The control channel between a benchmark's orchestrator and its long-lived proxy/origin children
 * (bench/proxy.ts, bench/oscore-proxy.ts): counters on request, the V8 sampling profiler around one
 * measurement, clean shutdown; and on the orchestrator's side, the question/answer helper, the
 * kernel share of a child's CPU time and the summary of a recorded .cpuprofile.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { here, table } from './harness.js';

/**
 * Serves the child's side: `stats` answers {type:'stats'}, profile-start/profile-stop drive the
 * profiler, disconnect or a signal runs `stop` (bounded to 1 s), and the parent is told 'ready'.
 */
export function serveChildControl(port: number, stats: () => object, stop: () => Promise<void>): void {
  // The V8 sampling profiler, started and stopped by the parent around one measurement.
  let session: import('node:inspector/promises').Session | undefined;
  process.on('message', (m: { type?: string; file?: string }) => {
    void (async () => {
      if (m.type === 'stats') process.send!(stats());
      else if (m.type === 'profile-start') {
        const { Session } = await import('node:inspector/promises');
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 200 });
        await session.post('Profiler.start');
        process.send!({ type: 'profiling' });
      } else if (m.type === 'profile-stop' && session && m.file) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(m.file, JSON.stringify(profile));
        session.disconnect();
        session = undefined;
        process.send!({ type: 'profiled', file: m.file });
      }
    })();
  });
  const shutdown = (): void => {
    setTimeout(() => process.exit(0), 1000).unref();
    stop().then(() => process.exit(0), () => process.exit(0));
  };
  process.on('disconnect', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.send?.({ type: 'ready', port });
}

/** Sends `message` to a child and resolves with its first reply of type `reply`. */
export function ask<T>(child: ChildProcess, message: object, reply: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: { type?: string }): void => {
      if (m?.type !== reply) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m as T);
    };
    const timer = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`no ${reply} from child ${child.pid} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', on);
    child.send(message);
  });
}

/** The system (kernel) part of a process's CPU time in µs, from /proc (Linux); NaN elsewhere. */
export function processSystemMicros(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) / 100) * 1e6; // stime, USER_HZ = 100
  } catch {
    return NaN;
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/**
 * Top self and inclusive costs of a .cpuprofile. The native dgram `send` and the garbage collector
 * are reported apart, as shares of all non-idle samples; the tables are shares of the rest (the
 * JavaScript). V8 samples by wall clock: a process preempted inside sendmsg (loopback delivery
 * wakes the peer, and three processes share two cores) keeps being sampled in `send`, so its share
 * here is far above the kernel share /proc reports (the "proxy sys %" column of bench/proxy.ts).
 */
export function profileSummary(profile: { nodes: ProfileNode[] }, top = 15): string {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const ch of n.children ?? []) parent.set(ch, n.id);
  }
  const root = repositoryRoot();
  const name = (n: ProfileNode): string => {
    const f = n.callFrame;
    const file = f.url ? f.url.replace(/^file:\/\//, '').replace(root, '').replace(/^.*node_modules\//, 'node_modules/') : '';
    return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let busy = 0;
  let nativeSend = 0;
  let gc = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    const fn = n.callFrame.functionName;
    if (hits === 0 || fn === '(idle)') continue;
    busy += hits;
    if (fn === '(program)') continue;
    if (!n.callFrame.url && fn === 'send') {
      nativeSend += hits;
      continue;
    }
    if (fn === '(garbage collector)') {
      gc += hits;
      continue;
    }
    total += hits;
    const key = name(n);
    self.set(key, (self.get(key) ?? 0) + hits);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const k = name(byId.get(id)!);
      if (seen.has(k) || k === '(root)') continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + hits);
    }
  }
  const rows = (m: Map<string, number>, title: string): string => {
    const sorted = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    return table([[title, '% of JS samples'], ...sorted.map(([k, v]) => [k, ((100 * v) / total).toFixed(1)])]);
  };
  const share = (n: number): string => `${((100 * n) / busy).toFixed(1)} %`;
  return (
    `${busy} non-idle samples: native dgram send ${share(nativeSend)}, garbage collector ${share(gc)}, (program) ${share(busy - total - nativeSend - gc)}, ` +
    `JavaScript ${share(total)} (${total} samples; the tables below are shares of these)\n\n${rows(self, 'self time (JS)')}\n\n${rows(inclusive, 'inclusive time (JS)')}`
  );
}

function repositoryRoot(): string {
  return path.resolve(here('.'), '..', '..') + '/';
}
