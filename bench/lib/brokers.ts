/**
 * The brokers the benchmark runs against, all on 127.0.0.1 and free ports:
 * - `aedes`: the embedded broker (src/broker) in a child process (bench/aedes-broker.ts);
 * - `aedes-inproc`: the same broker in the benchmark's own process, as `relais start` would
 *   share a process with its clients (cheap figure, for scale);
 * - `mosquitto`: Mosquitto as the project configures it (test/testkit/brokers.ts:
 *   set_tcp_nodelay true, raised queues);
 * - `mosquitto-nagle`: the same config minus `set_tcp_nodelay` (a control for the progress
 *   stream only, to show the stall the option removes).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBinary, freePort, mosquittoConfig, startAedes, startMosquitto, waitForLine } from '../../test/testkit/brokers.js';
import { withDeadline } from './util.js';

export type BenchBrokerKind = 'aedes' | 'aedes-inproc' | 'mosquitto' | 'mosquitto-nagle';

export interface BenchBroker {
  kind: BenchBrokerKind;
  /** Label used in the tables. */
  label: string;
  url: string;
  /** Pid of the broker process when it is not this one (to sample its CPU). */
  pid?: number;
  close(): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

export const BROKER_LABELS: Record<BenchBrokerKind, string> = {
  aedes: 'Aedes (child process)',
  'aedes-inproc': 'Aedes (in-process)',
  mosquitto: 'Mosquitto',
  'mosquitto-nagle': 'Mosquitto without set_tcp_nodelay',
};

export async function startBenchBroker(kind: BenchBrokerKind): Promise<BenchBroker> {
  switch (kind) {
    case 'aedes':
      return startAedesChild();
    case 'aedes-inproc': {
      const broker = await startAedes();
      return { kind, label: BROKER_LABELS[kind], url: broker.url, close: () => broker.close() };
    }
    case 'mosquitto': {
      const broker = await startMosquitto();
      const pid = findMosquittoPid(Number(new URL(broker.url).port));
      return { kind, label: BROKER_LABELS[kind], url: broker.url, ...(pid !== undefined && { pid }), close: () => broker.close() };
    }
    case 'mosquitto-nagle':
      return startMosquittoWithoutNoDelay();
  }
}

async function startAedesChild(): Promise<BenchBroker> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '..', 'aedes-broker.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<{ url: string; pid: number }>((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const newline = seen.indexOf('\n');
      if (newline >= 0) {
        try {
          resolve(JSON.parse(seen.slice(0, newline)) as { url: string; pid: number });
        } catch (error) {
          reject(error);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`the Aedes child exited with ${code} before listening`)));
  });
  let info: { url: string; pid: number };
  try {
    info = await withDeadline(ready, 15_000, 'the Aedes child process');
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  child.stdout!.resume();
  let closed = false;
  return {
    kind: 'aedes',
    label: BROKER_LABELS.aedes,
    url: info.url,
    pid: info.pid,
    close: async () => {
      if (closed) return;
      closed = true;
      if (child.exitCode !== null) return;
      child.stdin!.end();
      try {
        await withDeadline(exited, 5000, 'the Aedes child exit');
      } catch {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** The project's Mosquitto config with the no-delay line removed: the Nagle control. */
async function startMosquittoWithoutNoDelay(): Promise<BenchBroker> {
  const binary = findBinary('mosquitto');
  if (!binary) throw new Error('mosquitto is not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-mosquitto-'));
  const port = await freePort();
  const config = mosquittoConfig(port)
    .split('\n')
    .filter((line) => !line.startsWith('set_tcp_nodelay'))
    .join('\n');
  const configPath = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(configPath, config);
  const child = spawn(binary, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForLine(child, /mosquitto version .* running/, 10_000, 'mosquitto');
  } catch (error) {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  child.stderr!.resume();
  let closed = false;
  return {
    kind: 'mosquitto-nagle',
    label: BROKER_LABELS['mosquitto-nagle'],
    url: `mqtt://127.0.0.1:${port}`,
    ...(child.pid !== undefined && { pid: child.pid }),
    close: async () => {
      if (closed) return;
      closed = true;
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The testkit does not expose Mosquitto's pid; find it (to sample the broker's CPU) as the
 * mosquitto process whose config file listens on `port`. Undefined when not found.
 */
function findMosquittoPid(port: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv[0]?.endsWith('mosquitto')) continue;
      const config = argv[argv.indexOf('-c') + 1];
      if (config && fs.readFileSync(config, 'utf8').includes(`listener ${port} `)) return Number(entry);
    } catch {
      // a process that ended meanwhile, or not ours
    }
  }
  return undefined;
}
