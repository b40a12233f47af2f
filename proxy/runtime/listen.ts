// Binding a server: resolves with the port actually bound (port 0 picks one), rejects with
// the listen error (EADDRINUSE, EACCES) instead of letting it become an unhandled 'error'.
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
