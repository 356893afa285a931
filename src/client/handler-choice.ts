/**
 * Which alive client gets a request sent without a target (protocol §4.6): the one with the
 * fewest requests pending from this client, taking turns among equals. A client that did not
 * acknowledge in time is passed over (protocol §4.7) until its presence changes or a while
 * has passed, unless nobody else serves the action.
 */
import type { Directory } from './directory.js';

interface Suspicion {
  seq: number | undefined;
  since: number | undefined;
  until: number;
}

export class HandlerChoice {
  private rotation = 0;
  private readonly suspects = new Map<string, Suspicion>();

  constructor(private readonly directory: Directory) {}

  /**
   * The provider to use, or undefined when the directory knows none outside `exclude`.
   * `loads()` tells the requests pending per handler; it is asked only when there is a choice.
   */
  pick(action: string, loads: () => ReadonlyMap<string, number>, exclude?: ReadonlySet<string> | undefined): string | undefined {
    const providers = this.directory.providers(action);
    if (providers.size <= 1 && !exclude?.size) return providers.values().next().value;
    const candidates = [...providers].filter((id) => !exclude?.has(id));
    if (candidates.length <= 1) return candidates[0];
    const healthy = candidates.filter((id) => !this.isSuspect(id));
    const pool = healthy.length > 0 ? healthy : candidates;
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

  /** `id` did not acknowledge: pass it over for `ms`, or until it publishes a new presence. */
  suspect(id: string, ms: number, now = Date.now()): void {
    const info = this.directory.get(id);
    this.suspects.set(id, { seq: info?.seq, since: info?.since, until: now + ms });
  }

  /** `id` answered something: it is alive. */
  clear(id: string): void {
    this.suspects.delete(id);
  }

  isSuspect(id: string, now = Date.now()): boolean {
    const suspicion = this.suspects.get(id);
    if (!suspicion) return false;
    const info = this.directory.get(id);
    if (now >= suspicion.until || info?.seq !== suspicion.seq || info?.since !== suspicion.since) {
      this.suspects.delete(id);
      return false;
    }
    return true;
  }
}
