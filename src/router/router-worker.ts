/**
 * The worker-thread side of `startRouterThread`: the router, on its own event loop (its own
 * core), connected to the broker of the main thread through MessagePorts (protocol §11).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { commandLogger } from '../logging/log-lines.js';
import { PortStream } from '../broker/port-stream.js';
import { startRouter } from './router.js';
import type { RouterThreadOptions, ToMain, ToWorker } from './thread.js';

const port = parentPort!;
const settings = workerData as RouterThreadOptions & { logLevel: string; logFormat: 'readable' | 'json' };
const pending = new Map<number, PortStream>();
let nextConnection = 0;
const send = (message: ToMain) => port.postMessage(message);

/** Each (re)connection asks the main thread for a new port to the broker. */
function connectToBroker(): PortStream {
  const id = (nextConnection += 1);
  const stream = new PortStream();
  pending.set(id, stream);
  send({ type: 'connect', id });
  return stream;
}

port.on('message', (message: ToWorker & { port?: MessagePort }) => {
  if (message.type === 'port') {
    pending.get(message.id)?.attach(message.port!);
    pending.delete(message.id);
  } else if (message.type === 'close') {
    void routerReady.then((router) => router.close()).finally(() => send({ type: 'closed' }));
  }
});

const { logLevel, logFormat, ...options } = settings;
// Written from this thread straight to fd 2, in the format of the CLI that started it (src/logging/log-lines.ts).
const routerReady = startRouter({ ...options, stream: connectToBroker, logger: commandLogger(logLevel, 'relais-router', logFormat) });
routerReady.then(
  () => send({ type: 'ready' }),
  (error: Error) => send({ type: 'failed', message: error.message }),
);
