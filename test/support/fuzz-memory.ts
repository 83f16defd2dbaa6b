/** Memory before and after a fuzz run, measured after a full collection (gc exposed at run time). */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Fuzzer, FuzzReport } from './fuzz.js';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

export interface MemoryGrowth {
  heapBefore: number;
  heapAfter: number;
  heapGrowth: number;
  rssBefore: number;
  rssAfter: number;
  rssGrowth: number;
}

/** Warms up with 2,000 datagrams (code compiled, pools allocated), then measures `count` more. */
export async function measureMemory(fuzzer: Fuzzer, count: number): Promise<{ report: FuzzReport; memory: MemoryGrowth }> {
  await fuzzer.run(2_000);
  collect();
  const before = process.memoryUsage();
  const report = await fuzzer.run(count - 2_000);
  collect();
  const after = process.memoryUsage();
  return {
    report,
    memory: {
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      heapGrowth: after.heapUsed - before.heapUsed,
      rssBefore: before.rss,
      rssAfter: after.rss,
      rssGrowth: after.rss - before.rss,
    },
  };
}
