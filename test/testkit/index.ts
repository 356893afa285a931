/**
 * `setup()` gives a test a real broker and a way to connect clients to it; `cleanup()`
 * closes every client and the broker. Nothing is left listening after a test file.
 */
import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import { connect, type Bus, type ConnectOptions, type ReceivedMessage } from '../../src/index.js';
import { startBroker, type BrokerKind, type BrokerOptions, type TestBroker } from './brokers.js';
import pino from 'pino';

export * from './brokers.js';

export interface Kit {
  broker: TestBroker;
  /** Connects a client to the kit's broker (closed by `cleanup`). */
  connect(id: string, options?: Partial<ConnectOptions>): Promise<Bus>;
  cleanup(): Promise<void>;
}

/**
 * The time-out of a suite of bus tests. It only catches a hang (each wait in a test has its
 * own time-out): on a saturated machine (`npm run test:loaded`, docs/reliability.md) a contract
 * suite of thirty tests takes minutes, and that is late, not wrong.
 */
export const SUITE_TIMEOUT = 300_000;

let counter = 0;
/** A fresh client id, unique within this process. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Quiet unless RELAIS_TEST_LOG is set: tests provoke warnings on purpose. */
export const testLogger = pino({ level: process.env.RELAIS_TEST_LOG ?? 'silent' });

export async function setup(kind: BrokerKind, options: BrokerOptions = {}): Promise<Kit> {
  const broker = await startBroker(kind, options);
  const clients: Bus[] = [];
  return {
    broker,
    async connect(id, extra = {}) {
      const bus = await connect({ id, broker: broker.url, logger: testLogger, ...extra });
      clients.push(bus);
      return bus;
    },
    async cleanup() {
      await Promise.all(clients.map((bus) => bus.close()));
      await broker.close();
    },
  };
}

/**
 * Resolves with `check()`'s value as soon as it is defined: at once, or after one of the
 * `event`s of `emitter`; rejects after `timeout` ms.
 */
export async function waitFor<T>(check: () => T | undefined, emitter: NodeJS.EventEmitter, event: string, timeout = 5000): Promise<T> {
  const first = check();
  if (first !== undefined) return first;
  const signal = AbortSignal.timeout(timeout);
  for (;;) {
    await once(emitter, event, { signal });
    const value = check();
    if (value !== undefined) return value;
  }
}

/** Resolves as `promise` does, or rejects after `timeout` ms saying that `what` did not happen: a wait that always ends. */
export async function within<T>(promise: Promise<T>, timeout: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${timeout} ms`)), timeout);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A logger that keeps every line it is given, at every level, parsed; `events` emits `line` for each. */
export function recordingLogger(): { logger: pino.Logger; lines: string[]; records: () => Array<Record<string, unknown>>; events: EventEmitter } {
  const lines: string[] = [];
  const events = new EventEmitter();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      events.emit('line');
      done();
    },
  });
  return { logger: pino({ level: 'trace' }, sink), lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>), events };
}

/**
 * Subscribes to `filter` and resolves once the subscription is in place, so that whatever is
 * sent after is seen, with `arrived`: the next message on it that `match` accepts (then the
 * subscription ends), or a time-out error.
 */
export async function subscribedForNext(bus: Bus, filter: string, options: { match?: (message: ReceivedMessage) => boolean; timeout?: number } = {}): Promise<{ arrived: Promise<ReceivedMessage> }> {
  const match = options.match ?? (() => true);
  let found!: (message: ReceivedMessage) => void;
  const next = new Promise<ReceivedMessage>((resolve) => (found = resolve));
  const subscription = await bus.subscribe(filter, (message) => match(message) && found(message));
  const arrived = within(next, options.timeout ?? 10_000, `a message on ${filter}`).finally(() => subscription.unsubscribe());
  arrived.catch(() => {}); // the test awaits it; a failure elsewhere first must not become an unhandled rejection
  return { arrived };
}
