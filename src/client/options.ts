import pino, { type Logger } from 'pino';
import type { ConnectOptions } from './types.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';

/** The longest delay a Node timer keeps (~24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why `timeout` cannot time anything, or undefined when it can. */
export function checkTimeout(timeout: number, what = 'timeout'): string | undefined {
  if (!(timeout <= MAX_TIMER_MS)) return `${what} must be a number of ms up to ${MAX_TIMER_MS} (24.8 days), got ${timeout}`;
  return undefined;
}

/** Every default of the client in one place; each field is documented on `ConnectOptions`. */
export const DEFAULTS = {
  broker: 'mqtt://127.0.0.1:1883',
  timeout: 30_000,
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
} as const;

export type ResolvedOptions = Required<Omit<ConnectOptions, 'username' | 'password' | 'tls' | 'info'>> &
  Pick<ConnectOptions, 'username' | 'password' | 'tls' | 'info'>;

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
    return broker.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@').replace(/\?.*$/, '?***');
  }
}
