/**
 * Logging in: anonymous first (a broker without security lets the page in as is), the form
 * when the broker refuses the credentials (CONNACK 4 or 5). The identity and token are kept in
 * sessionStorage (this tab only, gone when it closes) so that a reload does not ask again;
 * never in the page. The page is a client of the bus through `relais/browser`, as any UI is
 * (docs/browser.md).
 */
import { connect, NotAuthorizedError, pageBrokerUrl, sessionClientId, type Bus } from 'relais/browser';
import { watchClients, type ClientsState } from './model/clients.js';
import { watchConnection, type ConnectionState } from './model/connection.js';
import { watchEvents, type EventsModel } from './model/events.js';
import { watchMetrics, type MetricsState } from './model/metrics.js';
import { watchSites, type SitesState } from './model/sites.js';
import type { Store } from './ui/store.js';

const CREDENTIALS_KEY = 'relais.credentials';
/** How long the page waits for the bus to answer a connect. */
const CONNECT_TIMEOUT_MS = 10_000;

export interface Credentials {
  identity: string;
  token: string;
}

export interface Session {
  bus: Bus;
  url: string;
  /** Who the page is logged in as; undefined on a bus without security. */
  identity?: string;
  connection: Store<ConnectionState>;
  clients: Store<ClientsState>;
  events: EventsModel;
  metrics: Store<MetricsState>;
  sites: Store<SitesState>;
  /** Ends what follows the bus (the event stream) before the bus closes. */
  stopping: AbortController;
}

export type Opening = { session: Session } | { login: string };

export async function openSession(credentials?: Credentials): Promise<Opening> {
  // The page's own `/mqtt`, never an address taken from the page's URL (docs/web.md).
  const url = pageBrokerUrl(window.location);
  const given = credentials ?? storedCredentials();
  try {
    const bus = await connect({
      // Each tab is a session of the identity, `<identity>~web-<random>` (protocol §2.1): two tabs,
      // or the page beside a CLI of the same identity, do not take each other's place (§7.5).
      id: given ? sessionClientId(given.identity, tabSession()) : anonymousId(),
      broker: url,
      ...(given && { username: given.identity, password: given.token }),
      connectTimeout: CONNECT_TIMEOUT_MS,
      // One WebSocket per tab, and no trace in the directory once the tab is gone (protocol §7).
      realtimeLane: false,
      ephemeral: true,
      info: { app: 'relais-web', program: 'web page' },
    });
    if (credentials) sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(credentials));
    const stopping = new AbortController();
    const [clients, events, metrics] = await Promise.all([watchClients(bus), watchEvents(bus, stopping.signal), watchMetrics(bus)]);
    return { session: { bus, url, ...(given && { identity: given.identity }), connection: watchConnection(bus), clients, events, metrics, sites: watchSites(bus, stopping.signal), stopping } };
  } catch (error) {
    if (error instanceof NotAuthorizedError) {
      sessionStorage.removeItem(CREDENTIALS_KEY);
      return { login: given ? `${refusal(error)}.` : 'This bus needs an identity and a token.' };
    }
    throw error;
  }
}

export function logOut(session: Session): void {
  sessionStorage.removeItem(CREDENTIALS_KEY);
  session.stopping.abort();
  session.connection.set('closed');
  void session.bus.close();
}

/** The broker's reason, from the CONNACK's return code (protocol §1.1). */
function refusal(error: NotAuthorizedError): string {
  const returnCode = (error.details as { returnCode?: number } | undefined)?.returnCode;
  return returnCode === 5 ? 'this identity is not authorised to connect' : 'the broker refused the identity or token';
}

/**
 * A session name for this page load: random, not kept (a duplicated tab copies sessionStorage,
 * and would take the first tab's place); a reload's old connection closes with the page.
 */
function tabSession(): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `web-${random[0]!.toString(36)}${random[1]!.toString(36)}`;
}

/** A client id for a page on a bus without security. */
function anonymousId(): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `web-${random[0]!.toString(36)}${random[1]!.toString(36)}`;
}

function storedCredentials(): Credentials | undefined {
  try {
    const stored = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) ?? 'null') as Credentials | null;
    return stored && typeof stored.identity === 'string' && typeof stored.token === 'string' ? stored : undefined;
  } catch {
    return undefined;
  }
}
