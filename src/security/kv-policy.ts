/**
 * Who may read and write which keys of the key-value store (protocol §14.8, docs/security.md
 * "Key-value store"): the policy's `kv` rules, decided by the router on every request (the
 * broker only lets a role send `relais/kv/...` requests at all). Like the topic rules, they only
 * allow: a key no rule grants is refused. Pure: no I/O.
 *
 * A pattern is `<bucket>` (every key of it), `<bucket>/<key>` (one key) or `<bucket>/<prefix>*`
 * (the keys that begin with the prefix); `${id}` in the key stands for the asker's identity. The
 * bucket `*` is every bucket but `config`, where each client's configuration lives: a client's
 * configuration may hold its secrets, so reading another's is granted by naming `config`.
 */
import { z } from 'zod';
import { BUCKET_PATTERN, CONFIG_BUCKET } from '../protocol/kv.js';
import { hasRole, identityOf, type Policy, type Subject } from './policy.js';

export type KvPermission = 'read' | 'write';

const NAME = /^[A-Za-z0-9_.:@-]{1,128}$/;
const KEY_PART = /^(\$\{id\}|[A-Za-z0-9_.:@=+/-])*$/;

/** Why `pattern` is not a kv pattern, or undefined. */
export function checkKvPattern(pattern: string): string | undefined {
  const slash = pattern.indexOf('/');
  const bucket = slash < 0 ? pattern : pattern.slice(0, slash);
  if (bucket !== '*' && !BUCKET_PATTERN.test(bucket)) return `kv pattern ${JSON.stringify(pattern)}: the bucket is * or 1-64 letters, digits, _ or -`;
  if (slash < 0) return undefined;
  const key = pattern.slice(slash + 1).replace(/\*$/, '');
  if (!KEY_PART.test(key) || key.includes('*')) return `kv pattern ${JSON.stringify(pattern)}: after the bucket, key characters and \${id}, and at most a last *`;
  return undefined;
}

const kvPatternSchema = z.string().superRefine((value, ctx) => {
  const problem = checkKvPattern(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const nameSchema = (what: string) => z.string().regex(NAME, `${what} must be 1-128 characters among letters, digits and _ . : @ -`);

export const kvRuleSchema = z
  .object({
    name: z.string().min(1).optional(),
    /** Whoever holds one of these roles... */
    roles: z.array(nameSchema('a role')).optional(),
    /** ...or is one of these identities. Neither: every authenticated identity. */
    identities: z.array(nameSchema('an identity')).optional(),
    read: z.array(kvPatternSchema).default([]),
    /** Put and delete (writing does not imply reading: list the pattern under read too). */
    write: z.array(kvPatternSchema).default([]),
  })
  .strict();
export type KvRule = z.output<typeof kvRuleSchema>;

interface Parsed {
  /** undefined: every bucket but config. */
  bucket: string | undefined;
  /** undefined: every key. */
  key: string | undefined;
  prefix: boolean;
}

function parse(pattern: string, self: string): Parsed {
  const slash = pattern.indexOf('/');
  const bucketPart = slash < 0 ? pattern : pattern.slice(0, slash);
  const bucket = bucketPart === '*' ? undefined : bucketPart;
  if (slash < 0) return { bucket, key: undefined, prefix: false };
  let key = pattern.slice(slash + 1);
  const prefix = key.endsWith('*');
  if (prefix) key = key.slice(0, -1);
  return { bucket, key: key.replaceAll('${id}', self), prefix };
}

function bucketMatches(parsed: Parsed, bucket: string): boolean {
  return parsed.bucket === undefined ? bucket !== CONFIG_BUCKET : parsed.bucket === bucket;
}

/** The patterns the rules that apply to `subject` grant it for `permission`. */
function patternsOf(policy: Policy, subject: Subject, permission: KvPermission): Parsed[] {
  if (!subject.identity) return [];
  const self = identityOf(subject.identity);
  const found: Parsed[] = [];
  for (const rule of (policy as Policy & { kv?: KvRule[] }).kv ?? []) {
    const everyone = rule.roles === undefined && rule.identities === undefined;
    const applies = everyone || (rule.identities?.includes(self) ?? false) || (rule.roles?.some((role) => hasRole(policy, subject, role)) ?? false);
    if (!applies) continue;
    for (const pattern of rule[permission]) found.push(parse(pattern, self));
  }
  return found;
}

/** Whether `subject` may `permission` the key `bucket/key`. */
export function kvAllows(policy: Policy, subject: Subject, permission: KvPermission, bucket: string, key: string): boolean {
  return patternsOf(policy, subject, permission).some((p) => bucketMatches(p, bucket) && (p.key === undefined || (p.prefix ? key.startsWith(p.key) : key === p.key)));
}

/**
 * How much of the keys beginning with `prefix` in `bucket` `subject` may read: `all`, `some`
 * (each key is checked with `kvAllows`), or `none` (the request is refused).
 */
export function kvReadRange(policy: Policy, subject: Subject, bucket: string, prefix: string): 'all' | 'some' | 'none' {
  let some = false;
  for (const p of patternsOf(policy, subject, 'read')) {
    if (!bucketMatches(p, bucket)) continue;
    if (p.key === undefined) return 'all';
    if (p.prefix && prefix.startsWith(p.key)) return 'all';
    if (p.key.startsWith(prefix)) some = true;
  }
  return some ? 'some' : 'none';
}
