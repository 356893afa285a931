/** `connect()`: the library's entry point in Node. */
import type { Bus } from './bus.js';
import { nodeRuntime } from './node-runtime.js';
import { openBus } from './open.js';
import type { ConnectOptions } from './types.js';

/** Connects to the broker; resolves once connected and the directory of handlers is loaded. */
export function connect(options: ConnectOptions): Promise<Bus> {
  return openBus(options, nodeRuntime);
}
