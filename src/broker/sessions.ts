/**
 * The sessions each identity holds on the broker (protocol §2.1 `<identity>~<session>`,
 * docs/security.md "Sessions"): which connections are open, by identity and session, in the
 * order the sessions came. The broker admits a new session only below the policy's limit
 * (`refusal`) and, when the limit goes down, cuts the sessions beyond it, the latest first
 * (`beyondLimit`). A session's main connection and its lane `~rt` are one session; a
 * take-over of a session's client id is not a new one. No I/O: enforce.ts asks.
 */

/** A session's key: its name, or NO_SESSION for the connections whose client id is the identity itself. */
const NO_SESSION = '';

export class SessionCount<Connection> {
  /** By identity, then by session (insertion order: the order they came), the open connections. */
  private readonly byIdentity = new Map<string, Map<string, Set<Connection>>>();

  /** Why `identity` may not open `session` now under `limit`, or undefined when it may. */
  refusal(identity: string, session: string, limit: number): string | undefined {
    if (limit === 0) return `sessions are off for ${identity} in the policy (sessions.max 0): connect with the identity itself as client id`;
    const held = this.sessionsOf(identity);
    if (held.includes(session) || held.length < limit) return undefined;
    return `${identity} already has ${held.length} sessions open, the policy's limit (sessions.max ${limit})`;
  }

  /** Whether `session` of `identity` is beyond the first `limit` sessions it opened (it must go). */
  beyondLimit(identity: string, session: string, limit: number): boolean {
    const at = this.sessionsOf(identity).indexOf(session);
    return at >= limit;
  }

  /** Whether any connection of `identity` (itself or one of its sessions) is open. */
  connected(identity: string): boolean {
    return this.byIdentity.has(identity);
  }

  add(identity: string, session: string | undefined, connection: Connection): void {
    let sessions = this.byIdentity.get(identity);
    if (!sessions) this.byIdentity.set(identity, (sessions = new Map()));
    const key = session ?? NO_SESSION;
    let connections = sessions.get(key);
    if (!connections) sessions.set(key, (connections = new Set()));
    connections.add(connection);
  }

  remove(identity: string, session: string | undefined, connection: Connection): void {
    const sessions = this.byIdentity.get(identity);
    const key = session ?? NO_SESSION;
    const connections = sessions?.get(key);
    if (!sessions || !connections?.delete(connection)) return;
    if (connections.size === 0) sessions.delete(key);
    if (sessions.size === 0) this.byIdentity.delete(identity);
  }

  /** The sessions `identity` holds, in the order they came (not the identity's own connections). */
  private sessionsOf(identity: string): string[] {
    return [...(this.byIdentity.get(identity)?.keys() ?? [])].filter((key) => key !== NO_SESSION);
  }
}
