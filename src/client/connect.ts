/** `connect()`: the library's entry point. */
import { checkClientId } from '../protocol/topics.js';
import { Bus } from './bus.js';
import { checkOptions, resolveOptions } from './options.js';
import type { ConnectOptions } from './types.js';

/** Connects to the broker; resolves once connected and the directory of handlers is loaded. */
export async function connect(options: ConnectOptions): Promise<Bus> {
  const problem = checkClientId(options.id);
  if (problem) throw new TypeError(problem);
  const resolved = resolveOptions(options);
  const badOption = checkOptions(resolved);
  if (badOption) throw new TypeError(badOption);
  const bus = new Bus(resolved);
  try {
    await bus.ready;
  } catch (error) {
    await bus.close();
    throw error;
  }
  return bus;
}
