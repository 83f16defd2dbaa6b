/** Devices for a farm: N OSCORE client contexts with random secrets and Sender IDs, all provisioned into the farm's store with one `coapsec store put`. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadCredentials } from '../src/credentials/credentials-file.js';
import type { SecurityContextInput } from '../src/oscore/security-context.js';
import { ROOT, coapsec } from './support/cli-harness.js';

export interface FarmNode {
  port: number;
  /** With `metrics`: the node's HTTP port for /metrics and /health. */
  metricsPort: number | undefined;
  readonly pid: number | undefined;
  kill(signal: string): Promise<unknown>;
  restart(): Promise<void>;
}
export interface Farm {
  port: number;
  redisUrl: string;
  nodes: FarmNode[];
  balancer: { errorLog(): string; readonly pid: number | undefined };
  stop(): Promise<void>;
}

/** scripts/farm.mjs, loaded from the repository root (it is plain JavaScript, outside dist/). */
export interface FarmOptions {
  nodes: number;
  /** nginx's hash key; scripts/farm.mjs defaults to deploy/nginx-coap.conf's $remote_addr. */
  hashKey?: string;
  metrics?: boolean;
}

export async function startFarm(options: FarmOptions): Promise<Farm> {
  const farm = (await import(pathToFileURL(join(ROOT, 'scripts', 'farm.mjs')).href)) as { startFarm(options: FarmOptions): Promise<Farm> };
  return farm.startFarm(options);
}

export async function provisionDevices(directory: string, redisUrl: string, count: number): Promise<SecurityContextInput[]> {
  const recipients: Record<string, { name: string; context: Record<string, string> }> = {};
  const contexts = Array.from({ length: count }, (_, i) => {
    const context = { masterSecret: randomBytes(16).toString('hex'), masterSalt: randomBytes(8).toString('hex'), senderId: randomBytes(4).toString('hex') };
    recipients[context.senderId] = { name: `sensor-${i}`, context: { masterSecret: context.masterSecret, masterSalt: context.masterSalt, senderId: '' } };
    const file = join(directory, `client-${i}.json`);
    writeFileSync(file, JSON.stringify({ oscore: [{ match: 'coap://127.0.0.1/*', context: { ...context, recipientId: '', name: 'server' } }] }));
    return loadCredentials(file).oscore[0]!.context;
  });
  const serverFile = join(directory, 'server.json');
  writeFileSync(serverFile, JSON.stringify({ recipients }));
  const put = await coapsec(['store', 'put', '--store', redisUrl, '--credentials', serverFile], { timeout: 30_000 });
  assert.equal(put.code, 0, put.stderr);
  return contexts;
}
