/** coapsec serve [--bind HOST:PORT] [--dir DIR] */
import { existsSync, statSync } from 'node:fs';
import { addDemoResources } from '../demo/resources.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind } from './args.js';
import { UsageError } from './errors.js';

export const SERVE_USAGE = `usage: coapsec serve [--bind HOST:PORT] [--dir DIR]
  --bind HOST:PORT   address to listen on (default 127.0.0.1:5683; [::]:5683 for all IPv6)
  --dir DIR          also serve the files below DIR, read-only`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bind: { type: 'string' }, dir: { type: 'string' } }, { min: 0, max: 0, names: '' });
  const bind = parseBind(values.bind ?? '127.0.0.1:5683', { host: '127.0.0.1', port: 5683 });
  if (values.dir !== undefined && (!existsSync(values.dir) || !statSync(values.dir).isDirectory())) {
    throw new UsageError(`--dir: "${values.dir}" is not a directory`);
  }
  let server: CoapServer;
  try {
    server = await CoapServer.listen({ host: bind.host, port: bind.port });
  } catch (error) {
    throw new UsageError(`cannot listen on ${bind.host}:${bind.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  addDemoResources(server, values.dir !== undefined ? { dir: values.dir } : {});
  process.stderr.write(`coapsec serving on coap://${peerKey(server.address())}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
