export { connect, Bus } from './bus.js';
export { DEFAULTS, checkTimeout, MAX_TIMER_MS } from './options.js';
export type * from './types.js';
