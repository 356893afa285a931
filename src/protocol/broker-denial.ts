/**
 * The broker's denial reply (protocol §5.3): when the embedded broker refuses a command (its
 * topic, its encoding or its `source`), it acknowledges the PUBLISH as MQTT 3.1.1 requires and
 * answers the sender with a final error, code 4, on the response topic it reads, so that the
 * requester does not wait for its time-out. The only definition of the reply: when it is sent,
 * on which topic, and what it says. Pure: no I/O.
 */
import { BROKER_NOTICE_SOURCE } from './broker-notice.js';
import { priorityOf, type Envelope } from './envelope.js';
import { ResponseCode } from './errors.js';
import { responseMessage } from './messages.js';
import { parseTopic, responseTopic } from './topics.js';

/** The code of a denial reply (protocol §5.1). */
export const DENIAL_CODE = ResponseCode.NOT_AUTHORIZED;

/** The error's name in a denial reply: the library makes it a `NotAuthorizedError`. */
export const DENIAL_ERROR_NAME = 'NotAuthorizedError';

/** What a denial reply's `error.details` holds: the topic refused and the rule that refused it (as `decide()` names it). */
export interface DenialDetails {
  topic: string;
  rule: string;
}

/**
 * The reply to a refused PUBLISH on `topic` by `identity`, whose payload read as `envelope`
 * (undefined: not a JSON object), or undefined when none is sent: only a command (an envelope
 * of `type` "command" with a string `token`) on a request topic is answered.
 *
 * - topic: `<action>/response/<identity>`, the sender's own response topic (the identity it
 *   proved, whatever the envelope claims); for the other end of a link, the broker passes the
 *   `source` it carried instead, when it may speak for it (docs/security.md "Sites");
 * - `source`: the command's target (the topic's, else a `destination` other than `*`), whom
 *   the requester waits for an answer from, else `relais-broker`;
 * - `token` and `priority` the command's (a priority it does not know: `normal`);
 * - `final: true`, `payload: null`, `code: 4`, `error: {name: "NotAuthorizedError", message,
 *   details: {topic, rule}}`.
 */
export function denialReply(topic: string, envelope: Record<string, unknown> | undefined, identity: string, rule: string): { topic: string; message: Envelope } | undefined {
  const parsed = parseTopic(topic);
  if (parsed.kind !== 'request' || !envelope || envelope.type !== 'command' || typeof envelope.token !== 'string') return undefined;
  const target = parsed.target ?? (typeof envelope.destination === 'string' && envelope.destination !== '*' ? envelope.destination : undefined);
  const priority = priorityOf(envelope.priority);
  const details: DenialDetails = { topic, rule };
  const message = responseMessage(
    { source: target ?? BROKER_NOTICE_SOURCE, destination: identity, token: envelope.token, priority },
    { step: 'error', code: DENIAL_CODE, error: { name: DENIAL_ERROR_NAME, message: `not authorised to publish on ${topic} (${rule})`, details } },
  );
  return { topic: responseTopic(parsed.action, identity), message };
}
