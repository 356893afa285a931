export { connect, Bus } from './bus.js';
export { DEFAULTS } from './options.js';
export type * from './types.js';
