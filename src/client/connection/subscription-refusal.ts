/**
 * What a refused SUBSCRIBE tells the user. A broker answers a filter it will not grant with
 * SUBACK 0x80 (MQTT 3.1.1 §3.9.3), which MQTT.js reports as "Subscribe error: Unspecified
 * error"; with security on, the embedded broker does so for one reason only, its policy
 * (docs/security.md "Authorisation policy"; its log names the rule). So the error names the
 * filter, the identity and the policy, and, for the topics of the scheme (protocol §2), what the
 * default policy of `relais init` asks for it (docs/security.md "What each role may run").
 */
import { NotAuthorizedError } from '../../protocol/errors.js';
import { parseTopic } from '../../protocol/topics.js';

export function subscriptionRefused(filter: string, identity: string, cause?: unknown): NotAuthorizedError {
  const hint = whatWouldAllow(filter, identity);
  return new NotAuthorizedError(
    `the broker refused the subscription to ${filter} (SUBACK 0x80): its policy does not let ${identity} subscribe to it${hint ? `; ${hint}` : ''} (the broker's log names the rule that refused it)`,
    cause === undefined ? {} : { cause },
  );
}

/** What the default policy asks for `filter`, when the filter is one of the scheme's topics. */
function whatWouldAllow(filter: string, identity: string): string | undefined {
  if (filter === '#' || filter.startsWith('+') || filter.startsWith('#')) return 'a filter beginning with a wildcard needs the grant "wildcards" (the role admin in the default policy)';
  const topic = parseTopic(filter);
  switch (topic.kind) {
    case 'request':
    case 'cancel': {
      if (topic.kind === 'request' && topic.target !== undefined && topic.target !== identity) return `the requests targeted at ${topic.target} are for ${topic.target} alone`;
      const agents = topic.action.startsWith('system/');
      return `to serve ${topic.action}, ${identity} needs the role service and ${topic.action} in its serves, in the default policy (relais identity add ${identity} --role service --serves '${agents ? 'system/#' : topic.action}', or its "serves" in the policy file)`;
    }
    case 'response':
      if (topic.requester !== identity) return `the responses to ${topic.requester} are for ${topic.requester} alone`;
      return topic.action.startsWith('system/')
        ? `calling the agents' actions (${topic.action}) takes the role agent-user beside client, or admin, in the default policy`
        : `calling ${topic.action} takes the role client, service or admin in the default policy`;
    case 'notification':
      return `reading the notifications of ${topic.category} takes the role observer, client or service in the default policy`;
    default:
      return undefined;
  }
}
