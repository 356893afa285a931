/**
 * The HTTP API's request and answer schemas (zod 4): the routes validate with them and
 * openapi.ts turns them into the OpenAPI document. Query strings are text, so numbers are
 * coerced; the router validates its own payloads again (protocol §11.2, §11.8).
 */
import { z } from 'zod';
import { HISTORY_KINDS, historyQuerySchema, KILL_OUTCOMES, KILL_WAIT_MS } from '../protocol/history.js';
import { checkClientId, checkPath } from '../protocol/topics.js';
import { PRIORITIES } from '../protocol/envelope.js';
import { MAX_REGISTRY_PAGE_LIMIT } from '../protocol/registry.js';

const count = z.coerce.number().int().nonnegative();
const text = z.string().min(1).max(1024);

export const tokenParams = z.object({ token: text.describe('a request token') }).strict();

export const actionParams = z
  .object({
    '*': z
      .string()
      .superRefine((value, ctx) => {
        const problem = checkPath(value, 'action');
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe('the action, a slash path such as demo/install (protocol §2)'),
  })
  .strict();

export const actionQuery = z
  .object({
    target: z
      .string()
      .refine((value) => value === '*' || !checkClientId(value), 'a client id (protocol §2.1) or *')
      .optional()
      .describe('the one client that must handle it; * for every client serving it; absent: one of them'),
    priority: z.enum(PRIORITIES).optional().describe('protocol §6.1; default normal'),
    timeout: z.coerce.number().int().min(1).max(24 * 3600 * 1000).optional().describe('ms; default 30000'),
  })
  .strict();

export const tokenAnswer = z.object({ token: z.string().describe('the request token: GET /api/history/{token} follows it') });

/** The router's own history query (protocol §11.2), its numbers read from a URL's text. */
export const historyQuery = historyQuerySchema.omit({ digests: true }).extend({
  code: z.coerce.number().int().optional(),
  ctimeFrom: count.optional(),
  ctimeTo: count.optional(),
  etimeFrom: count.optional(),
  etimeTo: count.optional(),
  afterId: count.optional(),
  beforeId: count.optional(),
  order: z.enum(['oldest', 'newest']).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export const historyRow = z
  .object({
    id: z.number().int(),
    token: z.string(),
    kind: z.enum(HISTORY_KINDS),
    action: z.string(),
    source: z.string(),
    via: z.string().optional().describe('the intermediary (relais-web) that sent it for source'),
    target: z.string().optional(),
    code: z.number().int().optional(),
    progress: z.number().optional(),
    priority: z.string().optional(),
    etime: z.number().int(),
    ctime: z.number().int(),
    data: z.string().describe('the payload as JSON text, cut to the router --max-data'),
    size: z.number().int(),
    truncated: z.boolean(),
    raw: z.boolean().optional().describe('data is the whole message as it came: its payload could not be encoded again (nested too deeply)'),
    sha256: z.string().optional().describe('a binary payload (protocol §3.5, §11.1): data is the Base64 of its bytes (the first ones when truncated), size their count, this the SHA-256 (hex) of all of them'),
    seal: z
      .object({ alg: z.string(), form: z.enum(['json', 'bytes']), epk: z.string(), nonce: z.string(), to: z.array(z.object({ kid: z.string(), key: z.string() })) })
      .optional()
      .describe("a sealed payload (protocol §3.6, §11.1): the message header's seal member; data, size and sha256 are then of the ciphertext, which the router and this API never open (the recipients' library does)"),
    site: z.string().optional().describe("the site whose history the row was pulled from (protocol §13.5); absent for the router's own rows"),
  })
  .describe('protocol §11.1');

export const historyPage = z.object({ rows: z.array(historyRow), more: z.boolean() });

export const clientParams = z.object({ id: z.string().refine((value) => !checkClientId(value), 'a client id (protocol §2.1)') }).strict();

const clientSummary = z
  .object({
    status: z.enum(['starting', 'alive', 'stopped', 'dead', 'unknown']),
    host: z.string().optional(),
    pid: z.number().int().optional(),
    version: z.string().optional(),
    connectedSince: z.number().int().optional(),
    lastSeen: z.number().int(),
    site: z.string().optional().describe('the site it is a client of (protocol §13.5); unknown while that site\'s link is down'),
  })
  .passthrough()
  .describe('protocol §11.3; a detail adds actions, realtimeActions, since, instance, info, reason');

export const clientList = z.object({
  revision: z.number().int().describe('the registry\'s revision when it answered; a paging reader keeps the first page\'s (protocol §11.3)'),
  clients: z.record(z.string(), clientSummary),
  next: z.string().optional().describe('more clients follow: ask again with after = next; absent on the last page'),
  total: z.number().int().optional().describe('how many clients the registry holds (absent for one client by id)'),
});

/** A page of the registry (protocol §11.3): the router checks the same again. */
export const clientsQuery = z
  .object({
    after: z
      .string()
      .refine((value) => !checkClientId(value), 'a client id (protocol §2.1)')
      .optional()
      .describe('the clients after this id, in code-unit order: the next page'),
    limit: z.coerce.number().int().min(1).max(MAX_REGISTRY_PAGE_LIMIT).optional().describe('at most this many clients; absent: as many as fit in one message'),
  })
  .strict();

export const eventsQuery = z
  .object({
    since: count.optional().describe('events after this cursor; absent: the newest limit'),
    limit: z.coerce.number().int().min(1).max(5000).optional(),
  })
  .strict();

export const streamQuery = z.object({ since: count.optional().describe('resume after this cursor (the Last-Event-ID header wins)') }).strict();

const busEvent = z.object({ cursor: z.number().int(), time: z.number().int(), type: z.string(), data: z.record(z.string(), z.unknown()) }).describe('protocol §11.8');

export const eventsPage = z.object({ events: z.array(busEvent), more: z.boolean(), latest: z.number().int(), missed: z.number().int().optional() });

export const killBody = z
  .object({ reason: z.string().max(1024).optional(), wait: z.number().int().min(0).max(KILL_WAIT_MS.max).optional().describe(`ms to wait for the handler to confirm (default ${KILL_WAIT_MS.default})`) })
  .strict()
  .optional();

/** protocol §11.5: `killed` is true only once the handler's code-5 answer, or its disappearance, was seen. */
export const killAnswer = z.object({
  killed: z.boolean(),
  outcome: z.enum(KILL_OUTCOMES),
  token: z.string(),
  action: z.string(),
  requester: z.string(),
  handler: z.string(),
  by: z.string(),
  waitedMs: z.number(),
  code: z.number().optional(),
});

export const errorAnswer = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional().describe('what a program acts on: a revision conflict\'s currentRevision, the fields a configuration breaks') }) });
