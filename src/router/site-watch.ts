/**
 * What a router knows of the sites' links (protocol §13.2, §13.5): the retained status of each
 * link (`relais/sites/<site>`) and the roster of each site (`relais/sites/<site>/clients`), as
 * the link publishes them. The registry, the sync and `relais/sites/get` read it; it tells them
 * when a status or a roster changes. Invalid messages are logged and ignored: what was known
 * stays.
 */
import type { Logger } from 'pino';
import type { Bus } from '../client/bus.js';
import type { Delivery, Subscription } from '../client/types.js';
import { parseSiteTopic, siteClientsSchema, SITE_DIRECTORY_FILTERS, siteStatusSchema, type SiteClients, type SiteStatus } from '../protocol/sites.js';

/** A link's status as this router saw it: the message, and when it arrived (epoch ms, this router's clock). */
export interface KnownStatus extends SiteStatus {
  seenAt: number;
}

export type SiteChange =
  /** `retained`: read from the broker's retained copy (at start, or on a new subscription), not seen happening. */
  | { kind: 'status'; site: string; before: KnownStatus | undefined; after: KnownStatus | undefined; retained: boolean }
  | { kind: 'roster'; site: string; before: SiteClients | undefined; after: SiteClients | undefined };

export type SiteListener = (change: SiteChange) => void;

export class SiteWatch {
  private readonly statuses = new Map<string, KnownStatus>();
  private readonly rosters = new Map<string, SiteClients>();
  private readonly listeners = new Set<SiteListener>();
  private readonly subscriptions: Array<Subscription<never>> = [];

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Reads the links' statuses and the rosters from now on (the retained ones first); not the
   * link's probes, which are not envelopes (protocol §13.2 item 8).
   */
  async start(bus: Bus): Promise<void> {
    // Invalid ones too: an empty retained message clears a status or a roster.
    for (const filter of SITE_DIRECTORY_FILTERS) this.subscriptions.push(await bus.subscribe(filter, (delivery) => this.onDelivery(delivery as Delivery), { includeInvalid: true }));
  }

  async close(): Promise<void> {
    for (const subscription of this.subscriptions.splice(0)) await subscription.unsubscribe();
    this.listeners.clear();
  }

  watch(listener: SiteListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(site: string): KnownStatus | undefined {
    return this.statuses.get(site);
  }

  roster(site: string): SiteClients | undefined {
    return this.rosters.get(site);
  }

  /** Every site this router has a status or a roster of, sorted. */
  sites(): string[] {
    return [...new Set([...this.statuses.keys(), ...this.rosters.keys()])].sort();
  }

  /** One message on `relais/sites/#`: a status, a roster, an empty retained (cleared), or nothing of ours (a probe). */
  onDelivery(delivery: Delivery): void {
    const topic = parseSiteTopic(delivery.topic);
    if (!topic || topic.kind === 'probe') return;
    const { site } = topic;
    const cleared = !('envelope' in delivery) && delivery.text === '';
    if (!('envelope' in delivery) && !cleared) return this.refuse(delivery.topic, delivery.invalid);
    const payload = 'envelope' in delivery ? delivery.envelope.payload : undefined;
    if (topic.kind === 'status') {
      const before = this.statuses.get(site);
      let after: KnownStatus | undefined;
      if (!cleared) {
        const read = siteStatusSchema.safeParse(payload);
        if (!read.success) return this.refuse(delivery.topic, read.error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; '));
        if (read.data.site !== site) return this.refuse(delivery.topic, `it names site ${read.data.site}`);
        after = { ...read.data, seenAt: this.now() };
        this.statuses.set(site, after);
      } else this.statuses.delete(site);
      this.tell({ kind: 'status', site, before, after, retained: delivery.retained });
    } else {
      const before = this.rosters.get(site);
      let after: SiteClients | undefined;
      if (!cleared) {
        const read = siteClientsSchema.safeParse(payload);
        if (!read.success) return this.refuse(delivery.topic, read.error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; '));
        if (read.data.site !== site) return this.refuse(delivery.topic, `it names site ${read.data.site}`);
        after = read.data;
        this.rosters.set(site, after);
      } else this.rosters.delete(site);
      this.tell({ kind: 'roster', site, before, after });
    }
  }

  private refuse(topic: string, why: string): void {
    this.logger.warn({ topic, err: why }, 'sites: a link status or roster that cannot be read is ignored (what was known stays)');
  }

  private tell(change: SiteChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.logger.error({ err: (error as Error).message, site: change.site }, 'sites: a listener failed');
      }
    }
  }
}
