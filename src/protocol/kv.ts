/**
 * The router's key-value store on the wire (protocol §14, docs/kv.md): the actions, what each
 * takes and answers, the typed errors a caller tells apart, the events a change makes in the
 * one event stream (§11.8). NATS KV is the model (buckets, per-bucket revisions, history, watch,
 * compare-and-set); docs/kv.md says where Relais differs. Pure: no I/O.
 */
import { z } from 'zod';
import { isBase64Value, type Base64Value } from './binary.js';
import { InvalidMessageError, PayloadTooLargeError, RelaisError, RemoteError } from './errors.js';

/** Every action is served by the router (targeted at `relais-router`, like the history, §11.2). */
export const KV_ACTIONS = {
  get: 'relais/kv/get',
  put: 'relais/kv/put',
  delete: 'relais/kv/delete',
  keys: 'relais/kv/keys',
  history: 'relais/kv/history',
  watch: 'relais/kv/watch',
  buckets: 'relais/kv/buckets',
} as const;
export type KvAction = (typeof KV_ACTIONS)[keyof typeof KV_ACTIONS];

/** The bucket of each client's own configuration: key = the client's id (protocol §14.6). */
export const CONFIG_BUCKET = 'config';
/**
 * The bucket where each client announces the schema of its configuration (protocol §14.6): key =
 * the client's id, value `ConfigSchemaAnnouncement`. Kept in the store, not only in the client,
 * so that a write to `config/<id>` is checked, and the page draws its form, while the client is
 * offline.
 */
export const CONFIG_SCHEMA_BUCKET = 'config-schema';

/** What `config-schema/<id>` holds: the JSON Schema (draft 7) of the client's `config/<id>` value, and its hash. */
export interface ConfigSchemaAnnouncement {
  schema: Record<string, unknown>;
  /** First 16 hex digits of the SHA-256 of the schema's JSON, as for contracts (§7.6). */
  hash: string;
}
export const configSchemaAnnouncementSchema = z.object({ schema: z.record(z.string(), z.unknown()), hash: z.string().max(64) }).strip();

/** Bucket settings when the router's configuration says nothing of a bucket (protocol §14.2). */
export const KV_DEFAULTS = {
  /** Revisions kept per key, the newest included (NATS `history`, default 1 there; Relais keeps more so that `history` says something). */
  historyDepth: 10,
  /** Largest value, in bytes of its JSON text (a bytes value: its decoded bytes). */
  maxValueBytes: 64 * 1024,
} as const;
/** At most this many revisions are kept per key, whatever a bucket asks (NATS allows 64 too). */
export const KV_MAX_HISTORY_DEPTH = 64;
/** Largest value a bucket may allow: a put carries it in one message, under the 1 MiB limit (§3.4). */
export const KV_MAX_VALUE_BYTES = 512 * 1024;
/** Page sizes of `keys` and `history`. */
export const KV_KEYS_LIMIT = { default: 1000, max: 10_000 } as const;
export const KV_HISTORY_LIMIT = { default: KV_MAX_HISTORY_DEPTH, max: KV_MAX_HISTORY_DEPTH } as const;
/** Changes per progress step of `watch`: a step stays under the message size limit when values are small. */
export const KV_WATCH_STEP_CHANGES = 100;

/** A bucket name: like NATS (letters, digits, `_`, `-`), 1-64 characters. */
export const BUCKET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * A key: letters, digits and `_ . : @ = + / -`, 1-256 characters. A superset of client ids
 * (§2.1), so that a client's id is its `config` key; `/` and `.` make prefixes to watch and grant.
 */
export const KEY_PATTERN = /^[A-Za-z0-9_.:@=+/-]{1,256}$/;

export const bucketSchema = z.string().regex(BUCKET_PATTERN, 'a bucket is 1-64 letters, digits, _ or -');
export const keySchema = z.string().regex(KEY_PATTERN, 'a key is 1-256 letters, digits or _ . : @ = + / -');
/** A key prefix: a key's first characters, possibly empty (every key). */
export const prefixSchema = z.string().max(256).regex(/^[A-Za-z0-9_.:@=+/-]*$/, 'a prefix is made of key characters');
const revisionSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** A time to live in ms: at least one second, at most a year. */
export const ttlSchema = z.number().int().min(1000).max(365 * 24 * 3600 * 1000);

/**
 * A value: any JSON, or bytes as `{ "$base64": … }` (§3.5), which the router stores as bytes and
 * answers in the same form (`bytes: true` on the entry). A JSON value that is itself an object
 * with the single member `$base64` is read as bytes: that is §3.5's convention.
 */
export type KvValue = unknown;

/** What happened at a revision: a value written, a key deleted, or its time to live ran out (a tombstone either way). */
export const KV_OPERATIONS = ['put', 'delete', 'expire'] as const;
export type KvOperation = (typeof KV_OPERATIONS)[number];

/** One revision of one key, as `get`, `history` and `watch` answer it (protocol §14.3). */
export interface KvEntry {
  bucket: string;
  key: string;
  /** The value (JSON; bytes as `{ "$base64": … }`); null for a tombstone. */
  value: KvValue;
  /** This entry's revision: the bucket's sequence at this write. */
  revision: number;
  /** When the key was first written since it last did not exist (epoch ms). */
  created: number;
  /** When this revision was written (epoch ms). */
  updated: number;
  operation: KvOperation;
  /** Who wrote it (the asker's identity; for `expire`, the router). */
  author: string;
  /** The value is bytes (it travels as `{ "$base64": … }`). */
  bytes?: true;
  /** The time to live given at the put (ms). */
  ttl?: number;
  /** When it expires (epoch ms), when it has a time to live. */
  expires?: number;
}

/** One change as `watch` streams it: an entry (tombstones included). */
export type KvChange = KvEntry;

export const kvGetSchema = z
  .object({
    bucket: bucketSchema,
    key: keySchema,
    /** A past revision of this key, while the history keeps it; absent: the current value. */
    revision: revisionSchema.positive().optional(),
  })
  .strict();
export type KvGet = z.infer<typeof kvGetSchema>;

export const kvPutSchema = z
  .object({
    bucket: bucketSchema,
    key: keySchema,
    value: z.unknown().refine((value) => value !== undefined, 'value: required (null is a value)'),
    /** Compare-and-set: the key's current revision must be this one; 0: the key must not exist (create). */
    expectRevision: revisionSchema.optional(),
    /** This value expires after so many ms (then reads as absent, and a tombstone `expire` is written). */
    ttl: ttlSchema.optional(),
  })
  .strict();
export type KvPut = z.infer<typeof kvPutSchema>;

export const kvDeleteSchema = z
  .object({
    bucket: bucketSchema,
    key: keySchema,
    expectRevision: revisionSchema.optional(),
  })
  .strict();
export type KvDelete = z.infer<typeof kvDeleteSchema>;

/** What `put` and `delete` answer: the revision they wrote. */
export interface KvWritten {
  revision: number;
}

export const kvKeysSchema = z
  .object({
    bucket: bucketSchema,
    prefix: prefixSchema.optional(),
    limit: z.number().int().min(1).max(KV_KEYS_LIMIT.max).default(KV_KEYS_LIMIT.default),
    /** Keys after this one (in code-point order): the next page. */
    after: keySchema.optional(),
  })
  .strict();
export type KvKeysQuery = z.input<typeof kvKeysSchema>;

/** A page of the live keys (tombstoned and expired ones are not listed), in code-point order. */
export interface KvKeysPage {
  keys: string[];
  /** More keys follow the last one: ask again with `after`. */
  more: boolean;
}

export const kvHistorySchema = z
  .object({
    bucket: bucketSchema,
    key: keySchema,
    limit: z.number().int().min(1).max(KV_HISTORY_LIMIT.max).default(KV_HISTORY_LIMIT.default),
  })
  .strict();
export type KvHistoryQuery = z.input<typeof kvHistorySchema>;

/** The revisions of one key the history keeps, oldest first (tombstones included). */
export interface KvHistory {
  entries: KvEntry[];
}

export const kvWatchSchema = z
  .object({
    bucket: bucketSchema,
    prefix: prefixSchema.optional(),
    /**
     * Replay every kept change with a revision above this one, then go on live. Absent: the
     * current value of every matching key first (NATS' default), then live.
     */
    since: revisionSchema.optional(),
  })
  .strict();
export type KvWatch = z.infer<typeof kvWatchSchema>;

/**
 * One progress step of `watch` (§4.3): changes in revision order, none sent twice. The step that
 * ends the replay has `upToDate: true` (with no change when there was none to replay); `revision`
 * is the bucket's sequence when the step was made. The watch never answers a final response of
 * its own: it ends with the caller's cancel or deadline.
 */
export interface KvWatchStep {
  changes: KvChange[];
  revision: number;
  upToDate?: true;
}

/** What the library's `kv.watch()` yields besides changes: the replay has ended, live changes follow. */
export interface KvUpToDate {
  upToDate: true;
  /** The bucket's sequence when the replay ended. */
  revision: number;
}
export type KvWatchItem = KvChange | KvUpToDate;

export function isUpToDate(item: KvWatchItem): item is KvUpToDate {
  return (item as KvUpToDate).upToDate === true;
}

export const kvBucketsSchema = z.object({}).strict();

/** A bucket's settings (from the router's configuration, protocol §14.2) and state. */
export interface KvBucketInfo {
  name: string;
  historyDepth: number;
  maxValueBytes: number;
  /** The time to live of a value put without its own (ms); absent: none. */
  ttl?: number;
  /** The bucket's sequence: the last revision written (0 before any). */
  revision: number;
  /** Live keys. */
  keys: number;
}

export interface KvBuckets {
  buckets: KvBucketInfo[];
}

/** Settings of one bucket in the router's configuration (`kv.buckets.<name>`). */
export const bucketSettingsSchema = z
  .object({
    historyDepth: z.number().int().min(1).max(KV_MAX_HISTORY_DEPTH).default(KV_DEFAULTS.historyDepth),
    maxValueBytes: z.number().int().min(1).max(KV_MAX_VALUE_BYTES).default(KV_DEFAULTS.maxValueBytes),
    ttl: ttlSchema.optional(),
  })
  .strict();
export type BucketSettings = z.output<typeof bucketSettingsSchema>;

/** The router's `kv` configuration: settings per bucket, and whether a put may make a bucket not listed. */
export const kvConfigSchema = z
  .object({
    buckets: z.record(bucketSchema, bucketSettingsSchema.partial()).default({}),
    /** False: only the buckets listed (and `config`) exist; a put to another is refused. */
    createOnPut: z.boolean().default(true),
    /** Defaults of a bucket not listed. */
    defaults: bucketSettingsSchema.partial().default({}),
  })
  .strict();
export type KvConfig = z.input<typeof kvConfigSchema>;

// ---- Typed errors (protocol §5.1, §14.5) -------------------------------------------------

/** The key has no value (never written, deleted, expired), or the revision asked for is not kept: code 1, `details` `{bucket, key, revision?}`. */
export class KeyNotFoundError extends RelaisError {
  override readonly name = 'KeyNotFoundError';
  override readonly details: { bucket: string; key: string; revision?: number };
  constructor(message: string, details: { bucket: string; key: string; revision?: number }, options: { cause?: unknown } = {}) {
    super('KEY_NOT_FOUND', message, { ...options, details });
    this.details = details;
  }
}

/**
 * A compare-and-set found another revision (protocol §14.4): code 1, `details` `{bucket, key,
 * expectedRevision, currentRevision}`, `currentRevision` 0 when the key has no value.
 */
export class RevisionConflictError extends RelaisError {
  override readonly name = 'RevisionConflictError';
  override readonly details: { bucket: string; key: string; expectedRevision: number; currentRevision: number };
  constructor(message: string, details: { bucket: string; key: string; expectedRevision: number; currentRevision: number }, options: { cause?: unknown } = {}) {
    super('REVISION_CONFLICT', message, { ...options, details });
    this.details = details;
  }
}

/** The bucket does not exist and the router's configuration forbids making it (`createOnPut: false`): code 1, `details` `{bucket}`. */
export class BucketNotFoundError extends RelaisError {
  override readonly name = 'BucketNotFoundError';
  override readonly details: { bucket: string };
  constructor(message: string, details: { bucket: string }, options: { cause?: unknown } = {}) {
    super('BUCKET_NOT_FOUND', message, { ...options, details });
    this.details = details;
  }
}

/** A value larger than its bucket's `maxValueBytes`: code 7 (§5.1), `details` `{bucket, key, size, max}`. */
export class ValueTooLargeError extends PayloadTooLargeError {
  override readonly details: { bucket: string; key: string; size: number; max: number };
  constructor(message: string, details: { bucket: string; key: string; size: number; max: number }) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'ValueTooLargeError' });
    this.details = details;
  }
}

/**
 * A write to a client's `config` entry that breaks the schema the client announced (protocol
 * §14.6): code 2, `details.issues` `[{path, message}]` as for a contract (§7.6).
 */
export class ConfigInvalidError extends InvalidMessageError {
  override readonly name = 'ConfigInvalidError';
  constructor(message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options, 'CONFIG_INVALID');
  }
}

/**
 * The typed KV error a failed KV request stands for: an error response of the router arrives as
 * a RemoteError (code 1) or an InvalidMessageError (code 2) whose wire name says which.
 */
export function kvErrorOf(error: unknown): unknown {
  const remote = error instanceof RemoteError ? error : (error as { cause?: unknown } | null)?.cause instanceof RemoteError ? ((error as { cause: RemoteError }).cause) : undefined;
  if (!remote) return error;
  const details = (remote.details ?? {}) as Record<string, unknown>;
  const bucket = String(details.bucket ?? '');
  const key = String(details.key ?? '');
  switch (remote.remoteName) {
    case 'KeyNotFoundError':
      return new KeyNotFoundError(remote.message, { bucket, key, ...(typeof details.revision === 'number' && { revision: details.revision }) }, { cause: remote });
    case 'RevisionConflictError':
      return new RevisionConflictError(remote.message, { bucket, key, expectedRevision: Number(details.expectedRevision ?? 0), currentRevision: Number(details.currentRevision ?? 0) }, { cause: remote });
    case 'BucketNotFoundError':
      return new BucketNotFoundError(remote.message, { bucket }, { cause: remote });
    case 'ValueTooLargeError':
      return new ValueTooLargeError(remote.message, { bucket, key, size: Number(details.size ?? 0), max: Number(details.max ?? 0) });
    case 'ConfigInvalidError':
      return new ConfigInvalidError(remote.message, { cause: remote, details: remote.details });
    default:
      return error;
  }
}

// ---- Events (protocol §11.8, §14.7) ------------------------------------------------------

/** The event types a change makes in the one stream; `data` `{bucket, key, revision, author, operation}`, never the value. */
export const KV_EVENT_TYPES = ['kv.put', 'kv.delete'] as const;
export type KvEventType = (typeof KV_EVENT_TYPES)[number];

export interface KvEventData {
  bucket: string;
  key: string;
  revision: number;
  author: string;
  operation: KvOperation;
  [field: string]: unknown;
}

/** The event a change makes (`expire` is a `kv.delete` whose operation says why). */
export function kvEventType(operation: KvOperation): KvEventType {
  return operation === 'put' ? 'kv.put' : 'kv.delete';
}

// ---- Values ------------------------------------------------------------------------------

/** A value as the store keeps it: JSON text, or bytes. */
export type StoredValue = { json: string } | { bytes: Uint8Array };

/** Whether a wire value is bytes (§3.5's `{ "$base64": … }`). */
export function isBytesValue(value: unknown): value is Base64Value {
  return isBase64Value(value);
}
