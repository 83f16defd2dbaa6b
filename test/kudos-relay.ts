/**
 * A UDP relay between one client and one server on loopback that records every datagram (for the
 * nonce audit) and can delay the server's answers (to open the windows the §4.3.7 gate closes).
 */
import { createSocket, type Socket } from 'node:dgram';

export interface Datagram {
  from: 'client' | 'server';
  data: Buffer;
}

export class UdpRelay {
  readonly datagrams: Datagram[] = [];
  /** Delay applied to server → client datagrams, in ms. */
  delayToClient = 0;
  /** Decides, per datagram, whether it goes on (it is recorded either way). */
  pass: (datagram: Datagram) => boolean = () => true;
  /** Where the server is (it may come back on another port after a restart). */
  server: { address: string; port: number };
  #socket: Socket;
  #upstream: Socket;
  #client: { address: string; port: number } | undefined;
  #closed = false;

  private constructor(socket: Socket, upstream: Socket, server: { address: string; port: number }) {
    this.server = server;
    this.#socket = socket;
    this.#upstream = upstream;
    socket.on('message', (data, rinfo) => {
      if (this.#closed) return;
      this.#client = { address: rinfo.address, port: rinfo.port };
      const datagram: Datagram = { from: 'client', data };
      this.datagrams.push(datagram);
      if (this.pass(datagram)) upstream.send(data, this.server.port, this.server.address);
    });
    upstream.on('message', (data) => {
      const datagram: Datagram = { from: 'server', data };
      this.datagrams.push(datagram);
      const client = this.#client;
      if (!client || !this.pass(datagram)) return;
      const forward = () => {
        if (!this.#closed) socket.send(data, client.port, client.address);
      };
      if (this.delayToClient > 0) setTimeout(forward, this.delayToClient);
      else forward();
    });
  }

  static async start(server: { address: string; port: number }): Promise<UdpRelay> {
    const bind = async (): Promise<Socket> => {
      const s = createSocket('udp4');
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
      return s;
    };
    return new UdpRelay(await bind(), await bind(), server);
  }

  get port(): number {
    return this.#socket.address().port;
  }

  close(): void {
    this.#closed = true;
    this.#socket.close();
    this.#upstream.close();
  }
}
