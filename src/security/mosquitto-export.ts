/**
 * The policy as a Mosquitto 2.0 ACL file and configuration fragment (docs/security.md
 * "Export to Mosquitto"). Pure: the
 * CLI writes the files. Mosquitto's ACLs only allow and know no roles, so:
 * - rules for every identity become `pattern` lines (`${id}` → `%u`, the authenticated
 *   username: the real-time lane `<id>~rt` connects with the same username);
 * - rules for roles or identities become `user <name>` sections, one per identity the policy
 *   knows (its `identities`, or named by a rule); a role nobody is known to hold is not exported;
 * - `${path}` becomes `+`, `+/+`, ... up to `depth` levels; `${serves}` each action the
 *   identity serves (a last `#` as nothing, `+`, `+/+`, ...);
 * - a line that would let someone read others' responses or targeted requests, or write
 *   another's presence, beyond what decide() allows, is left out (commented, with the reason);
 * - a line whose wildcards also reach relais/ is kept and marked: Mosquitto cannot say "any
 *   action except relais/...".
 * - sessions (`<identity>~<session>`, protocol §2.1) cannot be: an ACL line names a whole level,
 *   `${id}` is `%u` (the identity), and `%c` is not bound to the username. A session would read
 *   no answers; the export says so (a note, and a comment in the ACL). Sessions need the
 *   embedded broker; on Mosquitto, clients connect with the identity itself as client id.
 * - the restricted roots (built-in restricted-actions) become `topic deny` lines in the section
 *   of each identity without the grant "restricted" whose lines would reach their requests or
 *   cancels: Mosquitto checks denials first. Where the identity also has lines naming the root,
 *   or for answers (a deny would also stop it reading its own), the line is marked wider.
 */
import { checkClientId, SYSTEM_ROOT } from '../protocol/topics.js';
import { builtinDenial, DEFAULT_MAX_SESSIONS, ruleName, touchesSystem, type Grant, type Operation, type Policy, type Rule } from './policy.js';

/** A line the export allows: who may `read`/`write` which filter's levels. */
interface Allowed {
  access: 'read' | 'write';
  levels: string[];
}

export interface MosquittoExportOptions {
  /** Where the ACL file will be, as mosquitto.conf names it. */
  aclPath: string;
  /** The password file mosquitto.conf names (made with `mosquitto_passwd`). */
  passwordPath: string;
  /** Levels `${path}` stands for, at most. Default 6. */
  depth?: number;
}

export interface MosquittoExport {
  acl: string;
  conf: string;
  /** What the export could not say exactly, one line each (also in the ACL file as comments). */
  notes: string[];
}

const ACCESS: Record<Operation, 'read' | 'write'> = { subscribe: 'read', publish: 'write' };

export function exportMosquitto(policy: Policy, options: MosquittoExportOptions): MosquittoExport {
  const depth = options.depth ?? 6;
  const notes: string[] = [];
  const out: string[] = [
    '# Mosquitto 2.0 ACL written by `relais policy export --mosquitto` from the Relais policy.',
    '# Mosquitto allows only; it knows no roles and no deny rules: see docs/security.md.',
    '',
    '# Every authenticated identity (%u is its username; <id>~rt connects with the same username)',
  ];
  const emit = (lines: string[] & { seen?: Set<string>; allowed?: Allowed[] }, rule: Rule, index: number, operation: Operation, pattern: string, self: string, grants: ReadonlySet<Grant>, keyword: 'pattern' | 'topic') => {
    for (const topic of expandPath(pattern, depth)) {
      const line = `${keyword} ${ACCESS[operation]} ${topic}`;
      lines.seen ??= new Set();
      if (lines.seen.has(line)) continue;
      lines.seen.add(line);
      const denial = builtinDenial(topic.split('/'), operation, { self, grants });
      // Mosquitto checks each delivered message against `read`: a wide filter cannot see more than its lines.
      if (denial && denial !== 'wildcard-subscription') {
        lines.push(`# left out (${ruleName(rule, index)}): ${line}  -- built-in ${denial}`);
        notes.push(`${self === '%u' ? 'everyone' : self}: left out "${line}" (${ruleName(rule, index)}): it would break the built-in rule ${denial}`);
        continue;
      }
      const levels = topic.split('/');
      if (levels[0] !== SYSTEM_ROOT && !grants.has('system') && touchesSystem(levels, operation)) {
        lines.push(`# wider on Mosquitto: also reaches ${SYSTEM_ROOT}/... topics (built-in relais-actions)`);
        notes.push(`${self === '%u' ? 'everyone' : self}: "${line}" also reaches ${SYSTEM_ROOT}/... on Mosquitto (${ruleName(rule, index)})`);
      }
      lines.push(line);
      (lines.allowed ??= []).push({ access: ACCESS[operation], levels });
    }
  };

  policy.rules.forEach((rule, index) => {
    if (rule.roles || rule.identities) return;
    for (const operation of ['publish', 'subscribe'] as const) {
      for (const pattern of rule[operation]) {
        if (pattern.split('/').includes('${role}')) {
          notes.push(`everyone: left out "${pattern}" (${ruleName(rule, index)}): \${role} needs roles`);
          continue;
        }
        if (pattern.split('/').includes('${serves}')) {
          notes.push(`everyone: left out "${pattern}" (${ruleName(rule, index)}): \${serves} needs identities`);
          continue;
        }
        emit(out, rule, index, operation, pattern.replaceAll('${id}', '%u'), '%u', new Set(), 'pattern');
      }
    }
  });
  for (const reach of restrictedReach(policy, (out as { allowed?: Allowed[] }).allowed ?? [], depth)) {
    if (reach.generic.length > 0) notes.push(`everyone: "${reach.generic.join('", "')}" also reach${reach.generic.length === 1 ? 'es' : ''} ${reach.filter} on Mosquitto (built-in restricted-actions)`);
  }

  const identities = new Set(Object.keys(policy.identities));
  for (const rule of policy.rules) for (const identity of rule.identities ?? []) identities.add(identity);
  const heldRoles = new Set<string>();
  for (const identity of [...identities].sort()) {
    const entry = Object.hasOwn(policy.identities, identity) ? policy.identities[identity] : undefined;
    const roles = new Set(entry?.roles ?? []);
    for (const role of roles) heldRoles.add(role);
    const grants = new Set<Grant>(entry?.grants ?? []);
    for (const role of roles) for (const grant of policy.roles[role]?.grants ?? []) grants.add(grant);
    const lines: string[] & { allowed?: Allowed[] } = [];
    const serves = (entry?.serves ?? []).flatMap((served) => expandServed(served, depth));
    policy.rules.forEach((rule, index) => {
      if (!rule.roles && !rule.identities) return;
      if (!(rule.identities?.includes(identity) || rule.roles?.some((role) => roles.has(role)))) return;
      for (const operation of ['publish', 'subscribe'] as const) {
        for (const pattern of rule[operation]) {
          const withId = pattern.replaceAll('${id}', identity);
          const byRole = withId.includes('${role}') ? [...roles].filter((role) => rule.roles?.includes(role) ?? true).map((role) => withId.replaceAll('${role}', role)) : [withId];
          const patterns = withId.includes('${serves}') ? byRole.flatMap((one) => serves.map((served) => one.replace('${serves}', served))) : byRole;
          for (const one of patterns) emit(lines, rule, index, operation, one, identity, grants, 'topic');
        }
      }
    });
    if (!grants.has('restricted')) {
      const denials: string[] = [];
      for (const reach of restrictedReach(policy, lines.allowed ?? [], depth)) {
        if (reach.generic.length === 0) continue;
        if (reach.deniable) {
          denials.push(`topic deny ${reach.filter}`);
        } else {
          lines.push(`# wider on Mosquitto: ${reach.generic.join(', ')} also reach${reach.generic.length === 1 ? 'es' : ''} ${reach.filter} (built-in restricted-actions)`);
          notes.push(`${identity}: "${reach.generic.join('", "')}" also reach${reach.generic.length === 1 ? 'es' : ''} ${reach.filter} on Mosquitto (built-in restricted-actions)`);
        }
      }
      if (denials.length > 0) lines.push(`# the restricted roots' requests and cancels (built-in restricted-actions): Mosquitto checks a deny before the lines above`, ...denials);
    }
    out.push('', `# ${identity}${roles.size ? ` (roles: ${[...roles].join(', ')})` : ''}`, `user ${identity}`, ...lines);
  }
  const sessions = sessionsNote(policy);
  if (sessions) {
    notes.push(sessions);
    out.push('', `# ${sessions}`);
  }
  for (const role of Object.keys(policy.roles)) {
    if (!heldRoles.has(role)) notes.push(`role ${role}: no known identity holds it, so its rules are not exported (list the identities under "identities")`);
  }
  return { acl: `${out.join('\n')}\n`, conf: mosquittoConf(options), notes };
}

/**
 * The action traffic under each restricted root, at each depth, and the allowed lines with a
 * wildcard first level that reach it (`generic`). Requests and cancels can be denied outright
 * unless a line naming the root reaches them too; answers cannot (a deny is for reading too,
 * and an identity reads its own answers there).
 */
function restrictedReach(policy: Policy, allowed: readonly Allowed[], depth: number): { filter: string; generic: string[]; deniable: boolean }[] {
  const found: { filter: string; generic: string[]; deniable: boolean }[] = [];
  for (const root of Object.keys(policy.restricted)) {
    for (let k = 1; k <= depth; k++) {
      const action = [root, ...Array.from({ length: k - 1 }, () => '+')];
      for (const [shape, access] of [[['request'], 'any'], [['request', '+'], 'any'], [['cancel'], 'any'], [['cancel', '+'], 'any'], [['response', '+'], 'write']] as const) {
        const filter = [...action, ...shape];
        const reaching = allowed.filter((line) => (access === 'any' || line.access === access) && reachesActionTraffic(line.levels, filter));
        const generic = reaching.filter((line) => line.levels[0] !== root).map((line) => `${line.access} ${line.levels.join('/')}`);
        found.push({ filter: filter.join('/'), generic, deniable: access === 'any' && reaching.every((line) => line.levels[0] !== root) });
      }
    }
  }
  return found;
}

/**
 * Can a topic match both the line's filter and `traffic` (an action filter of restrictedReach,
 * whose last `+` after request/cancel/response is a client id, never a reserved word)?
 */
function reachesActionTraffic(line: readonly string[], traffic: readonly string[]): boolean {
  const idAt = traffic.length >= 2 && traffic.at(-1) === '+' ? traffic.length - 1 : -1;
  for (let i = 0; ; i++) {
    const x = line[i];
    const y = traffic[i];
    if (x === '#') return true;
    if (x === undefined || y === undefined) return x === y;
    if (i === idAt) return line.length === traffic.length && (x === '+' || checkClientId(x) === undefined);
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
}

/** An action pattern of `serves` as MQTT levels: a last `#` as nothing, `+`, `+/+`, ... up to `depth` levels in all. */
function expandServed(served: string, depth: number): string[] {
  const levels = served.split('/');
  if (levels.at(-1) !== '#') return [served];
  const above = levels.slice(0, -1);
  const result: string[] = [];
  for (let n = Math.max(1, above.length); n <= depth; n++) result.push([...above, ...Array.from({ length: n - above.length }, () => '+')].join('/'));
  return result;
}

/** `${path}` as 1..depth levels of '+'. */
function expandPath(pattern: string, depth: number): string[] {
  if (!pattern.split('/').includes('${path}')) return [pattern];
  const result: string[] = [];
  for (let n = 1; n <= depth; n++) {
    const plus = Array.from({ length: n }, () => '+').join('/');
    result.push(...expandPath(pattern.replace('${path}', plus), depth));
  }
  return result;
}

/** What the export says of sessions, when the policy allows any (docs/security.md "Sessions"). */
function sessionsNote(policy: Policy): string | undefined {
  const allowed = (policy.sessions?.max ?? DEFAULT_MAX_SESSIONS) > 0 || Object.values(policy.roles).some((role) => (role.sessions?.max ?? 0) > 0);
  if (!allowed) return undefined;
  return 'sessions (<identity>~<session>) are not exported: Mosquitto cannot bind them to the identity, and a session would read no answers (%u is the identity); on Mosquitto connect with the identity as client id (relais commands: --no-session). Sessions need the embedded broker.';
}

function mosquittoConf(options: MosquittoExportOptions): string {
  return [
    '# Mosquitto 2.0 configuration fragment written by `relais policy export --mosquitto`.',
    '# Include it from mosquitto.conf (include_dir) or copy it there, then add your listeners.',
    'per_listener_settings false',
    'allow_anonymous false',
    '# Create it with: mosquitto_passwd -c <file> <identity>  (then -b <file> <identity> <secret> for the others)',
    `password_file ${options.passwordPath}`,
    `acl_file ${options.aclPath}`,
    '# protocol §1.2: without it a progress+final pair stalls ~40 ms on delayed ACK',
    'set_tcp_nodelay true',
    '# protocol §1.2: the defaults (1000 queued, 20 in flight) drop messages silently under load',
    'max_queued_messages 1000000',
    'max_inflight_messages 0',
    '',
    '# An external listener (docs/security.md "Listeners"), TLS 1.3 with client certificates as identities:',
    '# listener 8883',
    '# tls_version tlsv1.3',
    '# cafile /etc/relais/ca.crt',
    '# certfile /etc/relais/broker.crt',
    '# keyfile /etc/relais/broker.key',
    '# require_certificate true',
    '# use_identity_as_username true',
    '',
  ].join('\n');
}
