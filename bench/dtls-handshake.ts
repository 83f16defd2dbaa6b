/**
 * DTLS 1.2 handshakes engine to engine in memory (src/dtls DtlsClient ↔ DtlsServerEngine), PSK
 * (TLS_PSK_WITH_AES_128_CCM_8) or ECDHE-ECDSA with raw public keys; shared by bench/dtls.ts and
 * bench/edhoc.ts.
 */
import { DtlsClient, DtlsServerEngine } from '../src/dtls/index.js';
import { DTLS_PSK, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM_8, benchRpk } from './common.js';

export const DTLS_HANDSHAKE_MODES = ['psk', 'ecdhe-ecdsa'] as const;
export type DtlsHandshakeMode = (typeof DTLS_HANDSHAKE_MODES)[number];

/** One full handshake per call (cookie exchange included), engine to engine in memory, in this process. */
export function dtlsHandshakeInMemory(mode: DtlsHandshakeMode): () => void {
  const now = (): number => performance.now();
  const server = new DtlsServerEngine(
    mode === 'psk'
      ? { now, pskStore: (id) => (id.toString() === DTLS_PSK.identity ? DTLS_PSK.key : undefined), cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8], maxConnections: 4096 }
      : { now, rpk: benchRpk('server'), cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8], maxConnections: 4096 },
  );
  const clientRpk = benchRpk('client');
  let n = 0;
  return () => {
    const peer = `10.0.${(n >> 8) & 255}.${n & 255}:${5000 + (n++ % 60000)}`;
    const client = new DtlsClient(
      mode === 'psk'
        ? { now, psk: { identity: Buffer.from(DTLS_PSK.identity), key: DTLS_PSK.key }, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8] }
        : { now, rpk: clientRpk, cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8] },
    );
    let toServer = client.start();
    for (let flight = 0; flight < 10 && client.state !== 'connected'; flight++) {
      const toClient: Buffer[] = [];
      for (const d of toServer) toClient.push(...server.receive(d, peer).send);
      toServer = [];
      for (const d of toClient) toServer.push(...client.receive(d).send);
    }
    for (const d of toServer) server.receive(d, peer); // the client's last flight, if any
    if (client.state !== 'connected') throw new Error(`in-memory ${mode} handshake did not complete (${client.state}: ${client.failureReason ?? ''})`);
    server.close(peer);
  };
}
