/**
 * Opening a link from the end that dials (protocol §13.1): an uplink from a site (pull: the
 * WAN connection is the central side) or a downlink from the central (push: the WAN connection
 * is the site side). The other side is this process's own broker.
 */
import type { EmbeddedBroker } from '../broker/embedded.js';
import { CENTRAL_SITE } from '../protocol/sites.js';
import { SiteLink, type LinkLog } from './link.js';
import { LinkStatus, type LinkNames } from './link-status.js';
import { localConnection } from './local-connection.js';
import { wanConnection, type WanOptions } from './wan-connection.js';

export interface LinkOptions {
  /** The WAN end: URL, TLS, token. */
  wan: WanOptions;
  /** Filters of the site's notifications and logs that go up. */
  notifications?: readonly string[];
  log: LinkLog;
}

/** Pull: the site `site` dials its central, whose name is `central` (default CENTRAL_SITE), as identity `site`. */
export function openUplink(broker: Pick<EmbeddedBroker, 'connectInProcess'>, site: string, options: LinkOptions & { central?: string }): SiteLink {
  const names: LinkNames = { site, central: options.central ?? CENTRAL_SITE, mode: 'pull' };
  const central = wanConnection(names.site, options.wan, new LinkStatus(names, 0).will('central'));
  const local = localConnection(broker, names.central);
  return new SiteLink({ ...names, connections: { central, site: local }, ...(options.notifications && { notifications: options.notifications }), log: options.log });
}

/** Push: the central `central` dials the site `site`, as identity `central`. */
export function openDownlink(broker: Pick<EmbeddedBroker, 'connectInProcess'>, central: string, site: string, options: LinkOptions): SiteLink {
  const names: LinkNames = { site, central, mode: 'push' };
  const remote = wanConnection(names.central, options.wan, new LinkStatus(names, 0).will('site'));
  const local = localConnection(broker, names.site);
  return new SiteLink({ ...names, connections: { central: local, site: remote }, ...(options.notifications && { notifications: options.notifications }), log: options.log });
}
