/**
 * The link's connection across the WAN (protocol §13.1): dialled by the end that runs the link,
 * as the identity of that end (its client id; a token with that username, or a client
 * certificate whose CN names it), TLS when the URL says mqtts://, reconnecting with full-jitter
 * back-off, keep-alive 30 s, clean session, and a will that says `down` on the other end.
 */
import { redactBroker } from '../client/options.js';
import { LINK_TIMING } from '../protocol/sites.js';
import { LinkConnection } from './link-connection.js';

export interface WanOptions {
  /** mqtt://, mqtts://, ws://, wss:// URL of the other end's broker. */
  url: string;
  /** PEM: the CA that signed the other end's certificate, this end's certificate and key. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** A token: sent as password with username = this end's identity. */
  token?: string;
}

export function wanConnection(clientId: string, options: WanOptions, will: { topic: string; payload: string }): LinkConnection {
  return new LinkConnection({
    label: redactBroker(options.url),
    clientId,
    url: options.url,
    reconnect: { firstMs: LINK_TIMING.reconnectFirstMs, maxMs: LINK_TIMING.reconnectMaxMs },
    mqtt: {
      keepalive: LINK_TIMING.keepaliveSeconds,
      will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true },
      ...(options.token !== undefined && { username: clientId, password: options.token }),
      ...options.tls,
    },
  });
}
