/**
 * Which alive client gets a request sent without a target (protocol §4.6): the one with the
 * fewest requests pending from this client, taking turns among equals. A client of a site whose
 * link is down is passed over while another provider can be reached (protocol §13.4); a
 * suspected client (failure-detector.ts: it did not answer within its deadline lately) while
 * another provider is not suspected (protocol §4.7); both stay in the directory.
 */
import type { Directory, SiteDirectory } from '../presence/index.js';
import type { FailureDetector } from './failure-detector.js';

export class HandlerChoice {
  private rotation = 0;

  constructor(
    private readonly directory: Directory,
    private readonly detector: FailureDetector,
    private readonly sites?: SiteDirectory,
  ) {}

  /**
   * The provider to use, or undefined when the directory knows none outside `exclude` (none
   * that is not suspected, with `unsuspectedOnly`). `loads()` tells the requests pending per
   * handler; it is asked only when there is a choice.
   */
  pick(action: string, loads: () => ReadonlyMap<string, number>, exclude?: ReadonlySet<string> | undefined, unsuspectedOnly = false): string | undefined {
    const providers = this.directory.providers(action);
    if (providers.size <= 1 && !exclude?.size && !unsuspectedOnly) return providers.values().next().value;
    let candidates = [...providers].filter((id) => !exclude?.has(id));
    if (this.sites?.anyDown) {
      const reachable = candidates.filter((id) => !this.sites!.down(id));
      if (reachable.length > 0) candidates = reachable;
    }
    const now = Date.now();
    const unsuspected = candidates.filter((id) => !this.detector.isSuspected(id, now));
    const pool = unsuspected.length > 0 || unsuspectedOnly ? unsuspected : candidates;
    if (pool.length <= 1) return pool[0];
    const load = loads();
    const first = this.rotation++ % pool.length;
    let best: string | undefined;
    let bestLoad = Infinity;
    for (let i = 0; i < pool.length; i++) {
      const id = pool[(first + i) % pool.length]!;
      const pending = load.get(id) ?? 0;
      if (pending < bestLoad) {
        best = id;
        bestLoad = pending;
      }
    }
    return best;
  }
}
