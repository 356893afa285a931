/**
 * The client in a web page (src/client/runtime.ts): the broker is the `/mqtt` WebSocket beside
 * the page, and pino's browser build logs to the console. A page has no host or pid to
 * announce, keeps no logs for `relais logs` (protocol §11.4) and signs nothing (protocol §12).
 */
import pino from 'pino';
import type { Runtime } from './runtime.js';

/** What `pageBrokerUrl` reads of a page's `location` (the library is typed without the DOM's). */
export interface PageLocation {
  protocol: string;
  host: string;
  pathname: string;
}

/**
 * The bus's WebSocket beside a page: `/mqtt` in the page's folder, on its own origin, `wss:`
 * for an `https:` page (docs/web.md). Never taken from the page's query or hash: a link could
 * otherwise send a user's token to another server.
 */
export function pageBrokerUrl(location: PageLocation): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const folder = location.pathname.replace(/[^/]*$/, '');
  return `${scheme}//${location.host}${folder}mqtt`;
}

export const browserRuntime: Runtime = {
  defaultBroker: () => {
    const location = (globalThis as { location?: PageLocation }).location;
    if (!location) throw new TypeError('broker is needed outside a web page: give the ws:// or wss:// URL of the bus');
    return pageBrokerUrl(location);
  },
  defaultLogger: () => pino({ name: 'relais', level: 'warn' }),
  hostFacts: () => ({}),
};
