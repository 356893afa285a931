/**
 * The client registry (protocol §11.3; Domogik MQ's manager): who is on the bus, with which
 * status (`starting`, `alive`, `stopped`, `dead`, `unknown`), where, and serving what, from the
 * retained presences (protocol §7.1). It answers `relais/clients/list/get` and
 * `relais/clients/detail/get`, and publishes `relais/clients/list` and `relais/clients/detail`
 * notifications on every change, coalesced. It uses the public library only, as any program.
 */
import type { Logger } from 'pino';
import { PRESENCE_FILTER } from '../protocol/topics.js';
import {
  parseDetailRequest,
  parseListRequest,
  REGISTRY_ACTIONS,
  REGISTRY_CATEGORIES,
  registryAnswerBytes,
  UnknownClientError,
  type ClientDetail,
  type ClientDetailPayload,
  type ClientListPayload,
} from '../protocol/registry.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/envelope.js';
import { parseTopic, type Bus, type Delivery, type Registration } from '../index.js';
import { Coalescer } from './coalescer.js';
import { ClientTable, type PresenceReading } from './registry-table.js';
import type { KnownStatus, SiteWatch } from './site-watch.js';

export interface RegistryOptions {
  /** Where the registry logs. Default: the bus's logger. */
  logger?: Logger;
  /**
   * Least time between two notifications, in ms (protocol §11.3): changes within it go out
   * together, in one list and one detail notification. Default 250.
   */
  notifyInterval?: number;
  /** The sites' links and rosters (protocol §13.5): their clients show `site`, and are `unknown` while their site's link is down. */
  sites?: SiteWatch;
  /**
   * The bus's `maxMessageBytes` (protocol §3.4): each answer is one page whose measured size
   * keeps its message under it. Default 1 MiB, the library's default.
   */
  maxMessageBytes?: number;
}

export const REGISTRY_DEFAULTS = { notifyInterval: 250 } as const;

export interface Registry {
  /** Every client, as the list notification carries it (`relais/clients/list/get` answers pages of it). */
  list(): ClientListPayload;
  /** Every client in detail, or only `id` (undefined if unknown), as `relais/clients/detail/get` with `id` answers it. */
  detail(id?: string): ClientDetailPayload | undefined;
  /** A message arrived from this client (its envelope's `source`): its `lastSeen` moves (protocol §11.3). */
  seen(id: string): void;
  /** Publishes what is pending, stops serving and stops reading presences. The bus stays open. */
  close(): Promise<void>;
}

export async function startRegistry(bus: Bus, options: RegistryOptions = {}): Promise<Registry> {
  const logger = options.logger ?? bus.logger;
  const notifyInterval = options.notifyInterval ?? REGISTRY_DEFAULTS.notifyInterval;
  if (!(notifyInterval >= 0 && notifyInterval <= 60_000)) throw new RangeError(`notifyInterval must be a number of ms from 0 to 60000, got ${notifyInterval}`);
  const table = new ClientTable();
  const answerBytes = registryAnswerBytes(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  const notifier = new Coalescer(notifyInterval, () => publishChanges(bus, table, logger, answerBytes));
  let closed = false;

  const onPresence = (delivery: Delivery) => {
    if (closed) return;
    const topic = parseTopic(delivery.topic);
    if (topic.kind !== 'presence') return;
    const id = topic.clientId;
    const before = table.details(id)?.clients[id]?.status;
    if (!table.apply(id, readingOf(delivery), Date.now())) return;
    notifier.changed();
    logChange(logger, id, before, table.details(id)?.clients[id], delivery);
  };
  // Invalid ones too: a cleared or broken presence of a known client makes it `unknown`.
  const subscription = await bus.subscribe(PRESENCE_FILTER, onPresence, { includeInvalid: true });
  // The retained presences reached the bus's directory before this subscription existed; what
  // arrives from now on comes here, and §7.1's ordering makes the overlap harmless.
  const startedAt = Date.now();
  for (const [id, info] of bus.directory.list()) table.apply(id, { kind: 'presence', payload: info }, startedAt, true);
  const { sites } = options;
  const stopWatchingSites = sites?.watch((change) => {
    if (closed) return;
    const changed = change.kind === 'roster' ? table.applyRoster(change.site, change.after?.clients ?? []) : table.applySiteLink(change.site, downSince(change.after));
    if (changed) notifier.changed();
  });
  for (const site of sites?.sites() ?? []) {
    table.applyRoster(site, sites!.roster(site)?.clients ?? []);
    table.applySiteLink(site, downSince(sites!.status(site)));
  }

  let registrations: Registration[] = [];
  try {
    registrations = await Promise.all([
      bus.handle(REGISTRY_ACTIONS.listGet, (payload: unknown) => {
        return table.listPage(parseListRequest(payload), answerBytes);
      }),
      bus.handle(REGISTRY_ACTIONS.detailGet, (payload: unknown) => {
        const { id, ...page } = parseDetailRequest(payload);
        if (id === undefined) return table.detailPage(page, answerBytes);
        const answer = table.details(id);
        if (!answer) throw new UnknownClientError(id);
        return answer;
      }),
    ]);
  } catch (error) {
    closed = true;
    stopWatchingSites?.();
    await Promise.all([subscription.unsubscribe(), ...registrations.map((registration) => registration.close())]);
    throw error;
  }
  if (table.size > 0) notifier.changed();
  logger.info({ clients: table.size, notifyInterval }, 'client registry started');

  return {
    list: () => table.list(),
    detail: (id) => table.details(id),
    seen: (id) => {
      if (!closed) table.seen(id, Date.now());
    },
    async close() {
      if (closed) return;
      closed = true;
      stopWatchingSites?.();
      notifier.flushNow();
      notifier.close();
      await Promise.all([subscription.unsubscribe(), ...registrations.map((registration) => registration.close())]);
    },
  };
}

/**
 * One line when a client comes, goes or changes status (protocol §11.3): at info for a lasting
 * client, at debug for a short-lived one (its presence says `ephemeral`: a one-shot CLI command
 * comes and goes with every command, and is forgotten when it leaves, protocol §7.1).
 */
function logChange(logger: Logger, id: string, before: ClientDetail['status'] | undefined, after: ClientDetail | undefined, delivery: Delivery): void {
  if (!after) {
    logger.debug({ client: id, was: before }, `registry: client ${id} forgotten (a short-lived client that left)`);
    return;
  }
  if (after.status === before) return;
  const ephemeral = 'envelope' in delivery && (delivery.envelope.payload as { ephemeral?: unknown } | null)?.ephemeral === true;
  const fields = { client: id, ...(before !== undefined && { was: before }), ...(after.reason !== undefined && { reason: after.reason }) };
  const line = `registry: client ${id} ${after.status}`;
  if (ephemeral) logger.debug(fields, line);
  else logger.info(fields, line);
}

/** Since when a link is down (its status's `since`, else when this router saw it), or undefined while it is up or unknown. */
function downSince(status: KnownStatus | undefined): number | undefined {
  return status?.status === 'down' ? (status.since ?? status.seenAt) : undefined;
}

function readingOf(delivery: Delivery): PresenceReading {
  if ('envelope' in delivery) return { kind: 'presence', payload: delivery.envelope.payload };
  // An empty retained message clears a presence (protocol §7.1).
  return delivery.text === '' ? { kind: 'cleared' } : { kind: 'invalid', reason: delivery.invalid };
}

/** One list (every client) and one detail (the changed ones) notification, protocol §11.3. */
function publishChanges(bus: Bus, table: ClientTable, logger: Logger, answerBytes: number): void {
  const changes = table.takeChanges();
  if (!changes) return;
  // Each on its own, so that one failing does not hold back the other.
  notifyOrLog(bus, logger, REGISTRY_CATEGORIES.detail, changes, table.size);
  // The list's first page, as list/get answers `{}`: past ~7,400 clients the whole list outgrows the
  // message limit (protocol §3.4), and the page then says `total` and `next` (§11.3), never a silent cut.
  notifyOrLog(bus, logger, REGISTRY_CATEGORIES.list, table.listPage({}, answerBytes), table.size);
}

function notifyOrLog(bus: Bus, logger: Logger, category: string, payload: unknown, clients: number): void {
  try {
    bus.notify(category, payload);
  } catch (error) {
    // Too large (protocol §3.4) or the bus closing: readers can still ask; never crash the router.
    logger.error({ err: (error as Error).message, category, clients }, 'registry notification not sent');
  }
}
