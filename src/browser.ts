/**
 * `relais/browser`: the client library in a web page, over MQTT over WebSocket (protocol §1.1).
 * The same `connect()`, Bus and errors as `relais`, made of the same code: only the runtime
 * differs (src/client/browser-runtime.ts). What needs Node is not here: TLS files, Unix
 * sockets and streams, logs on demand, signed envelopes, the embedded broker (docs/browser.md).
 */
import type { Bus } from './client/bus.js';
import { browserRuntime } from './client/browser-runtime.js';
import { openBus } from './client/open.js';
import { brokerUrls } from './client/options.js';
import type { ConnectOptions } from './client/types.js';

export * from './library.js';
export { pageBrokerUrl } from './client/browser-runtime.js';

const BROWSER_SCHEMES = new Set(['ws:', 'wss:']);

/**
 * Connects to the broker over a WebSocket; resolves once connected and the directory of
 * handlers is loaded. `broker` defaults to the `/mqtt` beside the page (`pageBrokerUrl`).
 * Rejects with `NotAuthorizedError` when the broker refuses the credentials.
 */
export async function connect(options: ConnectOptions): Promise<Bus> {
  if (options.broker !== undefined && !brokerUrls(options.broker).every(isWebSocketUrl)) {
    // Said without the URL, which may hold a password.
    throw new TypeError('in a browser the broker URL must be ws:// or wss:// (MQTT over WebSocket), each one of a list; it is not repeated here as it may hold a password');
  }
  if (options.tls || options.stream) throw new TypeError('tls and stream are Node options: in a browser, the WebSocket of a wss:// URL uses the browser\'s TLS');
  return openBus(options, browserRuntime);
}

function isWebSocketUrl(url: string): boolean {
  try {
    return BROWSER_SCHEMES.has(new URL(url).protocol);
  } catch {
    return false;
  }
}
