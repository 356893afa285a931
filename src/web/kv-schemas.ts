/**
 * The HTTP API's key-value routes' schemas (zod 4), from the wire's own (protocol §14,
 * src/protocol/kv.ts): path and query text read as numbers, bodies as the router takes them.
 * The router validates its payloads again.
 */
import { z } from 'zod';
import { bucketSchema, keySchema, KV_HISTORY_LIMIT, KV_KEYS_LIMIT, KV_OPERATIONS, prefixSchema, ttlSchema } from '../protocol/kv.js';

const revision = z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const bucketParams = z.object({ bucket: bucketSchema.describe('a bucket (protocol §14.1)') }).strict();

/** `/api/kv/{bucket}/entries/{key}`: the key is the rest of the path, slashes included. */
export const entryParams = z.object({ bucket: bucketSchema, '*': keySchema.describe('the key; it may hold slashes (config/plugins/a)') }).strict();

export const keysQuery = z
  .object({
    prefix: prefixSchema.optional().describe('only the keys that start with it'),
    after: keySchema.optional().describe('the keys after this one: the next page'),
    limit: z.coerce.number().int().min(1).max(KV_KEYS_LIMIT.max).optional().describe(`default ${KV_KEYS_LIMIT.default}`),
  })
  .strict();

export const getQuery = z.object({ revision: revision.min(1).optional().describe('a past revision, while the history keeps it') }).strict();

export const historyQuery = z.object({ limit: z.coerce.number().int().min(1).max(KV_HISTORY_LIMIT.max).optional().describe('the newest n revisions') }).strict();

export const putBody = z
  .object({
    value: z.unknown().refine((value) => value !== undefined, 'required (null is a value)').describe('any JSON; bytes as {"$base64": "…"} (protocol §3.5)'),
    expectRevision: z.number().int().nonnegative().optional().describe('compare-and-set: the key must be at this revision (0: it must have no value), else 409'),
    ttl: ttlSchema.optional().describe('ms until the value expires'),
  })
  .strict();

export const deleteQuery = z.object({ expectRevision: revision.optional().describe('compare-and-set: the key must be at this revision, else 409') }).strict();

export const watchQuery = z
  .object({
    prefix: prefixSchema.optional(),
    since: revision.optional().describe('replay the kept changes after this revision (the Last-Event-ID header wins); absent: the current values first'),
  })
  .strict();

export const entry = z
  .object({
    bucket: z.string(),
    key: z.string(),
    value: z.unknown().describe('JSON; bytes as {"$base64": "…"}; null for a deletion'),
    revision: z.number().int(),
    created: z.number().int(),
    updated: z.number().int(),
    operation: z.enum(KV_OPERATIONS),
    author: z.string(),
    bytes: z.literal(true).optional(),
    ttl: z.number().int().optional(),
    expires: z.number().int().optional(),
  })
  .describe('protocol §14.3');

export const written = z.object({ revision: z.number().int() });
export const keysPage = z.object({ keys: z.array(z.string()), more: z.boolean() });
export const history = z.object({ entries: z.array(entry) });
export const buckets = z.object({
  buckets: z.array(z.object({ name: z.string(), historyDepth: z.number().int(), maxValueBytes: z.number().int(), ttl: z.number().int().optional(), revision: z.number().int(), keys: z.number().int() })),
});
