/**
 * The link's connection to this process's own embedded broker (protocol §13.1): an in-process
 * stream, with the client id of the link's OTHER end (at the central, the site's name; at a
 * site, the central's), since that is whose messages it brings; the broker decides them as
 * that identity's, so this broker's policy says what the other end may do here.
 */
import type { EmbeddedBroker } from '../broker/embedded.js';
import { LinkConnection } from './link-connection.js';

export function localConnection(broker: Pick<EmbeddedBroker, 'connectInProcess'>, remoteIdentity: string): LinkConnection {
  return new LinkConnection({
    label: 'this broker',
    clientId: remoteIdentity,
    // With security on the broker admits it as that identity with role `site` and decides its every publish (docs/security.md "Sites").
    stream: () => broker.connectInProcess({ identity: remoteIdentity }),
    // In the same process: it drops only when the broker closes.
    reconnect: { firstMs: 100, maxMs: 1000 },
    mqtt: { keepalive: 30 }, // within any --max-keepalive the broker enforces
  });
}
