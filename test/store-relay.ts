/** A UDP relay in front of a server node for the store tests: what the client sent and what the node answered, in arrival order. */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { decodeMessage } from '../src/coap/codec.js';
import { MessageType, getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption } from '../src/oscore/option.js';

export interface RecordingRelay {
  port: number;
  log: Array<{ fromClient: boolean; datagram: Buffer }>;
  /** Sends the client's datagrams to another node from now on (a failover without a balancer). */
  retarget(port: number): void;
  close(): void;
}

export async function recordingRelay(port: number): Promise<RecordingRelay> {
  const socket = createSocket('udp4');
  const log: RecordingRelay['log'] = [];
  let client: { address: string; port: number } | undefined;
  let target = port;
  socket.on('message', (data, from) => {
    if (from.port === target) {
      log.push({ fromClient: false, datagram: Buffer.from(data) });
      if (client) socket.send(data, client.port, client.address);
      return;
    }
    client = { address: from.address, port: from.port };
    log.push({ fromClient: true, datagram: Buffer.from(data) });
    socket.send(data, target, '127.0.0.1');
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, log, retarget: (p) => (target = p), close: () => socket.close() };
}

/**
 * Every nonce in one client's recorded traffic protects one message only (RFC 8613 §5.2): a
 * response with a Partial IV of its own (Echo challenge, notification) uses it under the server's
 * key; one without uses its request's Partial IV. Walked in arrival order, since a token may be
 * used again once its exchange is over. Logs of one context seen by several nodes share
 * `ciphertextByNonce`, so a nonce two nodes both used is caught. Returns how many responses carried their own Partial IV.
 */
export function auditNonces(log: RecordingRelay['log'], ciphertextByNonce = new Map<string, string>()): number {
  const requestPiv = new Map<string, string>();
  let ownPartialIvs = 0;
  for (const { fromClient, datagram } of log) {
    // Not a CoAP message (the nodes drop those too): nothing protected in it.
    if (datagram.length < 4) continue;
    const message = decodeMessage(datagram);
    const option = getOption(message, OptionNumber.Oscore);
    if (!option || message.type === MessageType.RST) continue;
    const token = Buffer.from(message.token).toString('hex');
    const piv = decodeOscoreOption(option).piv;
    let nonce: string;
    if (fromClient) {
      if (message.code === 0) continue;
      // The client's own nonces (its Sender Key): a retransmission repeats the same bytes, anything else must not.
      requestPiv.set(token, Buffer.from(piv!).toString('hex'));
      nonce = `request ${requestPiv.get(token)}`;
      const earlier = ciphertextByNonce.get(nonce);
      const ciphertext = Buffer.from(message.payload).toString('hex');
      assert.ok(earlier === undefined || earlier === ciphertext, `nonce ${nonce} protected two different messages`);
      ciphertextByNonce.set(nonce, ciphertext);
      continue;
    }
    if (piv) {
      nonce = `server ${Buffer.from(piv).toString('hex')}`;
      ownPartialIvs++;
    } else {
      const fromRequest = requestPiv.get(token);
      assert.ok(fromRequest !== undefined, 'every response without a Partial IV answers a recorded request');
      nonce = `client ${fromRequest}`;
    }
    const ciphertext = Buffer.from(message.payload).toString('hex');
    const earlier = ciphertextByNonce.get(nonce);
    assert.ok(earlier === undefined || earlier === ciphertext, `nonce ${nonce} protected two different messages`);
    ciphertextByNonce.set(nonce, ciphertext);
  }
  return ownPartialIvs;
}
