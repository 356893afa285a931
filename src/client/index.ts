export { Bus } from './bus.js';
export { connect } from './connect.js';
export { DEFAULTS, checkTimeout, MAX_TIMER_MS } from './options.js';
export type * from './types.js';
