/** What every entry point's `connect()` does, given its runtime (src/client/runtime.ts). */
import { checkClientId } from '../protocol/topics.js';
import { Bus } from './bus.js';
import { checkOptions, resolveOptions } from './options.js';
import type { Runtime } from './runtime.js';
import type { ConnectOptions } from './types.js';

/** Connects to the broker; resolves once connected and the directory of handlers is loaded. */
export async function openBus(options: ConnectOptions, runtime: Runtime): Promise<Bus> {
  const problem = checkClientId(options.id);
  if (problem) throw new TypeError(problem);
  const resolved = resolveOptions(options, runtime);
  const badOption = checkOptions(resolved);
  if (badOption) throw new TypeError(badOption);
  const bus = new Bus(resolved, runtime);
  try {
    await bus.ready;
  } catch (error) {
    await bus.close();
    throw error;
  }
  return bus;
}
