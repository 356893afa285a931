/**
 * The router's parts are made before its bus connects (the stores and the recorder must be
 * there when the broker delivers what it kept for the router's session, protocol §11.1), but
 * only the bus's logger keeps lines for `relais logs relais-router` (protocol §11.4). So they
 * are given this logger: it writes through the first one until `switchTo(bus.logger)`, then
 * through that one. A log call costs one bound method more (the router logs rarely).
 */
import type { Logger } from 'pino';

export interface LateLogger {
  readonly logger: Logger;
  switchTo(next: Logger): void;
}

export function lateLogger(first: Logger): LateLogger {
  let current = first;
  const logger = new Proxy(first, {
    get(_first, key) {
      const value: unknown = Reflect.get(current, key, current);
      // pino's methods read their state from `this`: the logger written through now.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(current) : value;
    },
    set(_first, key, value) {
      return Reflect.set(current, key, value, current);
    },
  });
  return {
    logger,
    switchTo(next) {
      current = next;
    },
  };
}
