/** Binding a listener, with start errors a person can act on. */
import type net from 'node:net';

export class BrokerStartError extends Error {
  /** Which listener did not start (`TCP`, `WebSocket`, `TLS`, `WebSocket over TLS`, `Unix socket`): a command line names the option that sets it. */
  readonly listener?: string;
  /** Its address is taken (by another broker, say): another port would do. */
  readonly addressInUse: boolean;

  constructor(message: string, options: { cause?: unknown; listener?: string; addressInUse?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BrokerStartError';
    if (options.listener !== undefined) this.listener = options.listener;
    this.addressInUse = options.addressInUse ?? false;
  }
}

/** Listens on `where`; `label` names the address in messages, `listener` the kind of listener it is. */
export function listen(server: net.Server, where: net.ListenOptions, label: string, listener?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const about = { cause: error, ...(listener !== undefined && { listener }) };
      if (error.code === 'EADDRINUSE') {
        reject(new BrokerStartError(`${label} is already in use: another broker may be running (choose another port, or stop it)`, { ...about, addressInUse: true }));
      } else if (error.code === 'EACCES') {
        reject(new BrokerStartError(`no permission to listen on ${label}`, about));
      } else {
        reject(new BrokerStartError(`cannot listen on ${label}: ${error.message}`, about));
      }
    });
    server.listen(where, () => resolve());
  });
}
