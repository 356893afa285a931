/**
 * `relais/browser`: the client library in a web page, over MQTT over WebSocket (protocol §1.1).
 * The same `connect()`, Bus and errors as `relais`, made of the same code: only the runtime
 * differs (src/client/browser-runtime.ts). What needs Node is not here: TLS files, Unix
 * sockets and streams, logs on demand, signed envelopes, the embedded broker (docs/browser.md).
 */
import type { Bus } from './client/bus.js';
import { browserRuntime } from './client/browser-runtime.js';
import { openBus } from './client/open.js';
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
  if (options.broker !== undefined) {
    let scheme = '';
    try {
      scheme = new URL(options.broker).protocol;
    } catch {
      // Said below without the URL, which may hold a password.
    }
    if (!BROWSER_SCHEMES.has(scheme)) throw new TypeError('in a browser the broker URL must be ws:// or wss:// (MQTT over WebSocket); it is not repeated here as it may hold a password');
  }
  if (options.tls || options.stream) throw new TypeError('tls and stream are Node options: in a browser, the WebSocket of a wss:// URL uses the browser\'s TLS');
  return openBus(options, browserRuntime);
}
