/**
 * The library as users run it: the compiled `dist/` (`npm run bench` builds it first), not
 * `src/` through tsx, whose transpiled output adds a `__name()` call to many functions (about
 * 6 % of a client's CPU in a profile). Types come from `src/`, which `dist/` is built from.
 */
import type * as Relais from '../../src/index.js';

const compiled = new URL('../../dist/index.js', import.meta.url).href;
export const relais = (await import(compiled)) as typeof Relais;
