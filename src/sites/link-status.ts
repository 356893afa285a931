/**
 * What a link says about itself (protocol §13.2 item 8): its status on both brokers
 * (`relais/sites/<site>` on the central, `relais/sites/<central>` on the site), retained, with
 * since when, the mode, the last round trip and what it carried; the will of its WAN
 * connection; and the round-trip probe its WAN connection sends itself.
 */
import { encode } from '../protocol/envelope.js';
import { notificationMessage } from '../protocol/messages.js';
import { siteProbeSchema, siteProbeTopic, siteStatusTopic, type LinkMode, type SiteProbe, type SiteStatus } from '../protocol/sites.js';

export interface LinkNames {
  /** The site's name: the link's id on the central. */
  site: string;
  /** The central's name: the link's id on the site. */
  central: string;
  mode: LinkMode;
}

/** Which broker a message goes to: the central's (about the site) or the site's (about the central). */
export type Side = 'central' | 'site';

export class LinkStatus {
  status: 'up' | 'down' = 'down';
  since: number;
  rttMs: number | undefined;
  readonly carried = { down: 0, up: 0 };

  constructor(
    private readonly names: LinkNames,
    now: number,
  ) {
    this.since = now;
  }

  /** Returns true when the status changed. */
  set(status: 'up' | 'down', now: number): boolean {
    if (status === this.status) return false;
    this.status = status;
    this.since = now;
    if (status === 'up') {
      this.carried.down = 0;
      this.carried.up = 0;
      this.rttMs = undefined;
    }
    return true;
  }

  /** The topic of the status on `side`'s broker: it names the other end. */
  topic(side: Side): string {
    return siteStatusTopic(this.otherEnd(side));
  }

  /** The retained status message for `side`'s broker, from the link's id there. */
  message(side: Side): string {
    const payload: SiteStatus = {
      site: this.otherEnd(side),
      status: this.status,
      since: this.since,
      mode: this.names.mode,
      ...(this.status === 'up' && this.rttMs !== undefined && { rttMs: this.rttMs }),
      ...(this.status === 'up' && { carried: { ...this.carried } }),
    };
    return encode(notificationMessage({ source: this.linkId(side), payload, priority: 'normal' }));
  }

  /** The will of the WAN connection, on the broker at its far end (`side`): the link is down. */
  will(side: Side): { topic: string; payload: string } {
    const payload: SiteStatus = { site: this.otherEnd(side), status: 'down', mode: this.names.mode };
    return { topic: this.topic(side), payload: encode(notificationMessage({ source: this.linkId(side), payload, priority: 'normal' })) };
  }

  /**
   * The probe topic on `side`'s broker: under the link's own id there, the one status topic
   * family a link's identity may publish on (protocol §13.2).
   */
  probeTopic(side: Side): string {
    return siteProbeTopic(this.linkId(side));
  }

  /** The link's client id on `side`'s broker: the identity of the other end. */
  linkId(side: Side): string {
    return side === 'central' ? this.names.site : this.names.central;
  }

  private otherEnd(side: Side): string {
    return side === 'central' ? this.names.site : this.names.central;
  }
}

/** A probe's payload: which link sent it (an instance, and a nonce for a barrier) and when. */
export function probePayload(link: string, now: number): string {
  return JSON.stringify({ link, sentAt: now });
}

/** Reads a message on a probe topic; undefined for anything that is not a probe. */
export function readProbe(payload: Buffer): SiteProbe | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const probe = siteProbeSchema.safeParse(value);
  return probe.success ? probe.data : undefined;
}
