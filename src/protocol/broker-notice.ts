/**
 * What the embedded broker tells one connection about its own rights (protocol §11.10): a
 * subscription dropped because the policy no longer allows it, or the connection closed
 * because its identity was revoked. Delivered to that connection alone, never routed, so no
 * other client reads it whatever it subscribes to. Pure: no I/O.
 */
import { notificationMessage } from './messages.js';
import { notificationTopic } from './topics.js';
import type { Envelope } from './envelope.js';

/** The source of the notices (the embedded broker's own client id, protocol §11.9). */
export const BROKER_NOTICE_SOURCE = 'relais-broker';

/** `relais/broker/notice/<client-id>/notification`: the one connection with that client id reads it. */
export function brokerNoticeTopic(clientId: string): string {
  return notificationTopic(`relais/broker/notice/${clientId}`);
}

/** Why the connection is being closed. */
/** Why the connection is being closed: its identity's standing, or (`sessions over the limit`) a policy that now allows fewer sessions per identity (protocol §2.1). */
export type DisconnectReason = 'revoked' | 'no longer an identity' | 'issued new credentials' | 'sessions over the limit';

export type BrokerNotice =
  /** These filters no longer hold: the policy (or the identity's roles) changed; `rule` as `decide()` names it. */
  | { notice: 'subscriptions-dropped'; dropped: Array<{ filter: string; rule: string }> }
  /** The connection is closed right after this notice; a CONNECT with the same credentials will be refused. */
  | { notice: 'disconnected'; reason: DisconnectReason };

export function brokerNoticeMessage(clientId: string, notice: BrokerNotice): Envelope {
  return notificationMessage({ source: BROKER_NOTICE_SOURCE, destination: clientId, payload: notice, priority: 'high' });
}
