/**
 * The authorisation policy as data (docs/security.md "Authorisation policy"): a schema for the policy file and a pure
 * `decide()` from (identity, roles, publish|subscribe, topic) to allow/deny and the rule that
 * decided. No I/O here: `loadPolicy()` in policy-file.ts reads the file; the embedded broker's
 * hooks and the Mosquitto export (mosquitto-export.ts) call `decide()`.
 *
 * Order: the built-in rules (BUILTIN_RULES, which only deny) guard the topic contract
 * (protocol §2), then the file's rules (which only allow) in order, then default deny.
 */
import { z } from 'zod';
import { checkClientId, checkFilter, checkPath, checkTopicName, clientIdOfConnection, identityOfClientId, SYSTEM_ROOT } from '../protocol/topics.js';
import { buildRuleIndex, findAllowingRules, type RuleIndex } from './policy-index.js';
import { kvRuleSchema } from './kv-policy.js';

/**
 * What a role or an identity may be granted beyond the built-in rules. `history:read-all` and
 * `requests:kill-any` are the router's, not the broker's: reading every row of the history
 * (protocol §11.2), killing anyone's request (§11.5).
 */
export const GRANTS = ['wildcards', 'responses', 'requests', 'presence', 'system', 'restricted', 'history:read-all', 'requests:kill-any'] as const;
export type Grant = (typeof GRANTS)[number];

export type Operation = 'publish' | 'subscribe';

/**
 * Placeholders a pattern may hold. `${path}` is one or more whole levels (an action or category);
 * `${serves}` is each action pattern the identity's entry lists in `serves` (none: the pattern
 * allows nothing), so one rule says "a service serves what it is granted, and only that".
 */
export const PLACEHOLDERS = ['${id}', '${role}', '${path}', '${serves}'] as const;

const NAME = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** Why `pattern` is not a valid policy topic pattern, or undefined. */
export function checkPattern(pattern: string): string | undefined {
  let withoutPlaceholders = pattern;
  for (const placeholder of PLACEHOLDERS) withoutPlaceholders = withoutPlaceholders.replaceAll(placeholder, 'x');
  if (withoutPlaceholders.includes('${')) return `unknown placeholder in ${JSON.stringify(pattern)}; known: ${PLACEHOLDERS.join(' ')}`;
  for (const level of pattern.split('/')) {
    if (level.includes('${') && !(PLACEHOLDERS as readonly string[]).includes(level)) {
      return `a placeholder must be a whole level in ${JSON.stringify(pattern)}`;
    }
  }
  if (pattern.split('/').filter((level) => level === '${serves}').length > 1) return `\${serves} may appear once in ${JSON.stringify(pattern)}`;
  return checkFilter(withoutPlaceholders);
}

/**
 * Why `pattern` is not an action pattern for `serves`, or undefined: an action (protocol §2.1)
 * whose levels may be `+` (one level) or, last, `#` (the levels below, any number).
 */
export function checkServedPattern(pattern: string): string | undefined {
  const problem = checkFilter(pattern);
  if (problem) return problem;
  if (pattern === '#') return undefined;
  const named = pattern.replace(/\/#$/, '').split('/').map((level) => (level === '+' ? 'x' : level)).join('/');
  const pathProblem = checkPath(named);
  return pathProblem && `action pattern ${JSON.stringify(pattern)}: ${pathProblem}`;
}

const patternSchema = z.string().superRefine((value, ctx) => {
  const problem = checkPattern(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const nameSchema = (what: string) => z.string().regex(NAME, `${what} must be 1-128 characters among letters, digits and _ . : @ -`);
const servedSchema = z.string().superRefine((value, ctx) => {
  const problem = checkServedPattern(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
/** Why `root` cannot be restricted, or undefined: it is the first level of actions (`system` for the agents', docs/agent.md). */
function checkRoot(root: string): string | undefined {
  const problem = root.includes('/') ? 'a root is one level' : root === SYSTEM_ROOT ? `${SYSTEM_ROOT}/ is guarded by the built-in rule relais-actions already` : checkPath(root);
  return problem && `restricted root ${JSON.stringify(root)}: ${problem}`;
}

export const ruleSchema = z
  .object({
    /** Shown by `relais policy check` and in denial logs beside the rule's index. */
    name: z.string().min(1).optional(),
    /** The rule applies to whoever holds one of these roles... */
    roles: z.array(nameSchema('a role')).optional(),
    /** ...or is one of these identities. Neither: every authenticated identity. */
    identities: z.array(nameSchema('an identity')).optional(),
    /** Topics it may publish on (MQTT wildcards and placeholders). */
    publish: z.array(patternSchema).default([]),
    /** Filters it may subscribe with: allowed when the pattern covers the whole filter. */
    subscribe: z.array(patternSchema).default([]),
  })
  .strict();

/** Sessions an identity may hold at once by default (protocol §2.1 `<identity>~<session>`, docs/security.md "Sessions"). */
export const DEFAULT_MAX_SESSIONS = 8;
/** Bounded so that one identity cannot hold the broker's connections alone. */
export const MAX_SESSIONS_LIMIT = 1000;

/** `sessions: { max }`: how many `<identity>~<session>` client ids one identity may have connected at once; 0 turns sessions off. */
const sessionsSchema = z.object({ max: z.number().int().min(0).max(MAX_SESSIONS_LIMIT) }).strict();

export const policySchema = z
  .object({
    version: z.literal(1),
    /** Every role the rules and identities name, with what it is granted beyond the built-ins; `sessions` replaces the top-level limit for its holders. */
    roles: z.record(
      nameSchema('a role'),
      z.object({ description: z.string().optional(), grants: z.array(z.enum(GRANTS)).default([]), sessions: sessionsSchema.optional() }).strict(),
    ),
    /** Sessions per identity (docs/security.md "Sessions"); absent: DEFAULT_MAX_SESSIONS. A role's own `sessions` replaces it for that role's holders. */
    sessions: sessionsSchema.optional(),
    /**
     * Known identities: their roles (added to those authentication gives), grants, and the
     * actions they serve (`${serves}`: `billing/#`, `demo/echo`). Used by the Mosquitto export.
     */
    identities: z
      .record(
        nameSchema('an identity'),
        z.object({ roles: z.array(nameSchema('a role')).default([]), grants: z.array(z.enum(GRANTS)).default([]), serves: z.array(servedSchema).default([]) }).strict(),
      )
      .default({}),
    /**
     * Roots of actions a generic pattern does not reach (built-in restricted-actions): calling,
     * answering or serving `<root>/...` needs a rule whose pattern begins with `<root>/`, or the
     * grant "restricted". The value says why, for whoever reads the file.
     */
    restricted: z.record(z.string(), z.string()).default({}),
    rules: z.array(ruleSchema),
    /** Who reads and writes which keys of the key-value store (protocol §14.8, kv-policy.ts): decided by the router. */
    kv: z.array(kvRuleSchema).default([]),
  })
  .strict()
  .superRefine((policy, ctx) => {
    const known = (role: string) => Object.hasOwn(policy.roles, role);
    for (const root of Object.keys(policy.restricted)) {
      const problem = checkRoot(root);
      if (problem) ctx.addIssue({ code: 'custom', path: ['restricted', root], message: problem });
    }
    for (const [identity, entry] of Object.entries(policy.identities)) {
      const problem = checkClientId(identity) ?? (identity.includes('~') ? 'an identity cannot contain ~ (protocol §2.1)' : undefined);
      if (problem) ctx.addIssue({ code: 'custom', path: ['identities', identity], message: problem });
      entry.roles.forEach((role, i) => {
        if (!known(role)) ctx.addIssue({ code: 'custom', path: ['identities', identity, 'roles', i], message: `unknown role ${JSON.stringify(role)} (declare it under "roles")` });
      });
    }
    policy.rules.forEach((rule, r) => {
      rule.roles?.forEach((role, i) => {
        if (!known(role)) ctx.addIssue({ code: 'custom', path: ['rules', r, 'roles', i], message: `unknown role ${JSON.stringify(role)} (declare it under "roles")` });
      });
      if (rule.publish.length + rule.subscribe.length === 0) ctx.addIssue({ code: 'custom', path: ['rules', r], message: 'a rule needs at least one publish or subscribe pattern' });
    });
    policy.kv.forEach((rule, r) => {
      rule.roles?.forEach((role, i) => {
        if (!known(role)) ctx.addIssue({ code: 'custom', path: ['kv', r, 'roles', i], message: `unknown role ${JSON.stringify(role)} (declare it under "roles")` });
      });
      if (rule.read.length + rule.write.length === 0) ctx.addIssue({ code: 'custom', path: ['kv', r], message: 'a kv rule needs at least one read or write pattern' });
    });
  });

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type Rule = z.output<typeof ruleSchema>;

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** Validates a parsed policy file; throws PolicyError naming the first bad field (`rules[2].subscribe[0]: ...`). */
export function parsePolicy(data: unknown, source = 'policy'): Policy {
  const result = policySchema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`)).join('') || '(top level)';
  throw new PolicyError(`${source}: ${field}: ${issue.message}`);
}

export interface Subject {
  /**
   * The MQTT client id of the connection (protocol §2.1): the authenticated identity, or one of
   * its sessions `<identity>~<session>`, each with its lane `~rt` (protocol §6.2). Roles, grants
   * and a rule's `identities` are the identity's; `${id}` and the topics a client owns
   * (its responses, its presence, its targeted requests) are the client id's. Empty/absent: anonymous.
   */
  identity?: string | undefined;
  /** Roles authentication gives it; the policy's `identities` entry adds its own. */
  roles?: readonly string[];
}

export interface Decision {
  allow: boolean;
  /** `builtin:<name>`, `rules[<i>]` or `rules[<i>] "<name>"`, or `default-deny`. */
  rule: string;
}

/** The built-in rules, in the order they are checked. Each only denies (docs/security.md, "Built-in rules"). */
export const BUILTIN_RULES = {
  anonymous: 'an identity is required',
  'invalid-topic': 'a topic name or filter brokers refuse (protocol §2.1)',
  'wildcard-subscription': "a filter with '#' or a leading '+' needs the grant \"wildcards\"",
  'others-responses': "reading <action>/response/<other> needs the grant \"responses\" (PSEC's multicast)",
  'others-requests': 'reading <action>/request/<other> needs the grant "requests"',
  'others-presence': 'relais/presence/<id> is written only by <id> (and its Last Will)',
  'relais-actions': `publishing under ${SYSTEM_ROOT}/, or serving its actions, needs a rule whose pattern starts with "${SYSTEM_ROOT}/" or the grant "system"`,
  'restricted-actions': 'calling, answering or serving an action under a root the policy lists in "restricted" needs a rule whose pattern starts with that root, or the grant "restricted"',
} as const;

/** The identity behind an MQTT client id: `alice~tab1~rt` is a lane of a session of `alice` (protocol §2.1, §6.2). */
export function identityOf(clientId: string): string {
  return identityOfClientId(clientId);
}

/**
 * How many sessions `subject`'s identity may hold at once (docs/security.md "Sessions"): the
 * largest `sessions.max` of its roles that set one, else the policy's `sessions.max`, else
 * DEFAULT_MAX_SESSIONS. 0: sessions off.
 */
export function sessionLimit(policy: Policy, subject: Subject): number {
  const who = resolve(policy, subject);
  if (!who) return 0;
  const byRole = [...who.roles].flatMap((role) => (Object.hasOwn(policy.roles, role) && policy.roles[role]!.sessions ? [policy.roles[role]!.sessions!.max] : []));
  return byRole.length > 0 ? Math.max(...byRole) : (policy.sessions?.max ?? DEFAULT_MAX_SESSIONS);
}

interface Resolved {
  /** The client id (a session's `<identity>~<session>`, never the lane): what `${id}` and the ownership built-ins are. */
  self: string;
  /** The identity: its entry, and a rule's `identities`. */
  identity: string;
  roles: Set<string>;
  grants: Set<Grant>;
  /** What `${serves}` stands for: the levels of each served action pattern (`#` as nothing or '**'). */
  serves: string[][];
}

function resolve(policy: Policy, subject: Subject): Resolved | undefined {
  if (!subject.identity) return undefined;
  const self = clientIdOfConnection(subject.identity);
  const identity = identityOfClientId(subject.identity);
  const entry = Object.hasOwn(policy.identities, identity) ? policy.identities[identity] : undefined;
  const roles = new Set([...(subject.roles ?? []), ...(entry?.roles ?? [])]);
  const grants = new Set<Grant>(entry?.grants ?? []);
  for (const role of roles) for (const grant of (Object.hasOwn(policy.roles, role) ? policy.roles[role]!.grants : [])) grants.add(grant);
  return { self, identity, roles, grants, serves: (entry?.serves ?? []).flatMap(servedLevels) };
}

/** An action pattern's levels; a last `#` is the levels below it, any number: none, or '**' (one or more). */
export function servedLevels(pattern: string): string[][] {
  const levels = pattern.split('/');
  if (levels.at(-1) !== '#') return [levels];
  const above = levels.slice(0, -1);
  return above.length === 0 ? [['**']] : [above, [...above, '**']];
}

/** Whether `subject` has `role`, from authentication or its own `identities` entry. Pure. */
export function hasRole(policy: Policy, subject: Subject, role: string): boolean {
  return resolve(policy, subject)?.roles.has(role) ?? false;
}

/** Whether `subject` holds `grant`, through one of its roles or its own `identities` entry. Pure. */
export function holdsGrant(policy: Policy, subject: Subject, grant: Grant): boolean {
  return resolve(policy, subject)?.grants.has(grant) ?? false;
}

const deny = (rule: string): Decision => ({ allow: false, rule });

/**
 * Allow or deny `operation` on `topic` (a topic name to publish on, or a filter to subscribe
 * with). Pure: the rules are looked up in an index compiled once per policy object
 * (policy-index.ts), so a policy must not be changed once decided on (a reload makes a new one).
 */
export function decide(policy: Policy, subject: Subject, operation: Operation, topic: string): Decision {
  return decideWith(firstAllowingRuleByIndex, policy, subject, operation, topic);
}

/** `decide()` scanning every rule in order: the definition the index must agree with (test/unit/policy.test.ts). */
export function decideByScan(policy: Policy, subject: Subject, operation: Operation, topic: string): Decision {
  return decideWith(firstAllowingRuleByScan, policy, subject, operation, topic);
}

/** The first rule allowing `levels`; with `requiredRoot`, only a rule whose pattern, expanded, begins with that root counts. */
type RuleFinder = (policy: Policy, who: Resolved, operation: Operation, levels: readonly string[], requiredRoot: string | undefined) => string | undefined;

function decideWith(firstAllowingRule: RuleFinder, policy: Policy, subject: Subject, operation: Operation, topic: string): Decision {
  const who = resolve(policy, subject);
  if (!who) return deny('builtin:anonymous');
  if (operation === 'publish' ? checkTopicName(topic) : checkFilter(topic)) return deny('builtin:invalid-topic');
  const levels = topic.split('/');
  const guard = builtinDenial(levels, operation, who);
  if (guard) return deny(`builtin:${guard}`);
  // The relais/ ground and the restricted roots are reached only by a pattern that names them.
  const requiredRoot =
    !who.grants.has('system') && touchesSystem(levels, operation) ? SYSTEM_ROOT : !who.grants.has('restricted') && touchesRestricted(policy, levels, operation) ? levels[0] : undefined;
  const allowed = firstAllowingRule(policy, who, operation, levels, requiredRoot);
  if (allowed !== undefined) return { allow: true, rule: allowed };
  // A rule would have allowed it but for the root restriction: say which guard decided.
  if (requiredRoot !== undefined && firstAllowingRule(policy, who, operation, levels, undefined) !== undefined) {
    return deny(requiredRoot === SYSTEM_ROOT ? 'builtin:relais-actions' : 'builtin:restricted-actions');
  }
  return deny('default-deny');
}

function firstAllowingRuleByScan(policy: Policy, who: Resolved, operation: Operation, levels: readonly string[], requiredRoot: string | undefined): string | undefined {
  for (let i = 0; i < policy.rules.length; i++) {
    const rule = policy.rules[i]!;
    if (allowsByPatterns(rule, rule[operation], who, levels, requiredRoot)) return ruleName(rule, i);
  }
  return undefined;
}

/** Whether `rule` applies to `who` and one of `patterns`, expanded for it, covers `levels` (and begins with `requiredRoot` when given). */
function allowsByPatterns(rule: Rule, patterns: readonly string[], who: Resolved, levels: readonly string[], requiredRoot: string | undefined): boolean {
  if (!appliesTo(rule, who)) return false;
  for (const pattern of patterns) {
    for (const expanded of expand(pattern, who)) {
      if (requiredRoot !== undefined && expanded[0] !== requiredRoot) continue;
      if (covers(expanded, levels)) return true;
    }
  }
  return false;
}

/** Each policy's index per operation, built at its first decision (57,000 rules: about half a second). */
const indexes = new WeakMap<Policy, Partial<Record<Operation, RuleIndex>>>();

function firstAllowingRuleByIndex(policy: Policy, who: Resolved, operation: Operation, levels: readonly string[], requiredRoot: string | undefined): string | undefined {
  let built = indexes.get(policy);
  if (!built) indexes.set(policy, (built = {}));
  const index = (built[operation] ??= buildRuleIndex(policy, operation));
  const found = findAllowingRules(index, who, levels, (rule, pattern, root) => allowsByPatterns(policy.rules[rule]!, [pattern.join('/')], who, levels, root));
  // A pattern whose first level is concrete (a word, ${id}, ${role}) begins with the topic's own first level.
  const allowed = requiredRoot === undefined ? found.any : levels[0] === requiredRoot ? found.concrete : undefined;
  return allowed === undefined ? undefined : ruleName(policy.rules[allowed]!, allowed);
}

export function ruleName(rule: Rule, index: number): string {
  return rule.name ? `rules[${index}] ${JSON.stringify(rule.name)}` : `rules[${index}]`;
}

/** The name of the built-in rule that forbids this filter/topic to `who`, if one does. Exported for the Mosquitto export. */
export function builtinDenial(levels: readonly string[], operation: Operation, who: { self: string; grants: ReadonlySet<Grant> }): keyof typeof BUILTIN_RULES | undefined {
  if (operation === 'subscribe' && isSitesWideFilter(levels)) return undefined;
  if (operation === 'subscribe') {
    if (!who.grants.has('wildcards') && (levels.includes('#') || levels[0] === '+')) return 'wildcard-subscription';
    if (!who.grants.has('responses') && couldMatchOthers(levels, 'response', who.self)) return 'others-responses';
    if (!who.grants.has('requests') && couldMatchOthers(levels, 'request', who.self)) return 'others-requests';
  } else if (!who.grants.has('presence') && couldMatchOthersPresence(levels, who.self)) {
    return 'others-presence';
  }
  return undefined;
}

/**
 * A filter over the links' statuses and rosters (`relais/sites/#`, `relais/sites/+/clients`,
 * protocol §13.4), which every library client reads: the wildcard and others' requests and
 * responses built-ins do not apply to it, as what it could match besides those topics (the
 * traffic of an action under `relais/sites/`, such as `relais/sites/get`) is not delivered
 * through it (the embedded broker's forward check, docs/security.md "Sites"). A rule must
 * still allow it.
 */
export function isSitesWideFilter(levels: readonly string[]): boolean {
  if (levels[0] !== SYSTEM_ROOT || levels[1] !== 'sites' || levels.length < 3 || levels.length > 4) return false;
  const [, , site, tail] = levels as [string, string, string, string | undefined];
  const wildcard = site === '#' || site === '+' || tail === '#' || tail === '+';
  if (!wildcard) return false;
  if (tail === undefined) return true;
  return (site === '+' || checkClientId(site) === undefined) && ['#', '+', 'clients', 'probe'].includes(tail);
}

// Levels of a filter: '+' one level, '#' the rest, '**' (from ${path}) one or more levels.
const any = (level: string | undefined) => level === '+' || level === '#' || level === '**';

/** Could `levels` match `<action>/<word>/<X>` where X is a client id other than `self`? */
function couldMatchOthers(levels: readonly string[], word: string, self: string): boolean {
  const n = levels.length;
  if (levels.includes('#') || levels.slice(-2).includes('**')) return true;
  if (n < 3) return false;
  const before = levels[n - 2]!;
  const last = levels[n - 1]!;
  if (before !== word && !any(before)) return false;
  if (last === '+') return true;
  return last !== self && checkClientId(last) === undefined;
}

/** Could `levels` match `relais/presence/<X>` where X is not `self`? */
function couldMatchOthersPresence(levels: readonly string[], self: string): boolean {
  const shape = [SYSTEM_ROOT, 'presence'];
  for (let i = 0; i < 3; i++) {
    const level = levels[i];
    if (level === undefined) return false;
    if (level === '#' || (level === '**' && i < 2)) return true;
    if (i < 2 && level !== shape[i] && !any(level)) return false;
    if (i === 2) return levels.length === 3 ? any(level) || (level !== self && checkClientId(level) === undefined) : levels[3] === '#' || level === '**';
  }
  return false;
}

/** Publishing under relais/ (not presence), or subscribing to a request or cancel there: the router's and registry's ground. */
export function touchesSystem(levels: readonly string[], operation: Operation): boolean {
  const first = levels[0]!;
  if (first !== SYSTEM_ROOT && !any(first)) return false;
  if (first === SYSTEM_ROOT && levels[1] === 'presence') return false;
  if (operation === 'publish') return true;
  const n = levels.length;
  if (levels.includes('#') || levels.includes('**')) return true;
  const last = levels[n - 1]!;
  if (last === 'request' || last === 'cancel' || last === '+') return true;
  // `<action>/request/<id>` (and `<action>/cancel/<id>`, protocol §2.2)
  return n >= 2 && ['request', 'cancel', '+'].includes(levels[n - 2]!) && checkClientId(last) === undefined;
}

/**
 * Calling, cancelling or answering (publish), or serving (subscribe), an action under a root the
 * policy restricts. Only a filter whose first level names the root counts: one that begins with
 * a wildcard needs the grant "wildcards", whose holders read everything anyway.
 */
export function touchesRestricted(policy: Policy, levels: readonly string[], operation: Operation): boolean {
  return Object.hasOwn(policy.restricted, levels[0]!) && isActionTraffic(levels, operation);
}

/** Could `levels` be `<action>/request[/<id>]`, `<action>/cancel[/<id>]` or, for a publish, `<action>/response/<id>`? */
export function isActionTraffic(levels: readonly string[], operation: Operation): boolean {
  const n = levels.length;
  if (levels.includes('#')) return true;
  const last = levels[n - 1]!;
  const before = n >= 2 ? levels[n - 2]! : undefined;
  const words = operation === 'publish' ? ['request', 'cancel', 'response'] : ['request', 'cancel'];
  if (n >= 2 && (last === 'request' || last === 'cancel' || any(last))) return true;
  return n >= 3 && before !== undefined && (words.includes(before) || any(before)) && (any(last) || checkClientId(last) === undefined);
}

function appliesTo(rule: Rule, who: Resolved): boolean {
  if (!rule.roles && !rule.identities) return true;
  return (rule.identities?.includes(who.identity) ?? false) || (rule.roles?.some((role) => who.roles.has(role)) ?? false);
}

/**
 * A pattern's levels with `${id}` and `${role}` put in (one pattern per role of the rule's
 * subject), `${path}` as '**', `${serves}` as each action the identity serves (none: no pattern).
 */
function expand(pattern: string, who: Resolved): string[][] {
  const levels = pattern.split('/').map((level) => (level === '${id}' ? who.self : level === '${path}' ? '**' : level));
  const byRole = levels.includes('${role}') ? [...who.roles].map((role) => levels.map((level) => (level === '${role}' ? role : level))) : [levels];
  const at = levels.indexOf('${serves}');
  if (at === -1) return byRole;
  return byRole.flatMap((one) => who.serves.map((served) => [...one.slice(0, at), ...served, ...one.slice(at + 1)]));
}

/** Does pattern `p` match every topic filter `f` can match (a topic name being a filter without wildcards)? */
export function covers(p: readonly string[], f: readonly string[], pi = 0, fi = 0): boolean {
  for (;;) {
    const pl = p[pi];
    const fl = f[fi];
    if (pl === undefined) return fl === undefined;
    if (pl === '#') return true; // [MQTT-4.7.1-2] '#' also matches the parent level
    if (pl === '**') {
      for (let k = fi + 1; k <= f.length; k++) {
        if (f[k - 1] === '#') return false;
        if (covers(p, f, pi + 1, k)) return true;
      }
      return false;
    }
    if (fl === undefined || fl === '#') return false;
    if (pl !== '+' && pl !== fl) return false;
    pi++;
    fi++;
  }
}
