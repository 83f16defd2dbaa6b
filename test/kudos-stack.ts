/** A KUDOS client and server on real loopback sockets (the kudos-gate/-proxy tests). */
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { KudosClientPeer, type KudosClientOptions } from '../src/kudos/client.js';
import { KudosFileStorage, KudosSession, type KudosEvent } from '../src/kudos/index.js';
import { KudosServerSecurity, type KudosServerOptions } from '../src/kudos/server.js';
import { kudosResource } from '../src/kudos/well-known.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { CoapServer } from '../src/server/server.js';
import { UdpRelay } from './kudos-relay.js';
import { CLIENT_IDENTITY, MASTER_SALT, MASTER_SECRET, NonceLedger, SERVER_IDENTITY, tempDirectory } from './kudos-helpers.js';

export interface StackOptions {
  client?: Partial<Omit<KudosClientOptions, 'send'>>;
  server?: KudosServerOptions;
  serverPolicy?: { maxMessages?: number };
  clientPolicy?: { maxMessages?: number };
  /** The client's NSTART (requests in flight to the server at once). Default 1. */
  nstart?: number;
  /** Send every request through this forward proxy. */
  proxy?: string;
  /** Where the server's provisioned context resumes its Sender Sequence Numbers (a context used before). */
  serverFirstSequence?: number;
  /** The server session's integrity limit (failed decryptions under its Recipient Key). */
  serverIntegrityLimit?: number;
}

export interface Stack {
  client: CoapClient;
  server: CoapServer;
  serverSecurity: KudosServerSecurity;
  peer: KudosClientPeer;
  clientSession: KudosSession;
  serverSession: KudosSession;
  base: string;
  ledger: NonceLedger;
  clientEvents: KudosEvent[];
  serverEvents: KudosEvent[];
  /** What the server's handlers saw, in order ("slow start", "slow end", "echo <payload>"). */
  log: string[];
  /** Every datagram between client and server (the client talks to the server through it). */
  relay: UdpRelay;
  /**
   * A server restart: the server process's memory is gone (its session, replay windows, Echo key);
   * it comes back from its KUDOS record on a new port, and the relay forwards there.
   */
  restartServer(): Promise<void>;
  close(): Promise<void>;
}

export async function kudosStack(options: StackOptions = {}): Promise<Stack> {
  const directory = tempDirectory('stack');
  const ledger = new NonceLedger();
  const clientEvents: KudosEvent[] = [];
  const serverEvents: KudosEvent[] = [];
  const log: string[] = [];
  const initial = { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT };
  const clientSession = KudosSession.open({ identity: CLIENT_IDENTITY, storage: new KudosFileStorage(`${directory.path}/client`, CLIENT_IDENTITY), onEncrypt: ledger.record }, initial);
  const startServer = async () => {
    const serverSession = KudosSession.open({ identity: SERVER_IDENTITY, storage: new KudosFileStorage(`${directory.path}/server`, SERVER_IDENTITY), onEncrypt: ledger.record, retainOldMs: 5000, ...(options.serverIntegrityLimit !== undefined ? { integrityLimit: options.serverIntegrityLimit } : {}) }, { ...initial, ...(options.serverFirstSequence !== undefined ? { firstSequenceNumber: options.serverFirstSequence } : {}) });
    const serverSecurity = new KudosServerSecurity(
      [{ name: 'client', session: serverSession, recipientId: CLIENT_IDENTITY.senderId, ...(options.serverPolicy ? { policy: options.serverPolicy } : {}) }],
      { onEvent: (_peer, e) => serverEvents.push(e), ...options.server },
    );
    const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: serverSecurity });
    server.add(kudosResource());
    server.resource('/echo', { POST: (r) => (log.push(`echo ${r.payload.toString()}`), { code: ResponseCode.Changed, payload: r.payload }) }, { requireOscore: true });
    server.resource(
      '/slow',
      {
        GET: async () => {
          log.push('slow start');
          await new Promise((resolve) => setTimeout(resolve, 300));
          log.push('slow end');
          return { code: ResponseCode.Content, payload: 'slow' };
        },
      },
      { requireOscore: true },
    );
    return { server, serverSecurity, serverSession };
  };
  const first = await startServer();
  const relay = await UdpRelay.start(first.server.address());
  const base = `coap://127.0.0.1:${relay.port}`;
  // The requester's own context is never used for protection once the session takes over; it
  // names the peer and its algorithms for the client's layers.
  const context = new OscoreSecurityContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: CLIENT_IDENTITY.senderId, recipientIds: [CLIENT_IDENTITY.recipientId], name: 'server' }, new VolatileSequence());
  const security = new OscoreClientSecurity(context);
  const client = new CoapClient({ security: () => security, parameters: { nstart: options.nstart ?? 1 }, ...(options.proxy ? { proxy: options.proxy } : {}) });
  const peer = new KudosClientPeer(clientSession, security.requester, {
    send: (s) => {
      log.push('kudos request');
      return client.request({ method: 'POST', uri: `${base}/.well-known/kudos`, security: s });
    },
    onEvent: (e) => clientEvents.push(e),
    ...(options.clientPolicy ? { policy: options.clientPolicy } : {}),
    ...options.client,
  });
  const stack: Stack = {
    client,
    ...first,
    peer,
    clientSession,
    base,
    ledger,
    clientEvents,
    serverEvents,
    log,
    relay,
    restartServer: async () => {
      await stack.server.close();
      Object.assign(stack, await startServer());
      relay.server = stack.server.address();
    },
    close: async () => {
      await client.close();
      relay.close();
      await stack.server.close();
      directory.remove();
    },
  };
  return stack;
}
