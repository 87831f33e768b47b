// Test servers on 127.0.0.1 that close for good: close() also ends the connections still open
// (server.close alone waits for keep-alive and proxied connections to end by themselves).

import type { AddressInfo, Server, Socket } from 'node:net';

export interface LocalServer {
  port: number;
  /** Destroys the open connections and closes the server. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (`port` 0: any free port) and keeps track of the server's connections. */
export async function listenLocal(server: Server, port = 0): Promise<LocalServer> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
