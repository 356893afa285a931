/**
 * What the registry tests share: a client in its own process (to SIGKILL or SIGSTOP), a watcher
 * of the registry's notifications that waits on them (no sleeps), and raw MQTT presences.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { Bus, ClientDetail, ClientDetailChanges, ClientListPayload } from '../../src/index.js';
import { within } from '../testkit/index.js';

const CLIENT_FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/client-process.ts');

export interface ClientProcess {
  child: ChildProcess;
  pid: number;
}

/** Starts test/fixtures/client-process.ts as `id`; resolves once it is connected. */
export function startClientProcess(url: string, id: string, keepaliveSeconds: number): Promise<ClientProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENT_FIXTURE, url, id, String(keepaliveSeconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return within(
    new Promise((resolve, reject) => {
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const ready = buffered.match(/^READY (\d+)$/m);
        if (ready) resolve({ child, pid: Number(ready[1]) });
      });
      child.once('exit', (code) => reject(new Error(`client ${id} exited (${code}) before it was ready`)));
    }),
    20_000,
    `client process ${id} ready`,
  );
}

/** Every notification of the registry, as seen by a client: each client's statuses in order, and the lists. */
export class RegistryWatch extends EventEmitter<{ detail: []; list: [] }> {
  readonly statuses = new Map<string, string[]>();
  readonly latest = new Map<string, ClientDetail | null>();
  /** Each list notification: when it came and how many clients it held. */
  readonly lists: Array<{ at: number; size: number }> = [];
  /** Detail notifications and the entries they carried, in all. */
  details = 0;
  detailEntries = 0;

  static async start(bus: Bus): Promise<RegistryWatch> {
    const watch = new RegistryWatch();
    await bus.subscribe('relais/clients/detail/notification', (message) => watch.onDetail(message.envelope.payload as ClientDetailChanges));
    await bus.subscribe('relais/clients/list/notification', (message) => {
      watch.lists.push({ at: Date.now(), size: Object.keys((message.envelope.payload as ClientListPayload).clients).length });
      watch.emit('list');
    });
    return watch;
  }

  private onDetail(changes: ClientDetailChanges): void {
    this.details += 1;
    for (const [id, detail] of Object.entries(changes.clients)) {
      this.detailEntries += 1;
      this.latest.set(id, detail);
      const seen = this.statuses.get(id) ?? [];
      seen.push(detail ? detail.status : 'forgotten');
      this.statuses.set(id, seen);
    }
    this.emit('detail');
  }

  /** Resolves with `id`'s detail once `check` holds for it (null: forgotten); rejects after `timeout` ms. */
  until(id: string, check: (detail: ClientDetail | null) => boolean, timeout = 10_000, what = `${id} as expected`): Promise<ClientDetail | null> {
    return within(
      new Promise((resolve) => {
        const test = () => {
          if (!this.latest.has(id)) return;
          const detail = this.latest.get(id)!;
          if (!check(detail)) return;
          this.off('detail', test);
          resolve(detail);
        };
        this.on('detail', test);
        test();
      }),
      timeout,
      `${what} (statuses seen: ${JSON.stringify(this.statuses.get(id) ?? [])})`,
    );
  }

  /** `id` alive and serving its actions (a library client announces `alive` once before it serves anything). */
  serving(id: string, pid?: number, timeout?: number): Promise<ClientDetail | null> {
    const check = (detail: ClientDetail | null) => detail?.status === 'alive' && detail.actions.length > 0 && (pid === undefined || detail.pid === pid);
    return this.until(id, check, timeout, `${id} serving${pid === undefined ? '' : ` as pid ${pid}`}`);
  }

  status(id: string, status: string, timeout?: number): Promise<ClientDetail | null> {
    return this.until(id, (detail) => detail?.status === status, timeout, `${id} ${status}`);
  }
}

/** A presence payload as a library client writes it (protocol §7.1). */
export function presenceBody(id: string, payload: Record<string, unknown>): string {
  return JSON.stringify({ v: 1, type: 'notification', source: id, destination: '*', payload, ts: Date.now() });
}

/** A raw MQTT.js connection (not the library), resolved once connected. */
export async function rawClient(url: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, protocolVersion: 4, ...options });
  await within(
    new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    }),
    10_000,
    `raw MQTT connection ${options.clientId ?? ''}`,
  );
  return client;
}
