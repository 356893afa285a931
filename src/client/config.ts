/**
 * `bus.config(schema, { defaults })`: a client's own configuration in the router's key-value
 * store, as Domogik's plugins get theirs (protocol §14.6). The client announces the JSON Schema
 * of its configuration in `config-schema/<id>` (the router checks every write to `config/<id>`
 * against it, code 2 naming the field; the page draws its form from it), reads `config/<id>`
 * (writing the defaults when there is none), and follows the changes written while it runs.
 */
import { z, type ZodType } from 'zod';
import { contractHash } from './serving/contracts.js';
import { NoHandlerError, TimeoutError } from '../protocol/errors.js';
import { CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET, ConfigInvalidError, isUpToDate, KeyNotFoundError, KV_ACTIONS, RevisionConflictError, type ConfigSchemaAnnouncement } from '../protocol/kv.js';
import { AsyncQueue } from './async-queue.js';
import { KvBucket, type KvClient } from './kv.js';

export interface ConfigOptions<T> {
  /** The configuration written when the client has none yet (checked against the schema). */
  defaults: T;
  /** Ends the following of changes. */
  signal?: AbortSignal;
  /**
   * How long to wait for a router serving the store when none is known yet, in ms (default
   * 30,000): a plugin started before the router, or while its directory is still loading the
   * retained presences (protocol §7.2), waits for it instead of failing at once.
   */
  routerWait?: number;
}

/** The default of `routerWait`. */
export const CONFIG_ROUTER_WAIT_MS = 30_000;

/** Changes queued for a slow reader of `changes()`; beyond, the oldest are dropped (the newest is what counts). */
const MAX_QUEUED_CHANGES = 100;

export interface ClientConfig<T> {
  /** The configuration now (the newest valid value seen). */
  readonly value: T;
  /** The revision of `config/<id>` it was read from. */
  readonly revision: number;
  /** Each new configuration, as the router stores it (a deleted one: the defaults). */
  changes(): AsyncIterableIterator<T>;
  /** Called with each new configuration; returns a function that stops it. */
  onChange(listener: (value: T, revision: number) => void): () => void;
  /** Writes a new configuration (checked here first, then by the router); resolves with its revision. */
  set(value: T): Promise<number>;
  /** Stops following the changes. */
  close(): void;
}

/** The configuration of client `id`; resolves once read (or written with the defaults) and followed. */
export async function openConfig<S extends ZodType>(client: KvClient, id: string, schema: S, options: ConfigOptions<z.input<S>>): Promise<ClientConfig<z.output<S>>> {
  type T = z.output<S>;
  const values = new KvBucket<unknown>(client, CONFIG_BUCKET);
  const schemas = new KvBucket<ConfigSchemaAnnouncement>(client, CONFIG_SCHEMA_BUCKET);
  const check = (value: unknown, what: string): T => {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data as T;
    const issues = parsed.error.issues.slice(0, 10).map((issue) => ({ path: issue.path.map(String), message: issue.message }));
    throw new ConfigInvalidError(`${what}: ${issues.map((issue) => `${issue.path.join('.') || '(value)'}: ${issue.message}`).join('; ')}`, { details: { issues } });
  };
  const defaults = check(options.defaults, `the defaults of ${id}'s configuration`);
  const routerWait = options.routerWait ?? CONFIG_ROUTER_WAIT_MS;
  await client.waitForHandler(KV_ACTIONS.get, { timeout: routerWait, ...(options.signal && { signal: options.signal }) }).catch((error: unknown) => {
    if (!(error instanceof TimeoutError)) throw error;
    throw new NoHandlerError(`no router serves the key-value store (${KV_ACTIONS.get}) after ${routerWait} ms: ${id}'s configuration is kept there (start one: relais start)`);
  });

  // The schema first: the router checks the defaults written below against it.
  const jsonSchema = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const hash = await contractHash(JSON.stringify(jsonSchema));
  const announced = await schemas.get(id).catch((error: unknown) => {
    if (error instanceof KeyNotFoundError) return undefined;
    throw error;
  });
  if ((announced?.value as ConfigSchemaAnnouncement | undefined)?.hash !== hash) await schemas.put(id, { schema: jsonSchema, hash });

  let value: T;
  let revision: number;
  try {
    const entry = await values.get(id);
    value = check(entry.value, `the stored configuration of ${id} (config/${id}, revision ${entry.revision})`);
    revision = entry.revision;
  } catch (error) {
    if (!(error instanceof KeyNotFoundError)) throw error;
    try {
      revision = await values.create(id, defaults);
      value = defaults;
    } catch (raced) {
      // Written meanwhile (by an admin, or another instance): that one stands.
      if (!(raced instanceof RevisionConflictError)) throw raced;
      const entry = await values.get(id);
      value = check(entry.value, `the stored configuration of ${id}`);
      revision = entry.revision;
    }
  }

  const listeners = new Set<(value: T, revision: number) => void>();
  const queues = new Set<AsyncQueue<T>>();
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const follow = async () => {
    for await (const item of values.watch({ prefix: id, since: revision, signal: stop.signal })) {
      if (isUpToDate(item) || item.key !== id || item.revision <= revision) continue;
      let next: T;
      if (item.operation === 'put') {
        try {
          next = check(item.value, `config/${id} revision ${item.revision}`);
        } catch (error) {
          // Written before the schema was announced, or by a peer that skipped the router's check: the previous value stays.
          client.logger.debug({ err: (error as Error).message }, 'config: a new value does not match the schema; the previous one stays');
          continue;
        }
      } else {
        next = defaults;
      }
      value = next;
      revision = item.revision;
      for (const listener of listeners) listener(next, item.revision);
      for (const queue of queues) queue.push(next);
    }
  };
  const following = follow().catch((error: unknown) => {
    for (const queue of queues) queue.end(error);
    client.logger.debug({ err: (error as Error).message }, 'config: following the changes ended');
  });
  const close = () => {
    stop.abort();
    options.signal?.removeEventListener('abort', onAbort);
    void following.then(() => {
      for (const queue of queues) queue.end();
    });
  };

  return {
    get value() {
      return value;
    },
    get revision() {
      return revision;
    },
    changes() {
      const queue: AsyncQueue<T> = new AsyncQueue<T>(MAX_QUEUED_CHANGES, () => queues.delete(queue));
      queues.add(queue);
      return queue;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async set(next) {
      const checked = check(next, `the configuration of ${id}`);
      return values.put(id, checked);
    },
    close,
  };
}
