/**
 * The key-value store as bus actions (protocol §14): get, put, delete, keys, history, watch and
 * buckets, served by the router over a `KvStore`. Each request is decided for the identity that
 * asks (`HistoryAccess.asker`, the HTTP API's `onBehalfOf` included) by the policy's kv rules,
 * read again on every request and on every step of a running watch, so that a tightened policy
 * holds on connections already open (protocol §14.8). Every change is an event in the one stream
 * (§11.8, §14.7); values whose time to live ran out get an `expire` tombstone from a sweep.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Bus } from '../client/bus.js';
import type { HandlerContext, Registration } from '../client/types.js';
import { BusyError, InvalidMessageError, NotAuthorizedError, RelaisError, StreamInterruptedError } from '../protocol/errors.js';
import { watchLostConnection } from './lost-connection.js';
import {
  BucketNotFoundError,
  bucketSettingsSchema,
  CONFIG_BUCKET,
  CONFIG_SCHEMA_BUCKET,
  ConfigInvalidError,
  configSchemaAnnouncementSchema,
  KeyNotFoundError,
  KV_ACTIONS,
  KV_WATCH_STEP_CHANGES,
  kvBucketsSchema,
  kvConfigSchema,
  kvDeleteSchema,
  kvGetSchema,
  kvHistorySchema,
  kvKeysSchema,
  kvPutSchema,
  kvWatchSchema,
  RevisionConflictError,
  ValueTooLargeError,
  type BucketSettings,
  type KvBuckets,
  type KvConfig,
  type KvEntry,
  type KvHistory,
  type KvKeysPage,
  type KvWatch,
  type KvWatchStep,
  type KvWritten,
  type StoredValue,
} from '../protocol/kv.js';
import { kvAllows, kvReadRange, type KvPermission } from '../security/kv-policy.js';
import type { HistoryAccess } from './history-access.js';
import { parsed } from './history-service.js';
import { hasValue, storedSize, storedValueOf, type KvStore, type KvWrite } from './kv-store.js';

/** Bytes of JSON per watch step at most: a step stays well under the message size limit (§3.4) whatever the values. */
const WATCH_STEP_BYTES = 256 * 1024;
/** Expired values tombstoned per sweep turn. */
const SWEEP_BATCH = 100;
/** A delete retried this many times when the key changes under it (no expectRevision given). */
const DELETE_ATTEMPTS = 3;
/** Watches one requester may run at once for one identity: a peer that never cancels cannot hold the router's memory. */
export const MAX_WATCHES_PER_REQUESTER = 64;
/** Compiled configuration schemas kept, by client and announcement revision. */
const MAX_CACHED_SCHEMAS = 1000;

export interface KvServiceOptions {
  logger: Logger;
  /** Bucket settings and whether a put makes a bucket (the router's `kv` configuration, protocol §14.2). */
  config?: KvConfig | undefined;
  /** The router's id: the author of `expire` tombstones. */
  routerId: string;
  /** A change was written (by this router): for the event stream. */
  onChange?: (entry: KvEntry) => void;
  /** How often expired values are tombstoned (ms; 0: never). Default 1000. */
  sweepEveryMs?: number;
  /**
   * How often a running watch reads the store even when this router wrote nothing (ms): a store
   * shared with other routers (PostgreSQL) changes under it. Default 1000; the watches also wake
   * at once on this router's own writes.
   */
  watchPollMs?: number;
  now?: () => number;
}

type Ask = (identity: string) => ReturnType<HistoryAccess['policySubject']>;

export class KvService {
  private readonly config: z.output<typeof kvConfigSchema>;
  private readonly now: () => number;
  /** Running watches, woken by this router's writes. */
  private readonly watchers = new Set<(bucket: string) => void>();
  private readonly schemas = new Map<string, z.ZodType>();
  /** Running watches by requester and the identity it asks for. */
  private readonly watchesOf = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping = false;
  private closed = false;

  constructor(
    private readonly store: KvStore,
    private readonly access: HistoryAccess,
    private readonly options: KvServiceOptions,
  ) {
    this.config = kvConfigSchema.parse(options.config ?? {});
    this.now = options.now ?? Date.now;
  }

  async serve(bus: Bus): Promise<Registration[]> {
    const sweepEveryMs = this.options.sweepEveryMs ?? 1000;
    if (sweepEveryMs > 0) {
      this.sweeper = setInterval(() => void this.sweep(), sweepEveryMs);
      this.sweeper.unref();
    }
    const asker = (ctx: HandlerContext) => this.access.asker(ctx);
    return Promise.all([
      bus.handle(KV_ACTIONS.get, (payload: unknown, ctx) => this.get(parsed(() => kvGetSchema.parse(payload)), asker(ctx))),
      bus.handle(KV_ACTIONS.put, (payload: unknown, ctx) => this.put(parsed(() => kvPutSchema.parse(payload)), asker(ctx))),
      bus.handle(KV_ACTIONS.delete, (payload: unknown, ctx) => this.delete(parsed(() => kvDeleteSchema.parse(payload)), asker(ctx))),
      bus.handle(KV_ACTIONS.keys, (payload: unknown, ctx) => this.keys(parsed(() => kvKeysSchema.parse(payload)), asker(ctx))),
      bus.handle(KV_ACTIONS.history, (payload: unknown, ctx) => this.history(parsed(() => kvHistorySchema.parse(payload)), asker(ctx))),
      bus.handle(KV_ACTIONS.watch, (payload: unknown, ctx) => this.watch(parsed(() => kvWatchSchema.parse(payload)), asker(ctx), ctx, bus)),
      bus.handle(KV_ACTIONS.buckets, (payload: unknown, ctx) => this.buckets(parsed(() => kvBucketsSchema.parse(payload ?? {})), asker(ctx))),
    ]);
  }

  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const wake of this.watchers) wake('');
  }

  /** A bucket's settings: its own, over the configured defaults, over Relais' (protocol §14.2). */
  settingsOf(bucket: string): BucketSettings {
    return bucketSettingsSchema.parse({ ...this.config.defaults, ...this.config.buckets[bucket] });
  }

  private async get(input: z.output<typeof kvGetSchema>, asker: string): Promise<KvEntry> {
    this.require(asker, 'read', input.bucket, input.key);
    const entry = await this.store.entry(input.bucket, input.key, input.revision);
    const where = `${input.bucket}/${input.key}`;
    if (input.revision !== undefined) {
      if (!entry) throw new KeyNotFoundError(`${where}: revision ${input.revision} is not kept (never this key's, or past the bucket's history depth)`, { bucket: input.bucket, key: input.key, revision: input.revision });
      return entry;
    }
    if (!entry || !hasValue(entry, this.now())) throw new KeyNotFoundError(`${where}: no value${entry ? ` (${entry.operation === 'put' ? 'expired' : 'deleted'} at revision ${entry.revision})` : ''}`, { bucket: input.bucket, key: input.key });
    return entry;
  }

  private async put(input: z.output<typeof kvPutSchema>, asker: string): Promise<KvWritten> {
    this.require(asker, 'write', input.bucket, input.key);
    this.requireBucket(input.bucket);
    const settings = this.settingsOf(input.bucket);
    let value: StoredValue;
    try {
      value = storedValueOf(input.value);
    } catch (error) {
      throw new InvalidMessageError(`value: ${(error as Error).message}`);
    }
    const size = storedSize(value);
    if (size > settings.maxValueBytes) {
      throw new ValueTooLargeError(`value of ${input.bucket}/${input.key}: ${size} bytes, over the bucket's maxValueBytes ${settings.maxValueBytes}`, { bucket: input.bucket, key: input.key, size, max: settings.maxValueBytes });
    }
    if (input.bucket === CONFIG_BUCKET) await this.checkConfig(input.key, input.value, value);
    if (input.bucket === CONFIG_SCHEMA_BUCKET) checkAnnouncement(input.value);
    const ttl = input.ttl ?? settings.ttl;
    const entry = await this.write({
      bucket: input.bucket,
      key: input.key,
      operation: 'put',
      value,
      author: asker,
      ...(input.expectRevision !== undefined && { expectRevision: input.expectRevision }),
      ...(ttl !== undefined && { ttl }),
      historyDepth: settings.historyDepth,
      now: this.now(),
    });
    return { revision: entry.revision };
  }

  /** A tombstone, only over a value (deleting a key without one answers KeyNotFoundError, protocol §14.3). */
  private async delete(input: z.output<typeof kvDeleteSchema>, asker: string): Promise<KvWritten> {
    this.require(asker, 'write', input.bucket, input.key);
    const settings = this.settingsOf(input.bucket);
    for (let attempt = 1; ; attempt += 1) {
      const now = this.now();
      const current = await this.store.entry(input.bucket, input.key);
      if (input.expectRevision === undefined && (!current || !hasValue(current, now))) {
        throw new KeyNotFoundError(`${input.bucket}/${input.key}: no value to delete`, { bucket: input.bucket, key: input.key });
      }
      try {
        const entry = await this.write({
          bucket: input.bucket,
          key: input.key,
          operation: 'delete',
          author: asker,
          // Without the caller's own, the revision read above: a put in between is not deleted unseen.
          expectRevision: input.expectRevision ?? current!.revision,
          historyDepth: settings.historyDepth,
          now,
        });
        return { revision: entry.revision };
      } catch (error) {
        if (!(error instanceof RevisionConflictError) || input.expectRevision !== undefined || attempt >= DELETE_ATTEMPTS) throw error;
      }
    }
  }

  private async keys(input: z.output<typeof kvKeysSchema>, asker: string): Promise<KvKeysPage> {
    const range = this.readRange(asker, input.bucket, input.prefix ?? '');
    const page = await this.store.keys(input.bucket, { prefix: input.prefix, after: input.after, limit: input.limit, now: this.now() });
    return range === 'all' ? page : { keys: page.keys.filter((key) => this.allowed(asker, 'read', input.bucket, key)), more: page.more };
  }

  private async history(input: z.output<typeof kvHistorySchema>, asker: string): Promise<KvHistory> {
    this.require(asker, 'read', input.bucket, input.key);
    return { entries: await this.store.history(input.bucket, input.key, input.limit) };
  }

  private async buckets(_input: unknown, asker: string): Promise<KvBuckets> {
    const now = this.now();
    const states = new Map((await this.store.buckets(now)).map((state) => [state.name, state]));
    const names = new Set([...states.keys(), ...Object.keys(this.config.buckets), CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET]);
    return {
      buckets: [...names]
        .sort()
        .filter((name) => this.readRange(asker, name, '', false) !== 'none')
        .map((name) => {
          const settings = this.settingsOf(name);
          return { name, ...settings, revision: states.get(name)?.revision ?? 0, keys: states.get(name)?.keys ?? 0 };
        }),
    };
  }

  /**
   * The changes of a bucket, as progress steps: with `since`, every kept revision after it;
   * without, each matching key's current value; then `upToDate`, then each change live, until
   * the caller cancels, its requester's presence leaves, or the policy no longer lets it read
   * (code 4). Changes are read from the store by revision after the last one sent: none lost or
   * sent twice, whichever router wrote them.
   */
  private async watch(input: KvWatch, asker: string, ctx: HandlerContext, bus: Bus): Promise<null> {
    const prefix = input.prefix ?? '';
    let range = this.readRange(asker, input.bucket, prefix);
    // Counted per identity asked for: the HTTP API's watches are its callers', each with its own bound.
    const counted = `${ctx.source}\n${asker}`;
    const running = this.watchesOf.get(counted) ?? 0;
    if (running >= MAX_WATCHES_PER_REQUESTER) {
      throw new BusyError(`${asker} runs ${running} watches already, the most one identity may: cancel one first`, { details: { running, max: MAX_WATCHES_PER_REQUESTER } });
    }
    this.watchesOf.set(counted, running + 1);
    let wake: (() => void) | undefined;
    let fresh = false;
    const onChange = (bucket: string) => {
      if (bucket !== '' && bucket !== input.bucket) return;
      fresh = true;
      wake?.();
    };
    this.watchers.add(onChange);
    const onAbort = () => wake?.();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const lostConnection = watchLostConnection(bus, () => wake?.());
    const requester = ctx.source;
    const instance = presenceInstance(bus, requester);
    const pollMs = this.options.watchPollMs ?? 1000;
    let last = input.since ?? 0;
    /** Sends `changes` (already after `last`) in steps bounded in count and bytes; the last step carries `upToDate` when asked. */
    const send = (changes: readonly KvEntry[], upToDate: boolean, revision: number) => {
      let step: KvEntry[] = [];
      let bytes = 0;
      const flush = (final: boolean) => {
        if (step.length === 0 && !final) return;
        const payload: KvWatchStep = { changes: step, revision: Math.max(revision, last), ...(final && upToDate && { upToDate: true as const }) };
        ctx.progress(undefined, payload);
        step = [];
        bytes = 0;
      };
      for (const change of changes) {
        last = Math.max(last, change.revision);
        if (range === 'some' && !this.allowed(asker, 'read', input.bucket, change.key)) continue;
        const size = JSON.stringify(change).length;
        if (step.length > 0 && (step.length >= KV_WATCH_STEP_CHANGES || bytes + size > WATCH_STEP_BYTES)) flush(false);
        step.push(change);
        bytes += size;
      }
      if (upToDate || step.length > 0) flush(upToDate);
    };
    const checkStillAllowed = () => {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      // Code 1: the library's watch asks again (another router, or this one once back).
      if (this.closed) throw new StreamInterruptedError('the router is closing: watch again from the last revision');
      lostConnection.check();
      // The policy as it is now: a rule removed ends the watch (protocol §14.8).
      range = this.readRange(asker, input.bucket, prefix);
      if (instance !== undefined && presenceInstance(bus, requester) !== instance) throw new RelaisError('REQUESTER_GONE', `the requester ${requester} left: its watch ends`);
    };
    /** Reads what the store holds after `last`, a page per turn, sending each. */
    const readChanges = async (): Promise<void> => {
      for (;;) {
        const page = await this.store.changes(input.bucket, { after: last, prefix: input.prefix, limit: 1000 });
        if (page.length === 0) return;
        send(page, false, page.at(-1)!.revision);
        checkStillAllowed();
      }
    };
    try {
      if (input.since === undefined) {
        // The current values up to the bucket's revision now, then the changes after it.
        const through = await this.store.revision(input.bucket);
        let after = 0;
        for (;;) {
          const page = await this.store.changes(input.bucket, { after, prefix: input.prefix, limit: 1000, current: { through, now: this.now() } });
          if (page.length === 0) break;
          after = page.at(-1)!.revision;
          // A snapshot step: `last` stays below, where the changes after `through` begin.
          const before = last;
          send(page, false, through);
          last = before;
          checkStillAllowed();
        }
        last = through;
      }
      await readChanges();
      // `last`, not the bucket's revision now: a write after the last read is sent next, and a
      // requester resuming from this revision must not skip it.
      send([], true, last);
      for (;;) {
        checkStillAllowed();
        if (!fresh) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (pollMs > 0) setTimeout(resolve, pollMs).unref();
          });
          wake = undefined;
        }
        fresh = false;
        checkStillAllowed();
        await readChanges();
      }
    } finally {
      const left = (this.watchesOf.get(counted) ?? 1) - 1;
      if (left > 0) this.watchesOf.set(counted, left);
      else this.watchesOf.delete(counted);
      this.watchers.delete(onChange);
      ctx.signal.removeEventListener('abort', onAbort);
      lostConnection.stop();
    }
  }

  /** Writes, then tells the event stream and the watches. */
  private async write(write: KvWrite): Promise<KvEntry> {
    const entry = await this.store.write(write);
    try {
      this.options.onChange?.(entry);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'kv: the change event could not be added');
    }
    for (const wake of this.watchers) wake(entry.bucket);
    return entry;
  }

  /** Tombstones the values whose time to live ran out (operation `expire`): a put meanwhile wins (compare-and-set). */
  async sweep(): Promise<number> {
    if (this.sweeping || this.closed) return 0;
    this.sweeping = true;
    let done = 0;
    try {
      const now = this.now();
      for (const entry of await this.store.expired(now, SWEEP_BATCH)) {
        try {
          await this.write({ bucket: entry.bucket, key: entry.key, operation: 'expire', author: this.options.routerId, expectRevision: entry.revision, historyDepth: this.settingsOf(entry.bucket).historyDepth, now });
          done += 1;
        } catch (error) {
          if (!(error instanceof RevisionConflictError)) throw error;
        }
      }
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'kv: expired values could not be tombstoned (tried again at the next sweep)');
    } finally {
      this.sweeping = false;
    }
    return done;
  }

  private allowed(asker: string, permission: KvPermission, bucket: string, key: string): boolean {
    const policy = this.access.policySubject(asker);
    return policy === undefined || kvAllows(policy.policy, policy.subject, permission, bucket, key);
  }

  private require(asker: string, permission: KvPermission, bucket: string, key: string): void {
    if (this.allowed(asker, permission, bucket, key)) return;
    this.options.logger.info({ asker, bucket, key, permission }, 'kv: refused by the policy');
    throw new NotAuthorizedError(`${asker} may not ${permission} ${bucket}/${key} (the policy's kv rules, docs/security.md "Key-value store")`, { details: { bucket, key, permission } });
  }

  /** How much of `bucket/prefix*` `asker` may read; `none` refused with code 4 unless `refuse` is false. */
  private readRange(asker: string, bucket: string, prefix: string, refuse = true): 'all' | 'some' | 'none' {
    const policy = this.access.policySubject(asker);
    const range = policy === undefined ? 'all' : kvReadRange(policy.policy, policy.subject, bucket, prefix);
    if (range === 'none' && refuse) {
      this.options.logger.info({ asker, bucket, prefix }, 'kv: refused by the policy');
      throw new NotAuthorizedError(`${asker} may not read ${bucket}/${prefix}* (the policy's kv rules, docs/security.md "Key-value store")`, { details: { bucket, prefix, permission: 'read' } });
    }
    return range;
  }

  private requireBucket(bucket: string): void {
    if (this.config.createOnPut || bucket === CONFIG_BUCKET || bucket === CONFIG_SCHEMA_BUCKET || Object.hasOwn(this.config.buckets, bucket)) return;
    throw new BucketNotFoundError(`bucket ${bucket} does not exist, and the router's kv configuration makes no bucket on put (createOnPut: false)`, { bucket });
  }

  /** A client's configuration against the schema it announced in config-schema/<id> (protocol §14.6): code 2 naming each field. */
  private async checkConfig(client: string, value: unknown, stored: StoredValue): Promise<void> {
    const announced = await this.store.entry(CONFIG_SCHEMA_BUCKET, client);
    if (!announced || !hasValue(announced, this.now())) return;
    if ('bytes' in stored) throw new ConfigInvalidError(`config/${client}: a configuration is JSON, not bytes`, { details: { issues: [{ path: [], message: 'expected JSON, got bytes' }] } });
    const cacheKey = `${client}\n${announced.revision}`;
    let schema = this.schemas.get(cacheKey);
    if (!schema) {
      schema = compileAnnounced(announced.value);
      if (this.schemas.size >= MAX_CACHED_SCHEMAS) this.schemas.delete(this.schemas.keys().next().value!);
      this.schemas.set(cacheKey, schema);
    }
    const result = schema.safeParse(value);
    if (result.success) return;
    const issues = result.error.issues.slice(0, 10).map((issue) => ({ path: issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part)), message: issue.message }));
    const text = issues.map((issue) => `${issue.path.join('.') || '(value)'}: ${issue.message}`).join('; ');
    throw new ConfigInvalidError(`invalid configuration for ${client}: ${text}`, { details: { issues } });
  }
}

/** The zod schema of an announcement's JSON Schema; one that cannot be read checks nothing more than JSON. */
function compileAnnounced(value: unknown): z.ZodType {
  try {
    const { schema } = configSchemaAnnouncementSchema.parse(value);
    return z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch {
    return z.unknown();
  }
}

/** An announcement in config-schema/<id> must hold a JSON Schema zod can read: refused (code 2) otherwise. */
function checkAnnouncement(value: unknown): void {
  const parsedValue = configSchemaAnnouncementSchema.safeParse(value);
  if (!parsedValue.success) throw new InvalidMessageError(`value: a configuration schema is { schema, hash }: ${parsedValue.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  try {
    z.fromJSONSchema(parsedValue.data.schema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (error) {
    throw new InvalidMessageError(`value.schema: not a JSON Schema Relais can check values with: ${(error as Error).message}`);
  }
}

/** The requester's presence instance while it is alive; undefined when unknown (a foreign peer without presence). */
function presenceInstance(bus: Bus, id: string): string | undefined {
  const info = bus.clients().find((client) => client.id === id);
  if (!info) return undefined;
  return info.status === 'alive' ? String(info.instance ?? info.since ?? 'alive') : 'gone';
}
