/**
 * coapsec store put|list|delete --store LOCATION: provisions OSCORE contexts into a context store
 * (issue 26, docs/scale-out.md) that `coapsec serve --store` nodes serve. Provisioning a device is
 * one command: `coapsec store put --store redis://HOST:PORT --credentials server.json` writes the
 * recipients of a server credentials file (e.g. from `coapsec credentials new`), and every node
 * sees them at the device's next request.
 */
import { loadCredentials } from '../credentials/credentials-file.js';
import type { EdhocCredentials } from '../credentials/edhoc-entries.js';
import { CredentialsError } from '../credentials/errors.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { MeteredStore, type ServerMetrics } from '../metrics/index.js';
import { openContextStore } from '../store/open.js';
import { StoreContexts } from '../store/server-contexts.js';
import { StoreError, type ContextStore } from '../store/types.js';
import { parse } from './args.js';
import { serverOscore, type OscoreFlagValues, type ServerOscore } from './oscore-args.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { ExitCode, UsageError } from './errors.js';
import { bytesToHex as hex } from '../util/bytes.js';

export const STORE_USAGE = `usage: coapsec store put --store LOCATION --credentials FILE [--recipient KID] [--expires S]
       coapsec store list --store LOCATION
       coapsec store delete --store LOCATION --kid HEX [--id-context HEX]
  LOCATION is redis://HOST:PORT[/DB] (Redis with appendonly yes, appendfsync always) or a folder
  (the file store). put writes the "recipients" of a server credentials file (each is one device,
  found by its kid), or only the one whose kid is KID (hex); --expires forgets them after S
  seconds. list prints kid, ID Context and name of each stored context (never keys).`;


export async function storeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      store: { type: 'string' },
      credentials: { type: 'string' },
      recipient: { type: 'string' },
      expires: { type: 'string' },
      kid: { type: 'string' },
      'id-context': { type: 'string' },
    },
    { min: 1, max: 1, names: 'subcommand (put, list or delete)' },
  );
  const sub = positionals[0]!;
  if (!['put', 'list', 'delete'].includes(sub)) throw new UsageError(`unknown store subcommand "${sub}" (put, list or delete)`);
  if (values.store === undefined) throw new UsageError(`store ${sub} needs --store redis://HOST:PORT[/DB] or --store FOLDER`);
  const plan = sub === 'put' ? putPlan(values) : sub === 'delete' ? deletePlan(values) : list;
  let store: ContextStore;
  try {
    store = await openContextStore(values.store);
  } catch (error) {
    if (error instanceof StoreError) throw new UsageError(error.message);
    throw error;
  }
  try {
    return await plan(store);
  } finally {
    await store.close();
  }
}

function putPlan(values: { credentials?: string; recipient?: string; expires?: string }): (store: ContextStore) => Promise<number> {
  if (values.credentials === undefined) throw new UsageError('store put needs --credentials FILE (a server credentials file with "recipients")');
  let expiresInSeconds: number | undefined;
  if (values.expires !== undefined) {
    expiresInSeconds = Number(values.expires);
    if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1) throw new UsageError(`--expires needs a whole number of seconds, got "${values.expires}"`);
  }
  let recipients;
  try {
    recipients = loadCredentials(values.credentials).recipients;
  } catch (error) {
    if (error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  const chosen = values.recipient === undefined ? recipients : recipients.filter((r) => hex(r.recipientId) === values.recipient!.toLowerCase());
  if (chosen.length === 0) {
    throw new UsageError(values.recipient === undefined ? `${values.credentials}: no "recipients" to store` : `${values.credentials}: no recipient with kid ${values.recipient}`);
  }
  return async (store) => {
    for (const recipient of chosen) {
      // One context per device: its kid alone, even where the file lets recipients share a sender.
      await store.putContext({ name: recipient.name, context: { ...recipient.context, recipientIds: [recipient.recipientId] } }, expiresInSeconds !== undefined ? { expiresInSeconds } : {});
      process.stdout.write(`stored ${recipient.name} (kid ${hex(recipient.recipientId) || '(empty)'}) in ${store.description}\n`);
    }
    return ExitCode.Ok;
  };
}

function deletePlan(values: { kid?: string; 'id-context'?: string }): (store: ContextStore) => Promise<number> {
  const kid = hexFlag(values.kid, '--kid');
  if (kid === undefined) throw new UsageError('store delete needs --kid HEX');
  const idContext = hexFlag(values['id-context'], '--id-context');
  return async (store) => {
    const removed = await store.deleteContext(kid, idContext);
    process.stdout.write(removed ? `deleted kid ${values.kid}\n` : `no context with kid ${values.kid}\n`);
    return removed ? ExitCode.Ok : ExitCode.Failure;
  };
}

async function list(store: ContextStore): Promise<number> {
  for await (const { name, context } of store.contexts()) {
    const idContext = context.idContext === undefined ? '-' : hex(context.idContext) || '(empty)';
    process.stdout.write(`kid ${hex(context.recipientIds[0]!) || '(empty)'}  id-context ${idContext}  ${name}\n`);
  }
  return ExitCode.Ok;
}

function hexFlag(text: string | undefined, flag: string): Uint8Array | undefined {
  if (text === undefined) return undefined;
  if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new UsageError(`${flag} needs hex digits in pairs, got "${text}"`);
  return Buffer.from(text, 'hex');
}

/**
 * `serve --store LOCATION`: an OSCORE server security whose contexts come from the store (looked
 * up on a device's first request, with Echo before its replay window is trusted) and whose Sender
 * Sequence Numbers come from the store's reservations. Store failures are answered 5.03; the
 * details go to `log`, at most one line a second.
 */
export async function storeServerSecurity(location: string, log: (line: string) => void, metrics?: ServerMetrics): Promise<{ security: OscoreServerSecurity; store: ContextStore; onError: (error: Error) => void; close(): Promise<void> }> {
  let store: ContextStore;
  try {
    store = await openContextStore(location);
    if (metrics !== undefined) store = new MeteredStore(store, metrics);
  } catch (error) {
    if (error instanceof StoreError) throw new UsageError(`--store: ${error.message}`);
    throw error;
  }
  let lastLine = -Infinity;
  let unsaid = 0;
  const onError = (error: Error): void => {
    const now = performance.now();
    if (now - lastLine < 1000) {
      unsaid++;
      return;
    }
    log(`coapsec: ${error.message}${unsaid > 0 ? ` (${unsaid} more failures since the last line)` : ''}`);
    unsaid = 0;
    lastLine = now;
  };
  const security = new OscoreServerSecurity([], { contextSource: new StoreContexts(store, { onError }) });
  return { security, store, onError, close: () => store.close() };
}

/** The `--store` flag of serve and proxy. */
export const STORE_FLAGS = { store: { type: 'string' } } as const;
export const STORE_FLAG_USAGE = `  --store LOCATION   OSCORE contexts and sequence number reservations from a context store shared
                     by several servers: redis://HOST:PORT[/DB] or a folder (coapsec store put
                     provisions devices; instead of --oscore-conf, and of --credentials but for
                     its "edhoc" section, whose contexts then go to the store; docs/scale-out.md)`;

/**
 * The server's OSCORE protection: from `--store` when given, else from --credentials/--oscore-conf
 * (serverOscore). With `--store`, --credentials may carry an `edhoc` section only: the EDHOC
 * responder then shares the contexts it makes through the store (`edhocStore`), so that another
 * node serves their clients after a failover (docs/scale-out.md).
 */
export async function serverOscoreOrStore(
  values: OscoreFlagValues & { store?: string | undefined },
  onKudosEvent?: (peer: string, event: KudosEvent) => void,
  metrics?: ServerMetrics,
): Promise<ServerOscore & { edhocStore?: { store: ContextStore; onError: (error: Error) => void } }> {
  if (values.store === undefined) return serverOscore(values, onKudosEvent);
  if (values['active-contexts'] !== undefined) throw new UsageError('--active-contexts goes with --credentials (its "recipients"), not --store');
  if (values['oscore-conf'] !== undefined) throw new UsageError('use either --store or --oscore-conf, not both');
  const edhoc = values.credentials !== undefined ? edhocSectionOnly(values.credentials) : undefined;
  const stored = await storeServerSecurity(values.store, (line) => void process.stderr.write(`${line}\n`), metrics);
  return {
    security: stored.security,
    protection: stored.security,
    kudos: undefined,
    ...(edhoc ? { edhoc, edhocStore: { store: stored.store, onError: stored.onError } } : {}),
    close: () => void stored.close(),
  };
}

/** The `edhoc` section of a credentials file given with --store: its OSCORE contexts belong in the store. */
function edhocSectionOnly(file: string): EdhocCredentials {
  let credentials;
  try {
    credentials = loadCredentials(file);
  } catch (error) {
    if (error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  if (credentials.edhoc === undefined || credentials.recipients.length > 0 || credentials.oscore.length > 0) {
    throw new UsageError(`${file}: with --store, --credentials may carry an "edhoc" section only (provision OSCORE contexts with coapsec store put)`);
  }
  return credentials.edhoc;
}
