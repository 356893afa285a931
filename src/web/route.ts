/**
 * One way to declare an HTTP route: its zod schemas validate the request and describe it in the
 * OpenAPI document (openapi.ts), so the description cannot drift from what the code accepts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Caller, Guard } from './auth.js';
import { ApiError } from './errors.js';

export interface RouteSpec<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
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
  /** Whether the route needs authentication when security is on. Default true. */
  authenticated?: boolean;
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller: Caller | undefined;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** Every route declared, for the OpenAPI document. */
export type RouteTable = RouteSpec[];

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
 * Registers `spec` on `app` with `handler`, after authentication and validation; the handler's
 * return value is sent with `spec.status` unless it answered itself (a stream).
 */
export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  app: FastifyInstance,
  table: RouteTable,
  guard: Guard,
  spec: RouteSpec<P, Q, B>,
  handler: (input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown>,
): void {
  table.push(spec as unknown as RouteSpec);
  app.route({
    method: spec.method,
    url: spec.url,
    handler: async (request, reply) => {
      const caller = spec.authenticated === false ? undefined : await guard.authenticate(request);
      const params = parse(spec.params, request.params, 'path', 'bad_request');
      const query = parse(spec.query, request.query, 'query', 'bad_request');
      const body = parse(spec.body, request.body, 'body', 'bad_request');
      const result = await handler({ params, query, body, caller, request, reply });
      if (reply.sent || reply.raw.headersSent) return reply;
      return reply.code(spec.status).send(result);
    },
  });
}
