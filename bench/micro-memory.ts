/**
 * Memory per idle OSCORE context and per deduplication record (issue 21: "memory per idle OSCORE
 * context and per dedup record is recorded and does not grow"): the heap (V8 heap plus the
 * ArrayBuffers outside it) that N of each hold after gc, divided by N. Each measurement runs in a
 * child process of its own (`--expose-gc`), so one's garbage cannot weigh on the next.
 *
 * - **Idle OSCORE context**: a server's context per device as `coapsec serve` holds one (its own
 *   Master Secret, a 4-byte Recipient ID, a name), all in one ContextDirectory, none used yet
 *   (keys, replay window and sequence file come with a first request).
 * - **Deduplication record** (RFC 7252 §4.5): AnsweredRecords, the message layer's ring, full
 *   (capacity N), each record an answered CON from one of 1,000 peers with a 4-byte token and the
 *   piggybacked 2.05 it got (24 bytes), i.e. also its entry in its peer's Message ID map.
 *
 * `--variant LABEL=DIR` measures another compiled tree's classes the same way, interleaved round by
 * round (the classes' constructors are the same since issue 21 began).
 *
 *   node dist/bench/micro-memory.js [--count 100000] [--rounds 3] [--variant base=DIR]
 */
import { fork } from 'node:child_process';
import { join, resolve as resolvePath } from 'node:path';
import { median } from './common.js';
import { environment, fmt, here, runMain, table } from './harness.js';

const KINDS = ['idle OSCORE context', 'deduplication record'] as const;
type Kind = (typeof KINDS)[number];

const USAGE = 'usage: node dist/bench/micro-memory.js [--count N (default 100000)] [--rounds N (default 3)] [--variant LABEL=DIR ...]';

interface Tree {
  label: string;
  /** The tree's root: its compiled library is DIR/dist/src. */
  root: string;
}

interface Result {
  tree: string;
  kind: Kind;
  round: number;
  bytesPerItem: number;
  heapBytesPerItem: number;
}

/** Heap in use after gc, and everything else the process keeps for ArrayBuffers. */
function heldBytes(gc: () => void): { heap: number; total: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, total: m.heapUsed + m.external };
}

async function child(root: string, kind: Kind, count: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const library = (path: string): string => join(root, 'dist', 'src', path);
  let keep: unknown;
  let before: { heap: number; total: number };
  if (kind === 'idle OSCORE context') {
    const { ContextDirectory, OscoreSecurityContext, VolatileSequence } = (await import(library('oscore/security-context.js'))) as typeof import('../src/oscore/security-context.js');
    const senderId = new Uint8Array(0);
    before = heldBytes(gc);
    const contexts = [];
    for (let i = 0; i < count; i++) {
      const kid = Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);
      const masterSecret = new Uint8Array(16);
      masterSecret.set(kid, 12);
      masterSecret[0] = 0x5a;
      contexts.push(new OscoreSecurityContext({ masterSecret, senderId, recipientIds: [kid], name: `device-${i}`, replayWindow: 1024 }, new VolatileSequence()));
    }
    keep = new ContextDirectory(contexts);
  } else {
    const { AnsweredRecords } = (await import(library('messaging/answered-records.js'))) as typeof import('../src/messaging/answered-records.js');
    const owners = Array.from({ length: 1000 }, () => ({ answered: new Map<number, number>() }));
    const token = Uint8Array.of(1, 2, 3, 4);
    // A piggybacked 2.05 with a 4-byte token and the 18-byte payload "Hello from coapsec" behind the payload marker.
    const reply = new Uint8Array(4 + 4 + 1 + 18);
    reply[0] = 0x64;
    reply[1] = 0x45;
    const records = new AnsweredRecords(count);
    before = heldBytes(gc);
    for (let i = 0; i < count; i++) records.add(owners[i % owners.length]!, Math.floor(i / owners.length) & 0xffff, 1, 0, token, reply, 1e12);
    if (records.size !== count) throw new Error(`the ring holds ${records.size} records, not ${count}`);
    keep = [records, owners];
  }
  const after = heldBytes(gc);
  process.send!({ type: 'result', bytesPerItem: (after.total - before.total) / count, heapBytesPerItem: (after.heap - before.heap) / count, kept: keep !== undefined });
}

function measure(tree: Tree, kind: Kind, count: number): Promise<{ bytesPerItem: number; heapBytesPerItem: number }> {
  return new Promise((resolve, reject) => {
    const worker = fork(here('micro-memory.js'), ['child', tree.root, kind, String(count)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: { bytesPerItem: number; heapBytesPerItem: number } | undefined;
    // Before issue 21 each context derived its keys at once: 100,000 of them took minutes on a loaded machine.
    const timer = setTimeout(() => worker.kill('SIGKILL'), 600_000);
    worker.on('message', (m: { type: string; bytesPerItem: number; heapBytesPerItem: number }) => {
      if (m.type === 'result') result = m;
    });
    worker.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(new Error(`micro-memory child (${tree.label}, ${kind}) ended with ${signal ?? code} and no result`));
    });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'child') return child(argv[1]!, argv[2] as Kind, Number(argv[3]));
  let count = 100_000;
  let rounds = 3;
  const trees: Tree[] = [{ label: 'this', root: here('../..') }];
  for (let i = 0; i < argv.length; i++) {
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[i - 1]} needs a value\n${USAGE}`);
      return v;
    };
    const arg = argv[i];
    if (arg === '--count') count = Number(value());
    else if (arg === '--rounds') rounds = Number(value());
    else if (arg === '--quick') rounds = 1;
    else if (arg === '--variant') {
      const v = value();
      const eq = v.indexOf('=');
      if (eq <= 0) throw new Error(`--variant wants LABEL=DIR, got ${v}`);
      trees.push({ label: v.slice(0, eq), root: resolvePath(v.slice(eq + 1)) });
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  if (!(Number.isInteger(count) && count >= 1000 && count <= 10_000_000) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 50)) throw new Error(USAGE);

  const describe = [environment(), `${count} of each, heap (V8 heap + external ArrayBuffers) after gc ÷ ${count}; ${rounds} rounds × trees {${trees.map((t) => `${t.label}: ${t.root}`).join(', ')}}, each in its own child process`];
  for (const line of describe) console.error(line);
  const results: Result[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = trees.map((_, i) => trees[(i + round) % trees.length]!);
    for (const tree of order) {
      for (const kind of KINDS) {
        const r = await measure(tree, kind, count);
        results.push({ tree: tree.label, kind, round, ...r });
        console.error(`round ${round + 1}/${rounds}  ${tree.label.padEnd(6)} ${kind.padEnd(22)} ${fmt(r.bytesPerItem)} bytes (V8 heap ${fmt(r.heapBytesPerItem)})`);
      }
    }
  }
  const rows = [['kind', 'tree', 'bytes per item (median)', 'of which V8 heap', 'per round', 'tree/this']];
  for (const kind of KINDS) {
    const ours = median(results.filter((r) => r.kind === kind && r.tree === 'this').map((r) => r.bytesPerItem));
    for (const tree of trees) {
      const rs = results.filter((r) => r.kind === kind && r.tree === tree.label);
      const bytes = median(rs.map((r) => r.bytesPerItem));
      rows.push([kind, tree.label, fmt(bytes), fmt(median(rs.map((r) => r.heapBytesPerItem))), rs.map((r) => fmt(r.bytesPerItem)).join(' / '), tree.label === 'this' ? '-' : `${fmt(bytes / ours, 2)}×`]);
    }
  }
  console.log('');
  for (const line of describe) console.log(line);
  console.log('');
  console.log(table(rows));
}

runMain(main);
