/**
 * Benchmark server child: `node dist/bench/server.js <impl> <port>`. Listens on 127.0.0.1:<port>,
 * answers GET /bench with 2.05 and the 20-byte payload (raw: echoes a 20-byte reply carrying the
 * request's first 8 bytes), tells the parent it is ready, and exits when the parent goes away.
 */
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { CoapServer } from '../src/server/server.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { floorOf } from './aead-floor.js';
import {
  BENCH_NSTART,
  DTLS_PSK,
  OSCORE_MASTER_SALT,
  OSCORE_MASTER_SECRET,
  OSCORE_REPLAY_WINDOW,
  PAYLOAD,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_CCM_8,
  benchRpk,
  isImpl,
  isVariant,
  sizeSocketBuffers,
  type Impl,
  type ServerReady,
  type Variant,
} from './common.js';

type NodeCoap = typeof import('coap');

const HOST = '127.0.0.1';

async function startRaw(port: number, socketBuffer: number): Promise<() => Promise<void>> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 8) return;
    const reply = Buffer.allocUnsafe(PAYLOAD.length);
    PAYLOAD.copy(reply);
    msg.copy(reply, 0, 0, 8); // the client's slot and sequence number
    socket.send(reply, rinfo.port, rinfo.address);
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, HOST, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  sizeSocketBuffers(socket, socketBuffer);
  return () => new Promise<void>((resolve) => socket.close(() => resolve()));
}

async function startCoapsec(port: number, socketBuffer: number, variant: Variant, scheme: 'coap' | 'coap+tcp'): Promise<() => Promise<void>> {
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  const server = await CoapServer.listen({
    host: HOST,
    ...(scheme === 'coap+tcp' ? { scheme } : {}),
    port,
    parameters: { nstart: BENCH_NSTART },
    ...buffers,
    ...(variant === 'oscore'
      ? {
          security: new OscoreServerSecurity([
            new OscoreSecurityContext(
              {
                masterSecret: OSCORE_MASTER_SECRET,
                masterSalt: OSCORE_MASTER_SALT,
                senderId: Buffer.from('01', 'hex'),
                recipientIds: [Buffer.alloc(0)],
                replayWindow: OSCORE_REPLAY_WINDOW,
              },
              new VolatileSequence(),
            ),
          ]),
        }
      : {}),
    // The DTLS transport sizes its socket from these too (transport/dtls.ts).
    ...(variant === 'dtls' ? { dtls: { psk: DTLS_PSK, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8], maxSessions: 4096, maxHandshakes: 256, ...buffers } } : {}),
    ...(variant === 'dtls-rpk'
      ? { dtls: { rpk: benchRpk('server'), cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8], maxSessions: 4096, maxHandshakes: 256, ...buffers } }
      : {}),
  });
  const floor = floorOf(variant, 'server');
  server.resource(
    '/bench',
    {
      GET: () => {
        floor?.open();
        floor?.seal();
        return { code: 69 /* 2.05 Content */, payload: PAYLOAD };
      },
    },
    variant === 'oscore' ? { requireOscore: true } : {},
  );
  return () => server.close();
}

async function startNodeCoap(port: number, socketBuffer: number): Promise<() => Promise<void>> {
  const coap = createRequire(import.meta.url)('coap') as NodeCoap;
  const server = coap.createServer({ type: 'udp4' });
  server.on('request', (req, res) => {
    if (req.url === '/bench' && req.method === 'GET') {
      res.code = '2.05';
      res.end(PAYLOAD);
    } else {
      res.code = '4.04';
      res.end();
    }
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(port, HOST, () => resolve()));
  // node-coap has no option for this; its socket is the (public, underscore-named) _sock field.
  if (server._sock instanceof dgram.Socket) sizeSocketBuffers(server._sock, socketBuffer);
  else if (socketBuffer > 0) throw new Error('node-coap server socket not found: cannot size its buffers');
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

async function main(): Promise<void> {
  const [implArg, portArg, bufferArg, variantArg = 'plain', schemeArg = 'coap'] = process.argv.slice(2);
  const port = Number(portArg);
  const socketBuffer = Number(bufferArg ?? 0);
  if (!implArg || !isImpl(implArg) || !Number.isInteger(port) || port <= 0 || port > 0xffff || !(socketBuffer >= 0) || !isVariant(variantArg) || (schemeArg !== 'coap' && schemeArg !== 'coap+tcp')) {
    throw new Error('usage: server.js <raw|coapsec|node-coap> <port> [socket buffer bytes, 0 = OS default] [plain|oscore|dtls|dtls-rpk|aead-floor|record-floor (coapsec)] [coap|coap+tcp (coapsec)]');
  }
  const impl: Impl = implArg;
  const stop =
    impl === 'raw' ? await startRaw(port, socketBuffer) : impl === 'coapsec' ? await startCoapsec(port, socketBuffer, variantArg, schemeArg) : await startNodeCoap(port, socketBuffer);
  const shutdown = (): void => {
    // Bounded: whatever close() does, the process is gone within a second.
    setTimeout(() => process.exit(0), 1000).unref();
    stop().then(() => process.exit(0), () => process.exit(0));
  };
  process.on('disconnect', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  const ready: ServerReady = { type: 'ready', impl, port };
  if (process.send) process.send(ready);
  else console.log(`${impl} server listening on ${HOST}:${port}`);
}

main().catch((error: unknown) => {
  console.error(`bench server: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
