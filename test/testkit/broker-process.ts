/** Runs test/fixtures/broker-process.ts and reads what it says: its URL, its log lines, its memory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { connect, type Bus } from '../../src/index.js';
import { testLogger, uniqueId } from './index.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/broker-process.ts');

export interface BrokerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  /** Its `LOG` lines (the broker's log), in order. */
  logs: string[];
  /** Anything else it wrote on stderr (a crash's stack, a warning), the first 200 lines. */
  other: string[];
  /** `log` for each log line, `gc` for each memory report. */
  events: EventEmitter;
  /** Set when it exited. */
  exited?: { code: number | null; signal: string | null };
  /** A full collection in the broker (started with `exposeGc`), then its heap and RSS. */
  gc(): Promise<{ heapUsed: number; rss: number }>;
  /** Closes its stdin and waits (3 s at most) for it to end, then kills it. */
  stop(): Promise<void>;
}

/** Calls `onLine` for each whole line `stream` writes. */
export function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) onLine(line);
  });
}

export async function startBrokerProcess(config: { limits?: object; identities?: string; policy?: string; serves?: Record<string, string[]> } = {}, options: { exposeGc?: boolean } = {}): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [...(options.exposeGc ? ['--expose-gc'] : []), '--import', 'tsx', FIXTURE, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events = new EventEmitter();
  const logs: string[] = [];
  const other: string[] = [];
  const reports: Array<{ heapUsed: number; rss: number }> = [];
  let exited: BrokerProcess['exited'];
  child.once('exit', (code, signal) => (exited = { code, signal }));
  eachLine(child.stderr!, (line) => {
    if (line.startsWith('LOG ')) {
      logs.push(line.slice(4));
      events.emit('log');
    } else if (other.length < 200) other.push(line);
  });
  const url = await new Promise<string>((resolve, reject) => {
    eachLine(child.stdout!, (line) => {
      const ready = /^READY (\S+)/.exec(line);
      const gc = /^GC (\d+) (\d+)/.exec(line);
      if (ready) resolve(ready[1]!);
      else if (gc) {
        reports.push({ heapUsed: Number(gc[1]), rss: Number(gc[2]) });
        events.emit('gc');
      }
    });
    child.once('exit', (code) => reject(new Error(`the broker process exited (${code}) before it was ready: ${other.join('\n')}`)));
  });
  return {
    child,
    url,
    port: Number(new URL(url).port),
    logs,
    other,
    events,
    get exited() {
      return exited;
    },
    async gc() {
      const reported = once(events, 'gc', { signal: AbortSignal.timeout(10_000) });
      child.stdin!.write('gc\n');
      await reported;
      return reports.at(-1)!;
    },
    async stop() {
      child.stdin!.end();
      if (!exited) await Promise.race([once(child, 'exit'), new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
      if (!exited) child.kill('SIGKILL');
    },
  };
}

/**
 * Handlers of `action` (one per name, on `broker`) of which whichever gets a command first
 * freezes the broker (SIGSTOP, a paused VM) in the turn it got it, before its first answer has
 * left, and lets it run again (SIGCONT) `frozenMs` later: that answer sits in the frozen broker
 * with everything else (protocol §4.7's silent broker). `runs` lists the handlers that ran it.
 */
export async function handlersThatFreezeTheBroker(broker: BrokerProcess, action: string, names: string[], frozenMs: number): Promise<{ handlers: Bus[]; runs: string[] }> {
  const runs: string[] = [];
  let thawed: Promise<void> | undefined;
  const handlers: Bus[] = [];
  for (const name of names) {
    const handler = await connect({ id: uniqueId(name), broker: broker.url, logger: testLogger });
    handlers.push(handler);
    await handler.handle(action, async () => {
      runs.push(handler.id);
      thawed ??= (() => {
        process.kill(broker.child.pid!, 'SIGSTOP');
        return new Promise<void>((resolve) =>
          setTimeout(() => {
            process.kill(broker.child.pid!, 'SIGCONT');
            resolve();
          }, frozenMs),
        );
      })();
      await thawed;
      return { by: handler.id };
    });
  }
  return { handlers, runs };
}
