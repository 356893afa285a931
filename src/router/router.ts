/**
 * The router: an ordinary bus client with privileges (protocol §11). It records every request's
 * lifecycle (history), answers history queries, relays kills, derives metrics and keeps the
 * client registry. It is never on
 * the request path: requests go from requester to handler through the broker, so stopping the
 * router loses no request and slows none.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import { connect } from '../client/connect.js';
import type { ConnectOptions, Registration } from '../client/types.js';
import { HistoryAccess, type HistoryAccessOptions } from './history-access.js';
import { lateLogger } from './late-logger.js';
import type { HistoryRetention, HistoryStore } from './history-store.js';
import type { EventLog } from './event-log.js';
import { ROUTER_ID } from '../protocol/history-feed.js';
import { BrokerFeed } from './broker-feed.js';
import { serveHistory } from './history-service.js';
import { serveKill, type KillBy } from './kill-service.js';
import { SqliteEventLog } from './sqlite-event-log.js';
import { EventStream } from './event-stream.js';
import { Metrics } from './metrics.js';
import { METRICS_CATEGORY } from '../protocol/metrics.js';
import { RecentSnapshots, serveMetrics } from './metrics-service.js';
import { startRegistry, type Registry } from './registry.js';
import { Recorder } from './recorder.js';
import { SqliteHistoryStore } from './sqlite-history-store.js';
import { CENTRAL_SITE, checkSiteName } from '../protocol/sites.js';
import { SiteSync, SITE_SYNC_DEFAULTS } from './site-sync.js';
import { SiteWatch } from './site-watch.js';
import { serveSites } from './sites-service.js';
import { openSharedStores } from './shared-stores.js';
import type { KvStore } from './kv-store.js';
import { KvService } from './kv-service.js';
import { SqliteKvStore } from './sqlite-kv-store.js';
import { MemoryKvStore } from './memory-kv-store.js';
import { kvEventType, type KvConfig } from '../protocol/kv.js';

export const ROUTER_DEFAULTS = {
  id: ROUTER_ID,
  /** Payload JSON kept per row; the rest is cut and the row flagged `truncated`. */
  maxDataBytes: 8192,
  retention: { maxAgeMs: 7 * 24 * 3600_000, maxRows: 1_000_000 } satisfies HistoryRetention,
  /** How often retention runs, and how many rows each small delete removes (recording goes on between them). */
  pruneEveryMs: 60_000,
  pruneBatch: 2000,
  maxBatch: 5000,
  /** How often the metrics notification is published (protocol §11.6). */
  metricsEveryMs: 10_000,
  /** Events kept for consumers that resume (protocol §11.8); older ones are reported as missed. */
  maxEvents: 100_000,
  /** The site this router's `relais start` is (protocol §13): the central unless told. */
  site: CENTRAL_SITE,
  /** How often each site's history is pulled besides after each reconnection of its link, and how long one pull may hold its lock (protocol §13.5). */
  siteSyncIntervalMs: SITE_SYNC_DEFAULTS.intervalMs,
  siteSyncTimeoutMs: SITE_SYNC_DEFAULTS.timeoutMs,
} as const;

export interface RouterOptions {
  /** The router's client id (its MQTT session is kept under it). Default `relais-router`. */
  id?: string;
  /** Broker URL, when not in-process. */
  broker?: string;
  /** An in-process connection to the embedded broker (`() => broker.connectInProcess()`). */
  stream?: () => Duplex;
  username?: string;
  password?: string;
  tls?: ConnectOptions['tls'];
  /**
   * The SQLite file of the default stores (its directory is created): the history in it, the
   * event log in `events.db` beside it; `:memory:` keeps nothing. Needed unless both stores
   * below are given.
   */
  database?: string;
  /**
   * Where the history is kept (protocol §11.1): any `HistoryStore` (one that passes
   * `historyStoreContract()`). Default: SQLite in `database`. A store given here is its giver's:
   * the router does not close it.
   */
  historyStore?: HistoryStore;
  /** Where the event stream is kept (protocol §11.8): any `EventLog`. Default: SQLite in `events.db` beside `database`. Not closed by the router either. */
  eventLog?: EventLog;
  /**
   * Both stores in a database several routers share (protocol §11.8), instead of `database`:
   * a `postgres://` (or `postgresql://`) URL. Each router keeps its own `id`; each row and event
   * is stored once whichever router sees it. Opened and closed by the router.
   */
  store?: string;
  /**
   * Where the key-value store is kept (protocol §14): any `KvStore`. Default: SQLite in
   * `database` (its own tables), PostgreSQL with `store`, memory when only the two stores above
   * are given. A store given here is its giver's: the router does not close it.
   */
  kvStore?: KvStore;
  /** The key-value store's buckets: their settings, and whether a put makes a bucket (protocol §14.2). */
  kv?: KvConfig;
  maxDataBytes?: number;
  retention?: Partial<HistoryRetention>;
  pruneEveryMs?: number;
  pruneBatch?: number;
  metricsEveryMs?: number;
  /**
   * Keep the router's MQTT session at the broker across its restarts (protocol §11). Default
   * true. Off inside `relais start`, where the router restarts only with its broker, and where
   * Aedes's persistent sessions meet a race (a PUBACK for a message its queue has not stored
   * yet drops the connection).
   */
  persistentSession?: boolean;
  /** Events kept for resuming consumers. Default 100,000. */
  maxEvents?: number;
  /**
   * The site name of this router's `relais start` (protocol §13; default `central`): the id of
   * the client that pulls the sites' histories, and the one site it never pulls.
   */
  site?: string;
  /** How often each site's history is pulled (ms), besides after each reconnection of its link (protocol §13.5). Default 60 s. */
  siteSyncIntervalMs?: number;
  /** How long one pull of a site's history may hold the site's lock (ms); it goes on from its position next time. Default 60 s. */
  siteSyncTimeoutMs?: number;
  /** Client ids allowed to kill anyone's request (protocol §11.5); by default only a request's requester may. */
  admins?: readonly string[];
  /** Who else may kill a request (protocol §11.5): its requester's identity (the default), or anyone (a bus without security). */
  killBy?: KillBy;
  /**
   * With security on, who reads which history rows (protocol §11.2, docs/security.md "History
   * privacy"): the identities file and policy the broker enforces, and the delegates that ask on
   * behalf of an identity (the HTTP API). Absent (security off): every client reads every row.
   */
  access?: HistoryAccessOptions;
  logger?: Logger;
}

export interface Router {
  readonly bus: Bus;
  readonly historyStore: HistoryStore;
  readonly eventLog: EventLog;
  readonly kvStore: KvStore;
  readonly recorder: Recorder;
  readonly metrics: Metrics;
  readonly registry: Registry;
  /** The pull of the sites' histories (protocol §13.5). */
  readonly siteSync: SiteSync;
  /** Applies the retention now (it also runs every `pruneEveryMs`); resolves with how many rows and events it removed. */
  prune(): Promise<{ history: number; events: number }>;
  /** Stores what is buffered, stops serving and recording, closes the stores it opened (not those it was given). */
  close(): Promise<void>;
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const baseLogger = options.logger ?? pino({ name: 'relais-router', level: process.env.RELAIS_LOG_LEVEL ?? 'info' });
  // Every part logs through the bus's logger once it is connected: its lines are kept for
  // `relais logs relais-router` (protocol §11.4); before that, through the given one.
  const late = lateLogger(baseLogger);
  const logger = late.logger;
  const retention = { ...ROUTER_DEFAULTS.retention, ...options.retention };
  const maxDataBytes = options.maxDataBytes ?? ROUTER_DEFAULTS.maxDataBytes;
  const badSite = checkSiteName(options.site ?? ROUTER_DEFAULTS.site);
  if (badSite) throw new TypeError(badSite);
  const access = new HistoryAccess(options.access, logger); // first: a bad identities or policy file stops here
  const stores = await openStores(options, logger);
  const { historyStore, eventLog, kvStore } = stores;
  const recorder = new Recorder(historyStore, { maxDataBytes, maxBatch: ROUTER_DEFAULTS.maxBatch, logger, delegates: access.delegates });
  const metrics = new Metrics();
  const recentSnapshots = new RecentSnapshots();
  // What the router saw, not only what it stored first: routers sharing a store answer the same figures.
  recorder.watchSeen(metrics.onRows);
  const events = new EventStream(eventLog, { maxDataBytes, logger });
  recorder.watchSeen(events.onRows);
  const routerId = options.id ?? ROUTER_DEFAULTS.id;
  // Every change is an event in the one stream (protocol §14.7): never the value.
  const kv = new KvService(kvStore, access, {
    logger,
    config: options.kv,
    routerId,
    onChange: (entry) => events.onKv(kvEventType(entry.operation), { bucket: entry.bucket, key: entry.key, revision: entry.revision, author: entry.author, operation: entry.operation }),
  });
  const feed = new BrokerFeed({ id: routerId, recorder, events, historyStore, logger });
  let bus: Bus | undefined;
  const services: Registration[] = [];
  let pruner: NodeJS.Timeout | undefined;
  let publisher: NodeJS.Timeout | undefined;
  let registry: Registry | undefined;
  const ownSite = options.site ?? ROUTER_DEFAULTS.site;
  const sites = new SiteWatch(logger);
  let siteSync: SiteSync | undefined;
  /** The client that asks the sites' routers, under the site name (protocol §13.5): opened on the first sync. */
  let asker: Promise<Bus> | undefined;
  let pruneAll = async () => ({ history: 0, events: 0 });

  const close = async () => {
    if (pruner) clearInterval(pruner);
    if (publisher) clearInterval(publisher);
    await siteSync?.close();
    await asker?.then((client) => client.close()).catch(() => {});
    await sites.close();
    await registry?.close();
    kv.close();
    await Promise.all(services.map((service) => service.close()));
    await events.flush(); // pushed while the connection is still there
    await bus?.close();
    events.stopPushing(); // what came in meanwhile is stored, for a replay
    await Promise.all([recorder.flush(), events.flush()]);
    // What still waits for a refused store goes with the router: no retry after the files close.
    recorder.close();
    events.close();
    await stores.close();
  };
  try {
    bus = await connect({
      id: routerId,
      ...(options.broker !== undefined && { broker: options.broker }),
      ...(options.stream && { stream: options.stream }),
      ...(options.username !== undefined && { username: options.username }),
      ...(options.password !== undefined && { password: options.password }),
      ...(options.tls && { tls: options.tls }),
      // What is published at QoS 1 while the router restarts is delivered when it is back (protocol §11.1).
      persistentSession: options.persistentSession ?? true,
      realtimeLane: false,
      logger: baseLogger,
      info: { role: 'router' },
      // Before the connection opens: what the broker kept for the router's session comes first.
      subscriptions: [
        {
          filter: '#',
          callback: (message) => {
            // Whatever a client sends says it is there: the registry's "last seen" (protocol §11.3).
            registry?.seen(message.envelope.source);
            if (feed.onMessage(message)) return;
            recorder.onMessage(message);
            events.onMessage(message);
          },
          qos: 1,
          // Standard MQTT clients publish plain payloads on the same broker: not a mistake, and a
          // warning per message would fill the router's kept lines (protocol §5.2, §11.4).
          invalidLog: 'debug',
        },
      ],
    });
    late.switchTo(bus.logger);
    await feed.start(bus);
    services.push(...(await serveHistory(bus, historyStore, recorder, access, { maxDataBytes })));
    services.push(...(await kv.serve(bus)));
    services.push(await serveMetrics(bus, () => metrics.latest, recentSnapshots));
    services.push(await serveKill(bus, historyStore, recorder, access, { admins: options.admins ?? [], killBy: options.killBy ?? 'identity', onRefused: metrics.refuse }));
    await sites.start(bus);
    sites.watch((change) => {
      // A link seen changing (not a retained copy read at start): an event for every screen.
      if (change.kind !== 'status' || change.retained || !change.after || change.after.status === change.before?.status) return;
      const { site, status, mode, since } = change.after;
      if (status === 'up') logger.info({ site, mode }, `sites: the link to ${site} is up`);
      else logger.warn({ site, mode, ...(since !== undefined && { since: new Date(since).toISOString() }) }, `sites: the link to ${site} is down`);
      events.onSite(status === 'up' ? 'site.up' : 'site.down', { site, mode, ...(since !== undefined && { since }) });
    });
    registry = await startRegistry(bus, { logger, sites });
    services.push(await events.serve(bus));
    siteSync = new SiteSync({
      store: historyStore,
      sites,
      ownSite,
      asker: () =>
        (asker ??= connect({
          id: ownSite,
          ...(options.broker !== undefined && { broker: options.broker }),
          ...(options.stream && { stream: options.stream }),
          ...(options.username !== undefined && { username: options.username }),
          ...(options.password !== undefined && { password: options.password }),
          ...(options.tls && { tls: options.tls }),
          realtimeLane: false,
          // Its own client, with its own kept lines: not also kept in the router's.
          logger: baseLogger,
        }).catch((error: unknown) => {
          asker = undefined; // tried again at the next sync
          throw error;
        })),
      onSync: (event) => events.onSite('site.sync', { ...event }),
      logger,
      intervalMs: options.siteSyncIntervalMs ?? ROUTER_DEFAULTS.siteSyncIntervalMs,
      timeoutMs: options.siteSyncTimeoutMs ?? ROUTER_DEFAULTS.siteSyncTimeoutMs,
    });
    const syncing = siteSync;
    services.push(await serveSites(bus, ownSite, sites, () => syncing.states()));
    const connected = bus;
    publisher = setInterval(() => {
      const snapshot = metrics.roll();
      recentSnapshots.add(snapshot);
      try {
        connected.notify(METRICS_CATEGORY, snapshot);
      } catch (error) {
        logger.warn({ err: (error as Error).message }, 'metrics not published');
      }
    }, options.metricsEveryMs ?? ROUTER_DEFAULTS.metricsEveryMs);
    publisher.unref();
    const pruneBatch = options.pruneBatch ?? ROUTER_DEFAULTS.pruneBatch;
    const maxEvents = options.maxEvents ?? ROUTER_DEFAULTS.maxEvents;
    pruneAll = async () => {
      const [history, events] = await Promise.all([
        pruneInSteps(() => historyStore.prune(retention, Date.now(), pruneBatch), pruneBatch, logger, 'history'),
        pruneInSteps(() => eventLog.prune(maxEvents, pruneBatch), pruneBatch, logger, 'events'),
      ]);
      return { history, events };
    };
    pruner = setInterval(() => void pruneAll(), options.pruneEveryMs ?? ROUTER_DEFAULTS.pruneEveryMs);
    pruner.unref();
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
  return { bus, historyStore, eventLog, kvStore, recorder, metrics, registry: registry!, siteSync: siteSync!, prune: () => pruneAll(), close };
}

interface OpenedStores {
  historyStore: HistoryStore;
  eventLog: EventLog;
  kvStore: KvStore;
  /** Closes the stores the router opened (not those it was given). */
  close(): Promise<void>;
}

/**
 * The stores given; else both in PostgreSQL when `store` is a postgres:// URL (routers on several
 * nodes share it, protocol §11.8); else SQLite ones in `database` for those not given.
 */
async function openStores(options: Pick<RouterOptions, 'database' | 'historyStore' | 'eventLog' | 'kvStore' | 'store'>, logger: Logger): Promise<OpenedStores> {
  if (options.store !== undefined) {
    if (options.historyStore || options.eventLog || options.kvStore) throw new TypeError('the router takes a store URL or stores, not both');
    return openSharedStores(options.store, logger);
  }
  const opened: Array<HistoryStore | EventLog | KvStore> = [];
  const close = async () => {
    await Promise.all(opened.map((store) => store.close()));
  };
  let { historyStore, eventLog, kvStore } = options;
  try {
    if (!historyStore || !eventLog) {
      const { database } = options;
      if (database === undefined) throw new TypeError('the router needs a database file, or both a historyStore and an eventLog');
      if (database !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(database)), { recursive: true });
      if (!historyStore) opened.push((historyStore = new SqliteHistoryStore(database)));
      if (!eventLog) opened.push((eventLog = new SqliteEventLog(database === ':memory:' ? ':memory:' : eventsFile(database))));
    }
    // The key-value store's tables live in the history's file (protocol §14); without a file, in memory.
    if (!kvStore) opened.push((kvStore = options.database !== undefined ? new SqliteKvStore(options.database) : new MemoryKvStore()));
  } catch (error) {
    await close();
    throw error;
  }
  return { historyStore, eventLog, kvStore, close };
}

/** `history.db` → `events.db` beside it. */
function eventsFile(database: string): string {
  return path.join(path.dirname(path.resolve(database)), 'events.db');
}

/** One small delete per turn until `removeBatch` removes less than `batch`: recording goes on in between. Resolves with the count removed. */
async function pruneInSteps(removeBatch: () => Promise<number>, batch: number, logger: Logger, what: string): Promise<number> {
  let removed = 0;
  for (;;) {
    let n: number;
    try {
      n = await removeBatch();
    } catch (error) {
      logger.error({ err: (error as Error).message }, `${what}: pruning failed`);
      return removed;
    }
    removed += n;
    if (n < batch) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (removed > 0) logger.info({ removed }, `${what}: old rows pruned`);
  return removed;
}
