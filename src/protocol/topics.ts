/**
 * Every topic string Relais uses is built and parsed here (protocol §2).
 * Nobody else concatenates topic strings.
 */

/** Topic segments with a meaning in the scheme; an action or category may not contain them. */
export const RESERVED_SEGMENTS = ['request', 'response', 'notification', 'cancel', 'log'] as const;

/** Root of the topics Relais itself owns (presence); actions may not start with it. */
export const SYSTEM_ROOT = 'relais';
const PRESENCE_PREFIX = `${SYSTEM_ROOT}/presence/`;

export type ParsedTopic =
  | { kind: 'request'; action: string; target?: string }
  | { kind: 'response'; action: string; requester: string }
  | { kind: 'cancel'; action: string; target?: string }
  | { kind: 'notification'; category: string }
  | { kind: 'log'; category: string }
  | { kind: 'presence'; clientId: string }
  | { kind: 'other' };

// '~' is kept out of ids: a client's real-time connection uses `<id>~rt` as MQTT client id.
const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** Why `id` is not a valid client id, or undefined when it is. protocol §2.1 */
export function checkClientId(id: string): string | undefined {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    return `client id ${JSON.stringify(id)} must be 1-128 characters among letters, digits and _ . : @ -`;
  }
  if ((RESERVED_SEGMENTS as readonly string[]).includes(id)) return `client id ${JSON.stringify(id)} is a reserved topic word`;
  return undefined;
}

/**
 * Paths already found valid: a client checks the same few actions on every request and
 * response. Bounded, so a stream of made-up names cannot grow it.
 */
const knownValidPaths = new Set<string>();
const KNOWN_VALID_PATHS_KEPT = 4096;

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
  if (name.length > 512) return `${what} is longer than 512 characters`;
  if (name.startsWith('$')) return `${what} ${JSON.stringify(name)} may not start with '$' (broker-reserved)`;
  const segments = name.split('/');
  for (const segment of segments) {
    if (segment.length === 0) return `${what} ${JSON.stringify(name)} has an empty segment`;
    if (segment.includes('+') || segment.includes('#')) {
      return `${what} ${JSON.stringify(name)} may not contain the MQTT wildcards + or #`;
    }
    if ((RESERVED_SEGMENTS as readonly string[]).includes(segment)) {
      return `${what} ${JSON.stringify(name)} may not contain the reserved segment '${segment}'`;
    }
  }
  if (segments[0] === SYSTEM_ROOT && segments[1] === 'presence') {
    return `${what} ${JSON.stringify(name)} is inside the reserved ${PRESENCE_PREFIX} tree`;
  }
  return undefined;
}

function assertValid(problem: string | undefined): void {
  if (problem) throw new TypeError(problem);
}

export function requestTopic(action: string, target?: string): string {
  assertValid(checkPath(action));
  if (target === undefined || target === '*') return `${action}/request`;
  assertValid(checkClientId(target));
  return `${action}/request/${target}`;
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
export const PRESENCE_FILTER = `${PRESENCE_PREFIX}+`;

/** Reads what a topic is. Never throws: anything outside the scheme is `{ kind: 'other' }`. */
export function parseTopic(topic: string): ParsedTopic {
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

/** MQTT topic filter matching (+ one level, # the rest), as brokers do it. [MQTT-4.7] */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Why `filter` is not a valid MQTT subscription filter, or undefined. */
export function checkFilter(filter: string): string | undefined {
  if (typeof filter !== 'string' || filter.length === 0) return 'a topic filter must be a non-empty string';
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
