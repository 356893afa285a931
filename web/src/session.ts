/**
 * Logging in: anonymous first (a broker without security lets the page in as is), the form
 * when the broker answers CONNACK 4 or 5. The identity and token are kept in sessionStorage
 * (this tab only, gone when it closes) so that a reload does not ask again; never in the page.
 */
import { connectBus, ConnectRefusedError, defaultBrokerUrl, type Bus, type Credentials } from './bus/bus.js';
import { watchClients, type ClientsState } from './model/clients.js';
import { watchEvents, type EventsModel } from './model/events.js';
import { watchMetrics, type MetricsState } from './model/metrics.js';
import type { Store } from './ui/store.js';

const CREDENTIALS_KEY = 'relais.credentials';

export interface Session {
  bus: Bus;
  url: string;
  clients: Store<ClientsState>;
  events: EventsModel;
  metrics: Store<MetricsState>;
}

export type Opening = { session: Session } | { login: string };

export async function openSession(credentials?: Credentials): Promise<Opening> {
  const url = defaultBrokerUrl(window.location);
  const given = credentials ?? storedCredentials();
  try {
    const bus = await connectBus(url, given);
    if (credentials) sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(credentials));
    const [clients, events, metrics] = await Promise.all([watchClients(bus), watchEvents(bus), watchMetrics(bus)]);
    return { session: { bus, url, clients, events, metrics } };
  } catch (error) {
    if (error instanceof ConnectRefusedError && (error.returnCode === 4 || error.returnCode === 5)) {
      sessionStorage.removeItem(CREDENTIALS_KEY);
      return { login: given ? `${error.message}.` : 'This bus needs an identity and a token.' };
    }
    throw error;
  }
}

export function logOut(session: Session): void {
  sessionStorage.removeItem(CREDENTIALS_KEY);
  session.bus.close();
}

function storedCredentials(): Credentials | undefined {
  try {
    const stored = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) ?? 'null') as Credentials | null;
    return stored && typeof stored.identity === 'string' && typeof stored.token === 'string' ? stored : undefined;
  } catch {
    return undefined;
  }
}
