/**
 * Incoming messages (protocol §2.2, §4.2): which part of the client acts on one, from its
 * topic alone (`routeOf`, pure, testable without a broker), and its delivery there. Whatever
 * the route, the message also reaches the application subscriptions that match it (§8.3).
 */
import { decode, type DecodeResult, type Envelope } from '../protocol/envelope.js';
import { InvalidMessageError } from '../protocol/errors.js';
import { parseSiteTopic, SITES_ROOT, type SiteTopic } from '../protocol/sites.js';
import { SEAL_MEMBER } from '../protocol/sealing.js';
import { parseTopic, type ParsedTopic } from '../protocol/topics.js';
import type { Sealing } from './sealing.js';
import type { Verifier } from './connection/index.js';
import type { ResolvedOptions } from './options.js';
import type { Directory, Presence, SiteDirectory } from './presence/index.js';
import type { Requester } from './requesting/index.js';
import type { Handlers } from './serving/index.js';
import type { Subscriptions } from './subscriptions.js';
import type { Lane, PresenceInfo, Refusal } from './types.js';

export type Route =
  /** A response on our own `<action>/response/<me>`: the requester. */
  | { to: 'requester' }
  /** A command this client must answer: on `<action>/request` for an action it serves, or targeted at it. */
  | { to: 'handlers'; action: string; targeted: boolean }
  /** A cancel for an action this client serves. */
  | { to: 'cancel'; action: string }
  | { to: 'presence'; clientId: string }
  /** A link's status or a site's roster (protocol §13.4). */
  | { to: 'sites'; site: SiteTopic }
  /** Nothing in the client acts on it (a broad subscription brought it). */
  | { to: 'subscriptions' };

const SUBSCRIPTIONS_ONLY: Route = { to: 'subscriptions' };
const SITES_PREFIX = `${SITES_ROOT}/`;
const REQUESTER: Route = { to: 'requester' };

export function routeOf(topic: ParsedTopic, self: string, serves: (action: string) => boolean, raw?: string): Route {
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
    default: {
      // `relais/sites/...` is outside the scheme of protocol §2.2 (parseTopic says `other`).
      const site = raw?.startsWith(SITES_PREFIX) ? parseSiteTopic(raw) : undefined;
      return site ? { to: 'sites', site } : SUBSCRIPTIONS_ONLY;
    }
  }
}

/** The parts of a client an incoming message may be handed to. */
export interface ClientParts {
  options: ResolvedOptions;
  directory: Directory;
  presence: Presence;
  sites: SiteDirectory;
  requester: Requester;
  handlers: Handlers;
  subscriptions: Subscriptions;
  /** With the `verify` option: what refuses unsigned, forged, replayed or stale messages (protocol §12.4). */
  verifier?: Verifier;
  /** Told of each message the verifier refused (after its warning line). */
  refused?: (refusal: Refusal) => void;
  /** What opens sealed messages for this client (protocol §3.6). Absent (a runtime without it): they stay unopened. */
  sealing?: Sealing;
}

/** What became of a sealed message: opened, or why not (protocol §3.6). */
export type SealState = { opened: true } | { opened: false; why: string };

const EMPTY_MESSAGE: DecodeResult = { ok: false, error: new InvalidMessageError('empty message (a cleared retained topic)') };

/** Decodes a message (once, and only if someone reads it) and hands it to the parts that act on it. */
export function deliver(parts: ClientParts, message: { topic: string; payload: Buffer; retained: boolean; qos: 0 | 1; lane: Lane }): void {
  const { topic, payload } = message;
  const { options, handlers } = parts;
  let cached: DecodeResult | undefined;
  // A sealed message (protocol §3.6) is opened where it is decoded, once, before anyone reads it.
  let seal: SealState | undefined;
  const decoded = () => {
    if (cached) return cached;
    cached = payload.length === 0 ? EMPTY_MESSAGE : decode(payload, options.maxMessageBytes);
    if (cached.ok && cached.envelope[SEAL_MEMBER] !== undefined) ({ result: cached, seal } = opened(parts.sealing, cached.envelope));
    return cached;
  };
  const parsed = parseTopic(topic);
  // Signatures cover the sealed bytes (protocol §12.2): checked before anything is opened.
  if (parts.verifier && !admitted(parts, parts.verifier, message, parsed, decoded)) return;
  const route = routeOf(parsed, options.id, (action) => handlers.serves(action), topic);
  switch (route.to) {
    case 'requester': {
      const result = decoded();
      if (result.ok && result.envelope.type === 'response') {
        if (seal?.opened === false) parts.requester.onUnopenedResponse(result.envelope, seal.why);
        else parts.requester.onResponse(result.envelope, message.lane);
      } else if (!result.ok) options.logger.warn({ topic, err: result.error.message }, 'invalid response');
      break;
    }
    case 'handlers': {
      const result = decoded();
      handlers.onRequest(route.action, route.targeted, result, message.qos, seal?.opened === false ? { why: seal.why } : undefined);
      break;
    }
    case 'cancel':
      handlers.onCancel(decoded());
      break;
    case 'presence':
      onPresence(parts, route.clientId, decoded());
      break;
    case 'sites':
      parts.sites.update(route.site, payload.length, decoded);
      break;
    case 'subscriptions':
      break;
  }
  parts.subscriptions.dispatch(topic, message.lane, payload, decoded, message.retained, message.qos, () => (seal === undefined ? undefined : seal.opened ? 'opened' : 'unopened'));
}

/**
 * A received envelope with a `seal` member, opened when it is sealed for this client (protocol
 * §3.6): the payload is then the plaintext; else it stays the ciphertext. `seal` stays either way.
 */
function opened(sealing: Sealing | undefined, envelope: Envelope): { result: DecodeResult; seal: SealState } {
  if (!sealing) return { result: { ok: true, envelope }, seal: { opened: false, why: 'this runtime cannot open sealed messages' } };
  const opening = sealing.open(envelope);
  if (opening.ok) return { result: { ok: true, envelope: opening.envelope }, seal: { opened: true } };
  return { result: { ok: true, envelope }, seal: { opened: false, why: `${opening.reason}: ${opening.why}` } };
}

/**
 * The verifier's word on a message, before any part of the client or any subscription sees it
 * (protocol §12.4). A presence is old by nature (retained, or a will written at connect time), as
 * is any retained message: their signature is checked, not their freshness. A cleared presence
 * (empty payload) has nothing to sign and passes.
 */
function admitted(parts: ClientParts, verifier: Verifier, message: { topic: string; payload: Buffer; retained: boolean; lane: Lane }, parsed: ParsedTopic, decoded: () => DecodeResult): boolean {
  const presence = parsed.kind === 'presence';
  if (presence && message.payload.length === 0) return true;
  const verdict = verifier.check(message.topic, message.payload, decoded, !presence && !message.retained);
  if (verdict.ok) return true;
  verifier.logRefusal(parts.options.logger, message.topic, verdict);
  if (presence) parts.directory.refused(parsed.clientId, verdict.reason);
  parts.refused?.({ topic: message.topic, reason: verdict.reason, lane: message.lane, ...(verdict.source !== undefined && { source: verdict.source }) });
  return false;
}

function onPresence(parts: ClientParts, clientId: string, result: DecodeResult): void {
  parts.directory.update(clientId, result.ok ? result.envelope : undefined);
  if (clientId !== parts.options.id || !result.ok) return;
  const payload = result.envelope.payload;
  const info = (typeof payload === 'object' && payload !== null ? payload : {}) as PresenceInfo;
  // Our own presence back: the directory's loading barrier (§7.2); another instance's: a twin (§7.5).
  if (parts.presence.onOwnTopic(info)) parts.directory.ownPresenceBack();
}
