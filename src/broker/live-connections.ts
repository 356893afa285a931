/**
 * Security acting on connections already open (docs/security.md "Live revocation"; the trust
 * rule "live effect"). When the identities in force change, a connection whose identity was
 * revoked, removed or issued new credentials is told why and closed; when the policy (or an
 * identity's roles) changes, each subscription a connection holds is decided again, and those
 * now denied are dropped on its behalf (Aedes's own unsubscribe, no UNSUBACK) and the
 * connection is told which (protocol §11.10). Each is one log line.
 */
import { brokerNoticeMessage, brokerNoticeTopic, type BrokerNotice, type DisconnectReason } from '../protocol/broker-notice.js';
import type { Decision } from '../security/policy.js';

/** The parts of an Aedes client used here (aedes/lib/client.js). */
export interface LiveClient {
  id: string;
  conn: object;
  closed: boolean;
  clean: boolean;
  subscriptions: Record<string, unknown>;
  broker: { persistence: { removeSubscriptions(client: LiveClient, topics: string[]): Promise<unknown> } };
  pause(): void;
  close(done?: () => void): void;
  publish(message: { topic: string; payload: Buffer; qos: 0; retain: false }, done: (error?: Error) => void): void;
  unsubscribe(packet: { unsubscriptions: string[] }, done: (error?: Error) => void): void;
}

/** How long a notice may take to be written before its connection is closed anyway. */
const NOTICE_GRACE_MS = 250;

export class LiveConnections<Subject> {
  private readonly open = new Map<object, { client: LiveClient; subject: Subject }>();

  constructor(
    private readonly judge: (subject: Subject, filter: string) => Decision,
    private readonly describe: (subject: Subject, client: LiveClient) => string,
    private readonly log: (line: string) => void,
    private readonly countDropped: (decision: Decision) => void,
  ) {}

  /** Follows `client` from its accepted CONNECT until its connection closes. */
  add(client: LiveClient, subject: Subject, onClose: (listener: () => void) => void): void {
    this.open.set(client.conn, { client, subject });
    onClose(() => {
      if (this.open.get(client.conn)?.client === client) this.open.delete(client.conn);
    });
  }

  /** Each live connection and its subject (a copy: reactions may remove some). */
  entries(): Array<{ client: LiveClient; subject: Subject }> {
    return [...this.open.values()].filter(({ client }) => !client.closed);
  }

  /** Tells `client` why, then closes it (after the notice is written, or NOTICE_GRACE_MS). */
  disconnect(client: LiveClient, subject: Subject, reason: DisconnectReason): void {
    this.open.delete(client.conn);
    this.log(`disconnected ${this.describe(subject, client)}: ${reason}`);
    client.pause(); // nothing more is read from it
    const close = () => client.close();
    setTimeout(close, NOTICE_GRACE_MS).unref();
    this.notify(client, { notice: 'disconnected', reason }, close);
  }

  /**
   * Decides again each subscription `client` holds (or `filters` of them) and drops those now
   * denied; returns how many were dropped.
   */
  recheck(client: LiveClient, subject: Subject, filters: readonly string[] = Object.keys(client.subscriptions)): number {
    const dropped: Array<{ filter: string; rule: string }> = [];
    for (const filter of filters) {
      if (!(filter in client.subscriptions)) continue;
      const decision = this.judge(subject, filter);
      if (decision.allow) continue;
      dropped.push({ filter, rule: decision.rule });
      this.countDropped(decision);
      this.log(`dropped the subscription to ${JSON.stringify(filter)} of ${this.describe(subject, client)}: ${decision.rule} (no longer allowed)`);
    }
    if (dropped.length === 0) return 0;
    const topics = dropped.map(({ filter }) => filter);
    client.unsubscribe({ unsubscriptions: topics }, () => {});
    // Aedes skips its store for an UNSUBSCRIBE without a packet id: a persistent session's copy goes too.
    if (!client.clean) client.broker.persistence.removeSubscriptions(client, topics).catch(() => {});
    this.notify(client, { notice: 'subscriptions-dropped', dropped }, () => {});
    return dropped.length;
  }

  /** Writes a notice to this one connection (QoS 0, not routed: nobody else can read it). */
  private notify(client: LiveClient, notice: BrokerNotice, done: () => void): void {
    try {
      const payload = Buffer.from(JSON.stringify(brokerNoticeMessage(client.id, notice)));
      client.publish({ topic: brokerNoticeTopic(client.id), payload, qos: 0, retain: false }, () => done());
    } catch (error) {
      this.log(`could not tell ${client.id}: ${(error as Error).message}`);
      done();
    }
  }
}
