/** Listening for a service reached only over OSCORE (the trust anchor, the authorization server). */
import type { PidLock } from '../credentials/pid-lock.js';
import type { OpenedContext } from '../credentials/runtime.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { CoapServer } from '../server/server.js';
import { UsageError } from './errors.js';

/**
 * A server on `bind` whose every request must be OSCORE under one of `opened`. When it cannot
 * listen, the contexts and the state lock are given back before the usage error, so nothing stays held.
 */
export async function listenOscoreOnly(bind: { host: string; port: number }, opened: readonly OpenedContext[], lock: PidLock | undefined): Promise<CoapServer> {
  try {
    return await CoapServer.listen({ host: bind.host, port: bind.port, security: new OscoreServerSecurity(opened.map((o) => o.context)) });
  } catch (error) {
    opened.forEach((o) => o.close());
    lock?.release();
    throw new UsageError(`cannot listen on ${bind.host}:${bind.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}
