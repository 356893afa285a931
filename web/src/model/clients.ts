/**
 * The client registry as the page sees it (protocol §11.3): subscribe to the detail
 * notifications first, then ask for every client's detail (every page), and apply the
 * notifications whose revision is larger than the first page's.
 */
import { notificationTopic, NotAuthorizedError, readAllPages, REGISTRY_ACTIONS, REGISTRY_CATEGORIES, type Bus, type ClientDetail, type ClientDetailChanges, type ClientDetailPayload } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from './query.js';
import { Store } from '../ui/store.js';

export interface ClientsState {
  clients: Record<string, ClientDetail>;
  revision: number;
  /** Set when the registry could not be read (no router, or the policy). */
  problem?: string;
  loaded: boolean;
}

export async function watchClients(bus: Bus): Promise<Store<ClientsState>> {
  const store = new Store<ClientsState>({ clients: {}, revision: -1, loaded: false });
  const early: ClientDetailChanges[] = [];
  const apply = (changes: ClientDetailChanges) => {
    const state = store.value;
    if (!state.loaded) return void early.push(changes);
    if (changes.revision <= state.revision) return;
    const clients = { ...state.clients };
    for (const [id, detail] of Object.entries(changes.clients)) {
      if (detail === null) delete clients[id];
      else clients[id] = detail;
    }
    store.set({ ...state, clients, revision: changes.revision });
  };
  const granted = await bus
    .subscribe(notificationTopic(REGISTRY_CATEGORIES.detail), ({ envelope }) => {
      const payload = envelope.type === 'notification' ? (envelope.payload as ClientDetailChanges | null) : null;
      if (payload && typeof payload.revision === 'number' && payload.clients) apply(payload);
    })
    .then(
      () => true,
      (error: unknown) => {
        if (error instanceof NotAuthorizedError) return false;
        throw error;
      },
    );
  const load = async () => {
    try {
      const answer = await readAllPages((page) => bus.request<ClientDetailPayload>(REGISTRY_ACTIONS.detailGet, page, { timeout: QUERY_TIMEOUT_MS }));
      store.set({ clients: answer.clients, revision: answer.revision, loaded: true });
      for (const changes of early.splice(0)) apply(changes);
    } catch (error) {
      store.set({ ...store.value, loaded: true, problem: `could not read the client registry (${REGISTRY_ACTIONS.detailGet}): ${(error as Error).message}` });
    }
  };
  if (!granted) store.set({ ...store.value, problem: 'the policy does not let this identity follow the client registry; the list is not live' });
  // Not awaited: the page shows itself at once, and the list when it comes.
  void load();
  // Notifications published while the connection was down are lost: read the whole list again.
  bus.on('online', () => {
    store.set({ ...store.value, loaded: false });
    void load();
  });
  return store;
}
