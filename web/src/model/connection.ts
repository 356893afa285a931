/** The page's connection as the header shows it, from the Bus's `offline` and `online` events; `closed` is set on log out. */
import type { Bus } from 'relais/browser';
import { Store } from '../ui/store.js';

export type ConnectionState = 'connected' | 'reconnecting' | 'closed';

export function watchConnection(bus: Bus): Store<ConnectionState> {
  const store = new Store<ConnectionState>(bus.connected ? 'connected' : 'reconnecting');
  bus.on('offline', () => store.value !== 'closed' && store.set('reconnecting'));
  bus.on('online', () => store.value !== 'closed' && store.set('connected'));
  return store;
}
