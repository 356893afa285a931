/**
 * The key-value store over HTTP (docs/http-api.md "Key-value store", protocol §14): each route
 * asks the router what `relais kv` asks, for its caller (the router applies the policy's bucket
 * and prefix grants to the caller's identity, protocol §14.8), and declares the request topic it
 * acts on. Values are JSON; bytes travel as `{ "$base64": … }`, as on the wire.
 */
import type { FastifyRequest } from 'fastify';
import { isUpToDate, KV_ACTIONS } from '../protocol/kv.js';
import { requestTopic } from '../protocol/topics.js';
import { KvBucket, type KvClient } from '../client/kv.js';
import { toBase64 } from '../protocol/binary.js';
import { ApiError } from './errors.js';
import type { Caller } from './auth.js';
import { ask, forCaller, type WebContext } from './context.js';
import * as kv from './kv-schemas.js';
import { route } from './route.js';
import { publishes } from './route-access.js';
import { streamSse } from './sse.js';

const acts = (action: string) => ({ acts: () => [publishes(requestTopic(action))] });
const STORE = 'the key-value store';

export function kvRoutes(context: WebContext): void {
  const { app, table, guard } = context;

  route(app, table, guard, { method: 'GET', url: '/api/kv', path: '/api/kv', tag: 'kv', summary: 'the buckets, with their settings, keys and last revision (relais/kv/buckets)', status: 200, response: kv.buckets, errors: [503, 504], access: acts(KV_ACTIONS.buckets) }, async ({ caller }) =>
    ask(context, KV_ACTIONS.buckets, {}, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/kv/:bucket/keys', path: '/api/kv/{bucket}/keys', tag: 'kv', summary: 'a page of the keys that have a value, in order (relais/kv/keys); more: ask again with after = the last key', params: kv.bucketParams, query: kv.keysQuery, status: 200, response: kv.keysPage, errors: [400, 403, 503, 504], access: acts(KV_ACTIONS.keys) },
    async ({ params, query, caller }) => ask(context, KV_ACTIONS.keys, { bucket: params.bucket, ...query }, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/kv/:bucket/entries/*', path: '/api/kv/{bucket}/entries/{key}', tag: 'kv', summary: "a key's entry: value, revision, when and by whom (relais/kv/get); 404 key_not_found when it has no value", params: kv.entryParams, query: kv.getQuery, status: 200, response: kv.entry, errors: [400, 404, 503, 504], access: acts(KV_ACTIONS.get) },
    async ({ params, query, caller }) => ask(context, KV_ACTIONS.get, { bucket: params.bucket, key: params['*'], ...query }, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    { method: 'PUT', url: '/api/kv/:bucket/entries/*', path: '/api/kv/{bucket}/entries/{key}', tag: 'kv', summary: 'write a value (relais/kv/put); with expectRevision, compare-and-set: 409 revision_conflict with details.currentRevision when the key is at another', params: kv.entryParams, body: kv.putBody, status: 200, response: kv.written, errors: [400, 404, 409, 413, 503, 504], access: acts(KV_ACTIONS.put) },
    async ({ params, body, caller }) => ask(context, KV_ACTIONS.put, { bucket: params.bucket, key: params['*'], ...body }, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    { method: 'DELETE', url: '/api/kv/:bucket/entries/*', path: '/api/kv/{bucket}/entries/{key}', tag: 'kv', summary: 'delete a key: a tombstone revision its history keeps (relais/kv/delete); ?expectRevision= for compare-and-set', params: kv.entryParams, query: kv.deleteQuery, status: 200, response: kv.written, errors: [400, 409, 503, 504], access: acts(KV_ACTIONS.delete) },
    async ({ params, query, caller }) => ask(context, KV_ACTIONS.delete, { bucket: params.bucket, key: params['*'], ...query }, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    { method: 'GET', url: '/api/kv/:bucket/history/*', path: '/api/kv/{bucket}/history/{key}', tag: 'kv', summary: "a key's kept revisions, oldest first, deletions included (relais/kv/history)", params: kv.entryParams, query: kv.historyQuery, status: 200, response: kv.history, errors: [400, 503, 504], access: acts(KV_ACTIONS.history) },
    async ({ params, query, caller }) => ask(context, KV_ACTIONS.history, { bucket: params.bucket, key: params['*'], ...query }, STORE, caller),
  );

  route(
    app,
    table,
    guard,
    {
      method: 'GET',
      url: '/api/kv/:bucket/watch',
      path: '/api/kv/{bucket}/watch',
      tag: 'kv',
      summary: 'the changes of a bucket as Server-Sent Events (relais/kv/watch): id = revision; the current values (or the kept changes after since), an "uptodate" event, then live; resumes after Last-Event-ID without a gap',
      params: kv.bucketParams,
      query: kv.watchQuery,
      status: 200,
      produces: 'text/event-stream',
      errors: [400],
      access: acts(KV_ACTIONS.watch),
    },
    async ({ params, query, caller, request, reply }) => {
      const since = resumeRevision(request) ?? query.since;
      const watch = { ...(query.prefix !== undefined && { prefix: query.prefix }), ...(since !== undefined && { since }) };
      return streamSse(context, caller, reply, {
        what: `watch of bucket ${params.bucket}`,
        opening: `relais watch of bucket ${params.bucket}${since === undefined ? '' : ` after revision ${since}`}`,
        holds: publishes(requestTopic(KV_ACTIONS.watch)),
        messages: async function* (signal) {
          for await (const item of forCallerClient(context, caller, params.bucket).watch({ ...watch, signal })) {
            if (isUpToDate(item)) yield { event: 'uptodate', data: item };
            else yield { id: String(item.revision), data: item.value instanceof Uint8Array ? { ...item, value: toBase64(item.value) } : item };
          }
        },
      });
    },
  );
}

/** `Last-Event-ID`: the revision a reconnecting EventSource saw last. */
function resumeRevision(request: FastifyRequest): number | undefined {
  const header = request.headers['last-event-id'];
  if (header === undefined || Array.isArray(header)) return undefined;
  const revision = Number(header);
  if (!Number.isSafeInteger(revision) || revision < 0) throw new ApiError(400, 'bad_request', `Last-Event-ID must be a revision (a whole number), got ${JSON.stringify(header.slice(0, 40))}`);
  return revision;
}

/**
 * A bucket of the library whose requests the API sends for `caller` (`onBehalfOf`, as `ask()`
 * does): the library's watch, which resumes after a lost connection from the last revision it
 * yielded, with the router judging the caller's grants at each step.
 */
function forCallerClient(context: WebContext, caller: Caller | undefined, bucket: string): KvBucket {
  const { bus } = context;
  const named = forCaller(caller);
  const client: KvClient = {
    request: (action, payload, options) => bus.request(action, payload, { ...options, ...named }),
    call: (action, payload, options) => bus.call(action, payload, { ...options, ...named }),
    waitForHandler: (action, options) => bus.waitForHandler(action, options),
    get isClosed() {
      return bus.isClosed;
    },
    on: (event, listener) => bus.on(event, listener),
    off: (event, listener) => bus.off(event, listener),
    logger: bus.logger,
  };
  return new KvBucket(client, bucket);
}
