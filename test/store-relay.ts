/** A UDP relay in front of a server node for the store tests: what the client sent and what the node answered, in arrival order. */
import { createSocket } from 'node:dgram';

export interface RecordingRelay {
  port: number;
  log: Array<{ fromClient: boolean; datagram: Buffer }>;
  close(): void;
}

export async function recordingRelay(port: number): Promise<RecordingRelay> {
  const socket = createSocket('udp4');
  const log: RecordingRelay['log'] = [];
  let client: { address: string; port: number } | undefined;
  socket.on('message', (data, from) => {
    if (from.port === port) {
      log.push({ fromClient: false, datagram: Buffer.from(data) });
      if (client) socket.send(data, client.port, client.address);
      return;
    }
    client = { address: from.address, port: from.port };
    log.push({ fromClient: true, datagram: Buffer.from(data) });
    socket.send(data, port, '127.0.0.1');
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, log, close: () => socket.close() };
}
