/** A one-client UDP relay on 127.0.0.1 that counts the datagrams it passes, both ways (bench/edhoc-first-response.ts, bench/kudos.ts). */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export async function countingRelay(serverPort: number): Promise<{ port: number; count: () => number; reset: () => void; close: () => void }> {
  const socket: Socket = createSocket('udp4');
  let client: RemoteInfo | undefined;
  let count = 0;
  socket.on('message', (msg, from) => {
    count++;
    if (from.port === serverPort) {
      if (client !== undefined) socket.send(msg, client.port, client.address);
    } else {
      client = from;
      socket.send(msg, serverPort, '127.0.0.1');
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, count: () => count, reset: () => { count = 0; }, close: () => socket.close() };
}

