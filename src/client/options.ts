import type { IClientOptions, MqttProtocol } from 'mqtt';
import type { Logger } from 'pino';
import type { ConnectOptions, LogsOptions } from './types.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';
import { checkFilter } from '../protocol/topics.js';
import { LOG_LINE_LEVELS } from '../protocol/logs.js';
import type { Runtime } from './runtime.js';

/** The longest delay a Node timer keeps (~24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why `timeout` (ms) cannot time anything, or undefined when it can: a Node timer fires at once past MAX_TIMER_MS. */
export function checkTimeout(timeout: number, what = 'timeout'): string | undefined {
  if (!(timeout <= MAX_TIMER_MS)) return `${what} must be a number of ms up to ${MAX_TIMER_MS} (24.8 days), got ${timeout}`;
  return undefined;
}

const BROKER_SCHEMES = new Set(['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ssl:', 'ws:', 'wss:', 'unix:', 'mqtt+unix:']);

/**
 * The broker URLs of `ConnectOptions.broker`: a list as given, or a string split at its
 * commas (a comma inside a URL is written `%2C`). Spaces around each are ignored.
 */
export function brokerUrls(broker: string | readonly string[]): string[] {
  return (typeof broker === 'string' ? broker.split(',') : [...broker]).map((url) => (typeof url === 'string' ? url.trim() : url));
}

/** Why the resolved options cannot work, or undefined. A URL is not repeated: it may hold a password. */
export function checkOptions(options: ResolvedOptions): string | undefined {
  const problem = checkBrokers(options.broker);
  if (problem) return problem;
  for (const { filter } of options.subscriptions ?? []) {
    const problem = checkFilter(filter);
    if (problem) return `subscriptions: ${problem}`;
  }
  if (options.startup !== 'auto' && options.startup !== 'manual') return `startup must be 'auto' or 'manual', got ${JSON.stringify(options.startup)}`;
  if (options.directory !== 'full' && options.directory !== 'on-demand') return `directory must be 'full' or 'on-demand', got ${JSON.stringify(options.directory)}`;
  for (const name of ['timeout', 'ackTimeout', 'reconnectGrace', 'connectTimeout', 'directorySettle', 'reconnectDelay', 'reconnectMaxDelay', 'presenceRepeat'] as const) {
    const problem = checkTimeout(options[name], name);
    if (problem) return problem;
  }
  return checkLogsOptions(options.logs);
}

const BROKER_URL_FORM = 'mqtt://, mqtts://, ws://, wss:// or unix:// followed by [user:password@]host:port (or a path for unix)';

/** Why the broker URL, or one of the list, cannot work; a bad one is named by its place in the list, never repeated. */
function checkBrokers(broker: string | readonly string[]): string | undefined {
  if (typeof broker !== 'string' && !Array.isArray(broker)) return 'broker must be a URL, several separated by commas, or a list of URLs';
  const urls = brokerUrls(broker);
  if (urls.length === 0) return 'broker: the list of broker URLs is empty';
  if (urls.length === 1) {
    return isBrokerUrl(urls[0]) ? undefined : `the broker URL must be ${BROKER_URL_FORM}; it is not repeated here as it may hold a password`;
  }
  const bad = urls.findIndex((url) => !isBrokerUrl(url));
  if (bad < 0) return undefined;
  const what = urls[bad] === '' ? 'is empty' : `must be ${BROKER_URL_FORM}; it is not repeated here as it may hold a password`;
  return `broker URL ${bad + 1} of ${urls.length} ${what}`;
}

function isBrokerUrl(url: unknown): boolean {
  if (typeof url !== 'string') return false;
  try {
    return BROKER_SCHEMES.has(new URL(url).protocol);
  } catch {
    return false;
  }
}

function checkLogsOptions(logs: ResolvedLogsOptions | false): string | undefined {
  if (logs === false) return undefined;
  if (!isCount(logs.maxLines)) return `logs.maxLines must be a positive integer, got ${logs.maxLines}`;
  if (!isCount(logs.maxBytes)) return `logs.maxBytes must be a positive integer, got ${logs.maxBytes}`;
  if (!(logs.lockTimeout > 0)) return `logs.lockTimeout must be a positive number of ms, got ${logs.lockTimeout}`;
  if (logs.level !== undefined && !Object.hasOwn(LOG_LINE_LEVELS, logs.level)) {
    return `logs.level must be one of ${Object.keys(LOG_LINE_LEVELS).join(', ')}, got ${String(logs.level)}`;
  }
  return checkTimeout(logs.lockTimeout, 'logs.lockTimeout');
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
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
  directory: 'full',
  ephemeral: false,
  persistentSession: false,
  startup: 'auto',
  /** protocol §11.4; `level` defaults to the logger's own. */
  logs: { maxLines: 1000, maxBytes: 256 * 1024, lockTimeout: 60_000 },
} as const;

export type ResolvedLogsOptions = Required<Omit<LogsOptions, 'level' | 'sources'>> & Pick<LogsOptions, 'level' | 'sources'>;

export type ResolvedOptions = Required<Omit<ConnectOptions, 'presenceRepeat' | 'username' | 'password' | 'tls' | 'info' | 'stream' | 'subscriptions' | 'logs' | 'signing' | 'verify' | 'sealing'>> &
  Pick<ConnectOptions, 'username' | 'password' | 'tls' | 'info' | 'stream' | 'subscriptions' | 'signing' | 'verify' | 'sealing'> & {
    logs: ResolvedLogsOptions | false;
    /** In ms; 0 when presences are not repeated. */
    presenceRepeat: number;
    /** What the runtime says of where this client runs (host, pid), first in every presence (protocol §7.1). */
    hostFacts: Record<string, unknown>;
  };

/** The options with every default filled in; the defaults that depend on the runtime (broker, logger, host facts) come from `runtime`. */
export function resolveOptions(options: ConnectOptions, runtime: Runtime): ResolvedOptions {
  const logger: Logger = options.logger ?? runtime.defaultLogger();
  const defined = definedOnly(options);
  const broker = defined.broker ?? runtime.defaultBroker();
  return {
    ...DEFAULTS,
    broker,
    ...defined,
    presenceRepeat: presenceRepeatOf(options.presenceRepeat, broker),
    logger,
    hostFacts: runtime.hostFacts(),
    logs: options.logs === false ? false : { ...DEFAULTS.logs, ...definedOnly(options.logs ?? {}) },
  } as ResolvedOptions;
}

/** Presences are repeated on a cluster, taken to be what several broker URLs name (docs/deploy.md). */
export const CLUSTER_PRESENCE_REPEAT_MS = 2000;

function presenceRepeatOf(asked: number | false | undefined, broker: string | readonly string[]): number {
  if (asked === false) return 0;
  if (asked !== undefined) return asked;
  return typeof broker !== 'string' && !Array.isArray(broker) ? 0 : brokerUrls(broker).length > 1 ? CLUSTER_PRESENCE_REPEAT_MS : 0;
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** MQTT.js speaks `mqtt+unix://`; Relais accepts the friendlier `unix:///path`. */
export function toMqttUrl(broker: string): string {
  if (broker.startsWith('unix://')) return `mqtt+unix://${broker.slice('unix://'.length)}`;
  return broker;
}

/**
 * `broker` read with the WHATWG URL parser into the options `mqtt.connect` takes. Given a URL
 * string, MQTT.js parses it with Node's legacy `url.parse()`, which Node 24 reports as
 * deprecated (DEP0169) once MQTT.js is bundled with our code (the CLI bundle): outside
 * node_modules the warning is printed. The fields are those MQTT.js takes from `url.parse`.
 */
export function brokerUrlOptions(broker: string): IClientOptions {
  const url = new URL(toMqttUrl(broker));
  const scheme = url.protocol.replace(/:$/, '');
  const unixSocket = scheme.endsWith('+unix');
  const username = decodedOrAsIs(url.username);
  const password = decodedOrAsIs(url.password);
  return {
    protocol: (unixSocket ? scheme.slice(0, -'+unix'.length) : scheme) as MqttProtocol,
    ...(unixSocket && { unixSocket: true }),
    // An IPv6 literal is bracketed in a URL, not in a socket address.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(url.port !== '' && { port: Number(url.port) }),
    ...(url.pathname !== '' && { path: url.pathname + url.search }),
    query: Object.fromEntries(url.searchParams),
    ...((username !== '' || password !== '') && { auth: url.password === '' ? username : `${username}:${password}` }),
  };
}

/** Percent-decoded, or as written when it is not valid percent-encoding (a literal `%` in a password). */
function decodedOrAsIs(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
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
