/** Binding a listener, with start errors a person can act on. */
import type net from 'node:net';

export class BrokerStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerStartError';
  }
}

export function listen(server: net.Server, where: net.ListenOptions, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(new BrokerStartError(`${label} is already in use: another broker may be running (choose another port, or stop it)`, { cause: error }));
      } else if (error.code === 'EACCES') {
        reject(new BrokerStartError(`no permission to listen on ${label}`, { cause: error }));
      } else {
        reject(new BrokerStartError(`cannot listen on ${label}: ${error.message}`, { cause: error }));
      }
    });
    server.listen(where, () => resolve());
  });
}
