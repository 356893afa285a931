/**
 * The key of a `client` event (protocol §11.8): what makes it the same event whichever router's
 * registry published the change (each router's registry publishes its own detail notification,
 * and every router sees them all). A client's id, its status and its presence's `since` (when
 * its instance started: the same for every router, where `lastSeen` or `connectedSince` are each
 * router's own clock). A status the client comes back to without a new presence (alive again
 * once its site's link is back, protocol §13.5) follows an `unknown` whose reason names when
 * the link went down: that reason is part of its key, so that each return is its own event.
 */
export interface ClientChange {
  status: string;
  since?: number;
  reason?: string;
}

/** Clients whose last status is remembered; past this, the oldest are forgotten. */
const MAX_CLIENTS = 100_000;

export class ClientEventKeys {
  private readonly last = new Map<string, { status: string; since?: number; reason?: string; key: string }>();

  /** The key of `id`'s change, or undefined when it has no `since` to key it by (never a repeat then). */
  keyOf(id: string, change: ClientChange): string | undefined {
    const before = this.last.get(id);
    // The same status again (another router's registry publishing the same change): the same event.
    if (before && before.status === change.status && before.since === change.since && before.reason === change.reason) return before.key;
    // A forgotten client (no detail) is keyed by the instance it was.
    const since = change.since ?? before?.since;
    if (since === undefined) {
      this.last.delete(id);
      return undefined;
    }
    const after = before?.status === 'unknown' ? `\n${before.reason ?? ''}` : '';
    const key = `client\n${id}\n${change.status}\n${since}\n${change.reason ?? ''}${after}`;
    this.last.delete(id);
    if (this.last.size >= MAX_CLIENTS) this.last.delete(this.last.keys().next().value!);
    this.last.set(id, { status: change.status, ...(change.since !== undefined && { since: change.since }), ...(change.reason !== undefined && { reason: change.reason }), key });
    return key;
  }
}
