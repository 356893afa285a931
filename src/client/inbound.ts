/**
 * Which part of the client acts on an incoming message, from its topic alone (protocol §2.2,
 * §4.2). Pure: testable without a broker. Whatever the answer, the message also reaches the
 * application subscriptions that match it (protocol §8.3).
 */
import type { ParsedTopic } from '../protocol/topics.js';

export type Route =
  /** A response on our own `<action>/response/<me>`: the requester. */
  | { to: 'requester' }
  /** A command this client must answer: on `<action>/request` for an action it serves, or targeted at it. */
  | { to: 'handlers'; action: string; targeted: boolean }
  /** A cancel for an action this client serves. */
  | { to: 'cancel'; action: string }
  | { to: 'presence'; clientId: string }
  /** Nothing in the client acts on it (a broad subscription brought it). */
  | { to: 'subscriptions' };

const SUBSCRIPTIONS_ONLY: Route = { to: 'subscriptions' };
const REQUESTER: Route = { to: 'requester' };

export function routeOf(topic: ParsedTopic, self: string, serves: (action: string) => boolean): Route {
  switch (topic.kind) {
    case 'response':
      return topic.requester === self ? REQUESTER : SUBSCRIPTIONS_ONLY;
    case 'request':
      // A client that merely subscribes to '#' must not answer other clients' commands.
      if (topic.target === self) return { to: 'handlers', action: topic.action, targeted: true };
      return topic.target === undefined && serves(topic.action) ? { to: 'handlers', action: topic.action, targeted: false } : SUBSCRIPTIONS_ONLY;
    case 'cancel':
      return serves(topic.action) ? { to: 'cancel', action: topic.action } : SUBSCRIPTIONS_ONLY;
    case 'presence':
      return { to: 'presence', clientId: topic.clientId };
    default:
      return SUBSCRIPTIONS_ONLY;
  }
}
