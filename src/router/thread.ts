/**
 * The router in a worker thread beside the embedded broker: `relais start` runs it this way so
 * that recording does not share the broker's event loop (measured: on one loop, a command flood
 * went at 0.38x of the broker alone; bench/RESULTS.md), still without a TCP hop (protocol §11).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { EmbeddedBroker } from '../broker/embedded.js';
import { PortStream } from '../broker/port-stream.js';
import type { RouterOptions } from './router.js';
import type { LogFormat } from '../logging/log-lines.js';

export type ToMain = { type: 'connect'; id: number } | { type: 'ready' } | { type: 'failed'; message: string } | { type: 'closed' };
export type ToWorker = { type: 'port'; id: number } | { type: 'close' };

export interface RouterThread {
  /** Stores what the router holds and stops it. */
  close(): Promise<void>;
}

/** What crosses to the thread is data: the stores are opened there, SQLite ones in `database`. */
export type RouterThreadOptions = Omit<RouterOptions, 'stream' | 'broker' | 'logger' | 'database' | 'historyStore' | 'eventLog'> & { database: string; logLevel?: string; logFormat?: LogFormat };

export function startRouterThread(broker: EmbeddedBroker, options: RouterThreadOptions): Promise<RouterThread> {
  // The compiled worker sits beside this file in dist/.
  const worker = new Worker(new URL('./router-worker.js', import.meta.url), { workerData: { logLevel: 'warn', logFormat: 'json', ...options } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const close = async () => {
    worker.postMessage({ type: 'close' } satisfies ToWorker);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await worker.terminate();
  };
  return new Promise((resolve, reject) => {
    worker.on('message', (message: ToMain) => {
      if (message.type === 'connect') {
        const { port1, port2 } = new MessageChannel();
        broker.accept(new PortStream(port1));
        worker.postMessage({ type: 'port', id: message.id, port: port2 }, [port2]);
      } else if (message.type === 'ready') resolve({ close });
      else if (message.type === 'failed') reject(new Error(message.message));
      else if (message.type === 'closed') void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the router thread exited (${code}) before it was ready`)));
  });
}
