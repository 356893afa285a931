/**
 * Every topic string Relais uses is built and parsed here (protocol §2).
 * Nobody else concatenates topic strings.
 */
import { utf8ByteLength } from './bytes.js';

/** Topic segments with a meaning in the scheme; an action or category may not contain them. */
export const RESERVED_SEGMENTS = ['request', 'response', 'notification', 'cancel', 'log'] as const;

/** Root of the topics Relais itself owns (presence); actions may not start with it. */
export const SYSTEM_ROOT = 'relais';
const PRESENCE_PREFIX = `${SYSTEM_ROOT}/presence/`;

/** An action of Relais itself (the router's and the library's own services, under `relais/`): the history does not record it (protocol §11.1). */
export function isSystemAction(action: string): boolean {
  return action.startsWith(`${SYSTEM_ROOT}/`);
}

export type ParsedTopic =
  | { kind: 'request'; action: string; target?: string }
  | { kind: 'response'; action: string; requester: string }
  | { kind: 'cancel'; action: string; target?: string }
  | { kind: 'notification'; category: string }
  | { kind: 'log'; category: string }
  | { kind: 'presence'; clientId: string }
  | { kind: 'other' };

// A base id has no '~': `~` separates a session (`<identity>~<session>`) and the real-time lane (`~rt`).
const BASE_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
const SESSION_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** The suffix of a client's real-time connection: its MQTT client id is `<client id>~rt` (protocol §6.2). */
export const REALTIME_LANE = 'rt';

/**
 * An MQTT client id read by the grammar of protocol §2.1: `<identity>`, `<identity>~<session>`,
 * each optionally followed by `~rt` (its real-time lane, protocol §6.2). Several sessions of one
 * identity (two tabs of the page, the page and a CLI) are distinct client ids of one principal.
 */
export interface ClientIdParts {
  /** The base id: with security on, the authenticated identity. */
  identity: string;
  /** The session, when the id has one: 1-32 of letters, digits, _ and -, never `rt`. */
  session?: string;
  /** `rt` when this is the real-time lane's MQTT client id. */
  lane?: typeof REALTIME_LANE;
}

/** Why `mqttId` is not `<base>[~<session>][~rt]`, or its parts. The one parser of client ids (protocol §2.1). */
export function parseClientId(mqttId: string): ClientIdParts | { problem: string } {
  if (typeof mqttId !== 'string') return { problem: 'a client id must be a string' };
  const parts = mqttId.split('~');
  const lane = parts.length > 1 && parts.at(-1) === REALTIME_LANE ? REALTIME_LANE : undefined;
  if (lane) parts.pop();
  const [identity, session, ...rest] = parts as [string, string | undefined, ...string[]];
  const shown = JSON.stringify(mqttId);
  if (!BASE_ID_PATTERN.test(identity)) return { problem: `client id ${shown} must be 1-128 characters among letters, digits and _ . : @ -, optionally followed by ~<session>` };
  if ((RESERVED_SEGMENTS as readonly string[]).includes(identity)) return { problem: `client id ${shown} is a reserved topic word` };
  if (rest.length > 0) return { problem: `client id ${shown} has more than one ~<session>` };
  if (session !== undefined) {
    if (session === REALTIME_LANE) return { problem: `client id ${shown}: ~rt is the real-time lane, not a session` };
    if (!SESSION_PATTERN.test(session)) return { problem: `client id ${shown}: a session (after ~) must be 1-32 characters among letters, digits, _ and -` };
  }
  return { identity, ...(session !== undefined && { session }), ...(lane && { lane }) };
}

/** The client id `<identity>~<session>` (or `<identity>` without a session); throws TypeError naming what is wrong. */
export function sessionClientId(identity: string, session?: string): string {
  const id = session === undefined ? identity : `${identity}~${session}`;
  assertValid(checkClientId(id) ?? (identity.includes('~') ? `identity ${JSON.stringify(identity)} cannot contain ~` : undefined));
  return id;
}

/** The identity behind a client id or a lane's MQTT client id (`alice~tab1~rt` is `alice`); an id outside the grammar is its own. */
export function identityOfClientId(mqttId: string): string {
  const parts = parseClientId(mqttId);
  return 'problem' in parts ? mqttId : parts.identity;
}

/** The client id a lane's MQTT client id belongs to (`alice~tab1~rt` is `alice~tab1`); an id outside the grammar is its own. */
export function clientIdOfConnection(mqttId: string): string {
  const parts = parseClientId(mqttId);
  if ('problem' in parts) return mqttId;
  return parts.session === undefined ? parts.identity : `${parts.identity}~${parts.session}`;
}

/** Why `id` is not a valid client id, or undefined when it is. A lane's `<id>~rt` is not one: it is an MQTT client id of `<id>`. protocol §2.1 */
export function checkClientId(id: string): string | undefined {
  if (typeof id === 'string' && BASE_ID_PATTERN.test(id)) {
    // The common case, without '~': no split.
    return (RESERVED_SEGMENTS as readonly string[]).includes(id) ? `client id ${JSON.stringify(id)} is a reserved topic word` : undefined;
  }
  const parts = parseClientId(id);
  if ('problem' in parts) return parts.problem;
  if (parts.lane) return `client id ${JSON.stringify(id)} ends with ~rt: that is the MQTT client id of a real-time lane (protocol §6.2), not a client id`;
  return undefined;
}

/**
 * Paths already found valid: a client checks the same few actions on every request and
 * response. Bounded, so a stream of made-up names cannot grow it.
 */
const knownValidPaths = new Set<string>();
const KNOWN_VALID_PATHS_KEPT = 4096;

/**
 * Limits every topic the library sends or subscribes to respects (protocol §2.1). A packet a
 * broker refuses makes it drop the connection, so they are checked before anything is sent:
 * - levels: Aedes drops a connection on a topic of more than 100 levels;
 * - bytes: MQTT's length prefix holds 65 535 bytes of UTF-8;
 * - U+0000 and malformed UTF-16 (a lone surrogate has no UTF-8): Mosquitto drops the connection;
 * - whitespace (in Relais names only): the NATS MQTT gateway drops the connection.
 */
export const MAX_TOPIC_LEVELS = 100;
export const MAX_TOPIC_BYTES = 65_535;
/** An action or category: `<path>/response/<id>` must stay within MAX_TOPIC_LEVELS. */
export const MAX_PATH_LEVELS = MAX_TOPIC_LEVELS - 2;
export const MAX_PATH_LENGTH = 512;

// eslint-disable-next-line no-control-regex
const CONTROL_OR_SPACE = /[\s\u0000-\u001f\u007f]/u;

/** Why `name` is not a valid action or category path, or undefined when it is. protocol §2.1 */
export function checkPath(name: string, what: 'action' | 'category' = 'action'): string | undefined {
  if (knownValidPaths.has(name)) return undefined;
  const problem = findPathProblem(name, what);
  if (problem === undefined) {
    if (knownValidPaths.size >= KNOWN_VALID_PATHS_KEPT) knownValidPaths.clear();
    knownValidPaths.add(name);
  }
  return problem;
}

function findPathProblem(name: string, what: 'action' | 'category'): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return `${what} must be a non-empty string`;
  if (name.length > MAX_PATH_LENGTH) return `${what} is longer than ${MAX_PATH_LENGTH} characters`;
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
  if (name.startsWith('$')) return `${what} ${shown} may not start with '$' (broker-reserved)`;
  if (CONTROL_OR_SPACE.test(name)) return `${what} ${shown} may not contain spaces or control characters`;
  const segments = name.split('/');
  if (segments.length > MAX_PATH_LEVELS) return `${what} ${shown} has ${segments.length} levels; at most ${MAX_PATH_LEVELS}`;
  const textProblem = checkTopicText(name, what);
  if (textProblem) return textProblem;
  for (const segment of segments) {
    if (segment.length === 0) return `${what} ${shown} has an empty segment`;
    if (segment.includes('+') || segment.includes('#')) {
      return `${what} ${shown} may not contain the MQTT wildcards + or #`;
    }
    if ((RESERVED_SEGMENTS as readonly string[]).includes(segment)) {
      return `${what} ${shown} may not contain the reserved segment '${segment}'`;
    }
  }
  if (segments[0] === SYSTEM_ROOT && segments[1] === 'presence') {
    return `${what} ${shown} is inside the reserved ${PRESENCE_PREFIX} tree`;
  }
  return undefined;
}

/** What every topic name and filter must respect, whatever the broker: bytes, levels, characters. */
function checkTopicText(text: string, what: string): string | undefined {
  if (typeof text !== 'string' || text.length === 0) return `a ${what} must be a non-empty string`;
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
  if (text.includes('\u0000')) return `${what} ${shown} contains the character U+0000`;
  if (!text.isWellFormed()) return `${what} ${shown} is not valid Unicode (a lone surrogate has no UTF-8 form)`;
  // A UTF-16 unit is at most 3 bytes of UTF-8: short texts need no count.
  if (text.length * 3 > MAX_TOPIC_BYTES) {
    const bytes = utf8ByteLength(text);
    if (bytes > MAX_TOPIC_BYTES) return `${what} is ${bytes} bytes of UTF-8; at most ${MAX_TOPIC_BYTES}`;
  }
  let levels = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 47) levels++;
  if (levels > MAX_TOPIC_LEVELS) return `${what} ${shown} has ${levels} levels; brokers accept at most ${MAX_TOPIC_LEVELS}`;
  return undefined;
}

/**
 * Why `topic` cannot be published on, or undefined. protocol §2.1: no wildcards, not a
 * broker-reserved `$` topic (Mosquitto drops `$SYS` publishes silently), within the limits.
 */
export function checkTopicName(topic: string): string | undefined {
  const problem = checkTopicText(topic, 'topic');
  if (problem) return problem;
  if (topic.includes('+') || topic.includes('#')) return `cannot publish on ${JSON.stringify(topic)}: a topic name has no wildcards (+ and # are for subscriptions)`;
  if (topic.startsWith('$')) return `cannot publish on ${JSON.stringify(topic)}: topics starting with '$' are reserved for the broker`;
  return undefined;
}

function assertValid(problem: string | undefined): void {
  if (problem) throw new TypeError(problem);
}

/** Targeted request topics already made, by action then target: one per request otherwise. Bounded. */
const targetedTopics = new Map<string, Map<string, string>>();

export function requestTopic(action: string, target?: string): string {
  assertValid(checkPath(action));
  if (target === undefined || target === '*') return `${action}/request`;
  let byTarget = targetedTopics.get(action);
  const known = byTarget?.get(target);
  if (known !== undefined) return known;
  assertValid(checkClientId(target));
  if (!byTarget || byTarget.size >= KNOWN_VALID_PATHS_KEPT) {
    if (targetedTopics.size >= KNOWN_VALID_PATHS_KEPT) targetedTopics.clear();
    targetedTopics.set(action, (byTarget = new Map()));
  }
  const topic = `${action}/request/${target}`;
  byTarget.set(target, topic);
  return topic;
}

export function responseTopic(action: string, requester: string): string {
  assertValid(checkPath(action));
  assertValid(checkClientId(requester));
  return `${action}/response/${requester}`;
}

export function cancelTopic(action: string): string {
  assertValid(checkPath(action));
  return `${action}/cancel`;
}

export function notificationTopic(category: string): string {
  assertValid(checkPath(category, 'category'));
  return `${category}/notification`;
}

export function logTopic(category: string): string {
  assertValid(checkPath(category, 'category'));
  return `${category}/log`;
}

export function presenceTopic(clientId: string): string {
  assertValid(checkClientId(clientId));
  return `${PRESENCE_PREFIX}${clientId}`;
}

/** Filter matching every client's presence. */
/**
 * A filter no one subscribes to: a requester that has not heard its broker lately when a
 * handler's first answer is overdue unsubscribes from it, and the UNSUBACK says the broker runs
 * (protocol §4.7). An UNSUBSCRIBE changes nothing and is answered whatever the filter (MQTT 3.1.1 §3.10).
 */
export const BROKER_PROBE_FILTER = 'relais/probe';

export const PRESENCE_FILTER = `${PRESENCE_PREFIX}+`;

/**
 * Topics already read: a client sees the same few (its actions, its response topics) on
 * every message. Bounded, so a stream of made-up topics cannot grow it.
 */
const parsedTopics = new Map<string, ParsedTopic>();
const PARSED_TOPICS_KEPT = 4096;

/** Reads what a topic is. Never throws: anything outside the scheme is `{ kind: 'other' }`. */
export function parseTopic(topic: string): ParsedTopic {
  let parsed = parsedTopics.get(topic);
  if (parsed) return parsed;
  parsed = readTopic(topic);
  if (parsedTopics.size >= PARSED_TOPICS_KEPT) parsedTopics.clear();
  parsedTopics.set(topic, parsed);
  return parsed;
}

function readTopic(topic: string): ParsedTopic {
  if (topic.startsWith(PRESENCE_PREFIX)) {
    const clientId = topic.slice(PRESENCE_PREFIX.length);
    return checkClientId(clientId) ? { kind: 'other' } : { kind: 'presence', clientId };
  }
  const segments = topic.split('/');
  const n = segments.length;
  const last = segments[n - 1];
  const beforeLast = n >= 2 ? segments[n - 2] : undefined;
  const head = (count: number): string | undefined => {
    const path = segments.slice(0, n - count).join('/');
    return path && !checkPath(path) ? path : undefined;
  };
  if (last === 'request' || last === 'cancel') {
    const action = head(1);
    if (action) return { kind: last, action };
  } else if (last === 'notification' || last === 'log') {
    const category = head(1);
    if (category) return { kind: last, category };
  } else if (last !== undefined && (beforeLast === 'request' || beforeLast === 'response' || beforeLast === 'cancel')) {
    const action = head(2);
    if (action && !checkClientId(last)) {
      if (beforeLast === 'response') return { kind: 'response', action, requester: last };
      return { kind: beforeLast, action, target: last };
    }
  }
  return { kind: 'other' };
}

const HASH = 0x23;
const PLUS = 0x2b;

/** MQTT topic filter matching (+ one level, # the rest), as brokers do it. [MQTT-4.7] */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  // Level by level in place, without splitting: a client runs this for each of its subscriptions
  // on every message it receives (the router, subscribed to everything, on every message of the bus).
  let f = 0; // start of the filter's current level
  let t = 0; // start of the topic's current level; topic.length + 1 once past its last level
  for (;;) {
    const fEnd = levelEnd(filter, f);
    if (fEnd === f + 1 && filter.charCodeAt(f) === HASH) return true; // '#' matches the parent level too: 'a/#' matches 'a'
    if (t > topic.length) return false; // the filter has more levels
    const tEnd = levelEnd(topic, t);
    const plus = fEnd === f + 1 && filter.charCodeAt(f) === PLUS;
    if (!plus && !sameLevel(filter, f, fEnd, topic, t, tEnd)) return false;
    if (fEnd === filter.length) return tEnd === topic.length;
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

/** Whether `a` from `aStart` to `aEnd` and `b` from `bStart` to `bEnd` are the same text. */
function sameLevel(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (let i = 0; i < aEnd - aStart; i++) if (a.charCodeAt(aStart + i) !== b.charCodeAt(bStart + i)) return false;
  return true;
}

/** Where the level starting at `from` ends: the index of its '/', or the text's length. */
function levelEnd(text: string, from: number): number {
  const slash = text.indexOf('/', from);
  return slash < 0 ? text.length : slash;
}

/** Why `filter` is not a valid MQTT subscription filter, or undefined. protocol §2.1 */
export function checkFilter(filter: string): string | undefined {
  const problem = checkTopicText(filter, 'topic filter');
  if (problem) return problem;
  const parts = filter.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.includes('#') && (part !== '#' || i !== parts.length - 1)) {
      return `filter ${JSON.stringify(filter)}: '#' must be a whole last level`;
    }
    if (part.includes('+') && part !== '+') return `filter ${JSON.stringify(filter)}: '+' must be a whole level`;
  }
  return undefined;
}
