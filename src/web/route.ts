/**
 * One way to declare an HTTP route: its zod schemas validate the request and describe it in the
 * OpenAPI document (openapi.ts), so the description cannot drift from what the code accepts; its
 * access says what it touches on the bus (route-access.ts), decided for its caller before its
 * handler runs, so that no route can forget to be authorised.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BusAccess } from '../security/authorizer.js';
import type { Caller, Guard } from './auth.js';
import { ApiError } from './errors.js';
import { accessConfig, type RouteAccess } from './route-access.js';

export interface RouteSpec<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Fastify's form: `/api/history/:token`, `/api/actions/*`. */
  url: string;
  /** OpenAPI's form: `/api/history/{token}`, `/api/actions/{action}`. */
  path: string;
  tag: string;
  summary: string;
  params?: P;
  query?: Q;
  body?: B;
  /** The success status and the schema of its body (absent for a stream). */
  status: number;
  response?: z.ZodType;
  /** Content type of the success answer. Default application/json. */
  produces?: string;
  /** Error statuses this route may answer, besides 401 and 403. */
  errors?: readonly number[];
  /**
   * What the route touches: `{ acts }`, the bus accesses its caller needs (an identity, then
   * each allowed by the policy, before the handler runs), or `{ open: why }`, no identity.
   */
  access: RouteAccess<z.output<P>, z.output<Q>, z.output<B>>;
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller: Caller | undefined;
  /** Throws 403 unless the caller may also do these (what the handler learns it touches, such as the agent it chose). */
  authorise: (accesses: readonly BusAccess[]) => void;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** Every route declared, for the OpenAPI document. */
export type RouteTable = Array<RouteSpec<any, any, any>>;

/** The first problem of a failed parse, naming the field: `query.limit: Too big: ...`. */
export function firstIssue(where: string, error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = issue.path.length ? `${where}.${issue.path.map(String).join('.')}` : where;
  return `${field}: ${issue.message}`;
}

function parse<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string, code: string): z.output<T> {
  if (!schema) return value as z.output<T>;
  const result = schema.safeParse(value);
  if (!result.success) throw new ApiError(400, code, firstIssue(where, result.error));
  return result.data;
}

/**
 * Registers `spec` on `app` with `handler`, after authentication, validation and the decision
 * on what it touches; the handler's return value is sent with `spec.status` unless it answered
 * itself (a stream).
 */
export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  app: FastifyInstance,
  table: RouteTable,
  guard: Guard,
  spec: RouteSpec<P, Q, B>,
  handler: (input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown>,
): void {
  table.push(spec);
  const { access } = spec;
  if ('broker' in access) throw new Error(`route ${spec.method} ${spec.url}: an API route acts on the bus for its caller ({ acts }) or is { open }`);
  const acting = 'acts' in access ? access.acts : undefined;
  app.route({
    method: spec.method,
    url: spec.url,
    config: accessConfig(access),
    handler: async (request, reply) => {
      const caller = acting ? await guard.authenticate(request) : undefined;
      const params = parse(spec.params, request.params, 'path', 'bad_request');
      const query = parse(spec.query, request.query, 'query', 'bad_request');
      const body = parse(spec.body, request.body, 'body', 'bad_request');
      if (acting) guard.authorise(caller, acting({ params, query, body, request }));
      const authorise = (accesses: readonly BusAccess[]) => guard.authorise(caller, accesses);
      const result = await handler({ params, query, body, caller, authorise, request, reply });
      if (reply.sent || reply.raw.headersSent) return reply;
      return reply.code(spec.status).send(result);
    },
  });
}
