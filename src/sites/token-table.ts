/**
 * The commands a link carried down, by (requester, token) (protocol §13.2): only their
 * responses go up and only their cancels go down. Bounded: each is forgotten after its
 * deadline + 60 s (10 min without one), and beyond REMEMBERED_REQUESTS.max the oldest is
 * forgotten first, counted.
 */
import { REMEMBERED_REQUESTS } from '../protocol/sites.js';

export interface RememberedRequest {
  action: string;
  /** Epoch ms after which it is forgotten. */
  until: number;
  /** Addressed to `site:<site>`: its responses come from the site's router and are re-addressed. */
  toSiteRouter: boolean;
}

export class TokenTable {
  private readonly entries = new Map<string, RememberedRequest>();
  /** Remembered commands per action: the site-side connection subscribes to the responses of these actions only. */
  private readonly perAction = new Map<string, number>();
  /** Actions whose last remembered command went since the last sweep. */
  private readonly emptied = new Set<string>();
  /** Forgotten before their time because the table was full. */
  forgottenEarly = 0;

  constructor(private readonly max: number = REMEMBERED_REQUESTS.max) {}

  get size(): number {
    return this.entries.size;
  }

  /** Remembers a command; true when it is the first of its action (its responses need a subscription). */
  remember(requester: string, token: string, request: RememberedRequest): { firstOfAction: boolean; forgotten?: RememberedRequest } {
    const key = keyOf(requester, token);
    const previous = this.entries.get(key);
    if (previous) this.drop(key, previous);
    let forgotten: RememberedRequest | undefined;
    if (this.entries.size >= this.max) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, RememberedRequest];
      this.drop(oldestKey, oldest);
      this.forgottenEarly += 1;
      forgotten = oldest;
    }
    this.entries.set(key, request);
    const count = (this.perAction.get(request.action) ?? 0) + 1;
    this.perAction.set(request.action, count);
    return { firstOfAction: count === 1, ...(forgotten && { forgotten }) };
  }

  get(requester: string, token: string): RememberedRequest | undefined {
    return this.entries.get(keyOf(requester, token));
  }

  /** Forgets what is past its time; returns the actions no remembered command has any more. */
  sweep(now: number): string[] {
    for (const [key, request] of this.entries) if (request.until <= now) this.drop(key, request);
    const gone = [...this.emptied].filter((action) => !this.perAction.has(action));
    this.emptied.clear();
    return gone;
  }

  /** Every action a remembered command has. */
  actions(): string[] {
    return [...this.perAction.keys()];
  }

  private drop(key: string, request: RememberedRequest): void {
    this.entries.delete(key);
    const count = (this.perAction.get(request.action) ?? 1) - 1;
    if (count <= 0) {
      this.perAction.delete(request.action);
      this.emptied.add(request.action);
    }
    else this.perAction.set(request.action, count);
  }
}

// A token and an id hold no NUL (protocol §2.1, §3): the pair is one key.
function keyOf(requester: string, token: string): string {
  return `${requester}\u0000${token}`;
}
