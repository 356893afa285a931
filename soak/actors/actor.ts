/**
 * What every actor process shares: its settings (JSON in SOAK_ACTOR_SETTINGS), its connection (an
 * identity and its token, as any client of a secured bus), and the two ways it is told to end:
 * `stop` on stdin (finish what is pending, write a `done` line, exit 0) and SIGTERM.
 */
import pino from 'pino';
import { connect, type Bus, type ConnectOptions } from '../../src/index.js';
import { ACTOR_SETTINGS_VARIABLE } from '../paths.js';

export interface ActorSettings {
  id: string;
  token: string;
  broker: string;
  journal: string;
  seed: number;
}

export function actorSettings<T extends object>(): ActorSettings & T {
  const text = process.env[ACTOR_SETTINGS_VARIABLE];
  if (!text) throw new Error(`${ACTOR_SETTINGS_VARIABLE} must hold the settings (JSON)`);
  return JSON.parse(text) as ActorSettings & T;
}

/** Connects, or exits 1 with the reason, as `relais` commands do when the broker cannot be reached. */
export async function connectActor(settings: ActorSettings, extra: Partial<ConnectOptions> = {}): Promise<Bus> {
  return connect({
    id: settings.id,
    broker: settings.broker,
    username: settings.id,
    password: settings.token,
    logger: pino({ name: settings.id, level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true })),
    ...extra,
  }).catch((error: Error) => startFailed(error));
}

/** What a `relais` command does when it cannot start: one line saying why, exit 1. */
export function startFailed(error: Error): never {
  process.stderr.write(`relais: did not start: ${error.message}\n`);
  process.exit(1);
}

/** `stop` on stdin runs `finish` once; SIGTERM closes the bus and exits at once. */
export function onStop(bus: Bus | undefined, finish: () => Promise<void>): void {
  let finishing = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (text: string) => {
    if (!text.includes('stop') || finishing) return;
    finishing = true;
    void finish().then(
      () => process.exit(0),
      (error) => {
        process.stderr.write(`stop failed: ${(error as Error).stack}\n`);
        process.exit(1);
      },
    );
  });
  process.on('SIGTERM', () => void (bus ? bus.close() : Promise.resolve()).finally(() => process.exit(0)));
}
