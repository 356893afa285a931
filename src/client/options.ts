import pino, { type Logger } from 'pino';
import type { ConnectOptions } from './types.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';
import { checkFilter } from '../protocol/topics.js';

/** The longest delay a Node timer keeps (~24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why `timeout` (ms) cannot time anything, or undefined when it can: a Node timer fires at once past MAX_TIMER_MS. */
export function checkTimeout(timeout: number, what = 'timeout'): string | undefined {
  if (!(timeout <= MAX_TIMER_MS)) return `${what} must be a number of ms up to ${MAX_TIMER_MS} (24.8 days), got ${timeout}`;
  return undefined;
}

const BROKER_SCHEMES = new Set(['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ssl:', 'ws:', 'wss:', 'unix:', 'mqtt+unix:']);

/** Why the resolved options cannot work, or undefined. The URL is not repeated: it may hold a password. */
export function checkOptions(options: ResolvedOptions): string | undefined {
  let scheme: string;
  try {
    scheme = new URL(options.broker).protocol;
  } catch {
    scheme = '';
  }
  if (!BROKER_SCHEMES.has(scheme)) {
    return 'the broker URL must be mqtt://, mqtts://, ws://, wss:// or unix:// followed by [user:password@]host:port (or a path for unix); it is not repeated here as it may hold a password';
  }
  for (const { filter } of options.subscriptions ?? []) {
    const problem = checkFilter(filter);
    if (problem) return `subscriptions: ${problem}`;
  }
  if (options.startup !== 'auto' && options.startup !== 'manual') return `startup must be 'auto' or 'manual', got ${JSON.stringify(options.startup)}`;
  for (const name of ['timeout', 'ackTimeout', 'reconnectGrace', 'connectTimeout', 'directorySettle', 'reconnectDelay', 'reconnectMaxDelay'] as const) {
    const problem = checkTimeout(options[name], name);
    if (problem) return problem;
  }
  return undefined;
}

/** Every default of the client in one place; each field is documented on `ConnectOptions`. */
export const DEFAULTS = {
  broker: 'mqtt://127.0.0.1:1883',
  timeout: 30_000,
  ackTimeout: 2000,
  reconnectGrace: 10_000,
  realtimeLane: true,
  maxOfflineMessages: 1000,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  reconnectDelay: 100,
  reconnectMaxDelay: 5000,
  connectTimeout: 10_000,
  keepalive: 30,
  checkHandlers: true,
  directorySettle: 500,
  ephemeral: false,
  persistentSession: false,
  startup: 'auto',
} as const;

export type ResolvedOptions = Required<Omit<ConnectOptions, 'username' | 'password' | 'tls' | 'info' | 'stream' | 'subscriptions'>> &
  Pick<ConnectOptions, 'username' | 'password' | 'tls' | 'info' | 'stream' | 'subscriptions'>;

export function resolveOptions(options: ConnectOptions): ResolvedOptions {
  const logger: Logger =
    options.logger ??
    pino({ name: 'relais', level: process.env.RELAIS_LOG_LEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  return {
    ...DEFAULTS,
    broker: process.env.RELAIS_BROKER ?? DEFAULTS.broker,
    ...defined,
    logger,
  } as ResolvedOptions;
}

/** MQTT.js speaks `mqtt+unix://`; Relais accepts the friendlier `unix:///path`. */
export function toMqttUrl(broker: string): string {
  if (broker.startsWith('unix://')) return `mqtt+unix://${broker.slice('unix://'.length)}`;
  return broker;
}

/**
 * The broker URL with its password and query masked, for logs and error messages: no secret
 * in a log (a WebSocket URL may carry a token in its query).
 */
export function redactBroker(broker: string): string {
  try {
    const url = new URL(broker);
    if (!url.password && !url.search) return broker;
    if (url.password) url.password = '***';
    if (url.search) url.search = '?***';
    return url.toString();
  } catch {
    // Not a URL: mask everything up to the last '@', whatever it holds, and any query.
    return broker.replace(/^([a-z+]+:\/\/)?.*@/i, '$1***@').replace(/\?.*$/, '?***');
  }
}
