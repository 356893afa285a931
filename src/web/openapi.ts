/**
 * The OpenAPI 3 description of the HTTP API (`GET /api/openapi.json`), made from the route
 * table: the same zod schemas the routes validate with (route.ts), through `z.toJSONSchema`.
 */
import { z } from 'zod';
import type { RouteSpec, RouteTable } from './route.js';
import { errorAnswer } from './schemas.js';

type JsonSchema = Record<string, unknown>;

const toSchema = (schema: z.ZodType): JsonSchema => {
  const { $schema: _dropped, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' }) as JsonSchema;
  return rest;
};

/** The path placeholders of `spec.path`, in order: `{action}` stands for Fastify's `*`. */
function pathParameters(spec: RouteSpec): JsonSchema[] {
  const names = [...spec.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
  const properties = ((spec.params && toSchema(spec.params).properties) ?? {}) as Record<string, JsonSchema>;
  return names.map((name) => ({ name, in: 'path', required: true, schema: properties[name] ?? properties['*'] ?? { type: 'string' } }));
}

function queryParameters(spec: RouteSpec): JsonSchema[] {
  if (!spec.query) return [];
  const schema = toSchema(spec.query);
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>).map(([name, property]) => ({
    name,
    in: 'query',
    required: required.has(name),
    ...(typeof property.description === 'string' && { description: property.description }),
    schema: property,
  }));
}

const ERROR_TEXT: Record<number, string> = {
  400: 'bad request: invalid JSON, or a field that is not valid (the message names it)',
  401: 'no identity, or a wrong token (security on)',
  403: 'the policy does not let this identity publish what the request would',
  404: 'unknown action, token, client, key or bucket',
  409: 'the request has already ended (kill); the key is at another revision (kv compare-and-set: details.currentRevision)',
  413: 'payload too large',
  415: 'the body is not application/json',
  503: 'the router (or the handler) is not on the bus',
  504: 'the router did not answer in time',
};

function operation(spec: RouteSpec): JsonSchema {
  const errors = [...new Set([401, 403, ...(spec.errors ?? [])])].sort();
  const success = spec.produces
    ? { description: 'OK', content: { [spec.produces]: { schema: { type: 'string' } } } }
    : { description: 'OK', content: { 'application/json': { schema: spec.response ? toSchema(spec.response) : {} } } };
  return {
    tags: [spec.tag],
    summary: spec.summary,
    parameters: [...pathParameters(spec), ...queryParameters(spec)],
    ...(spec.body && { requestBody: { required: !spec.body.safeParse(undefined).success, content: { 'application/json': { schema: toSchema(spec.body) } } } }),
    responses: {
      [String(spec.status)]: success,
      ...Object.fromEntries(errors.map((status) => [String(status), { description: ERROR_TEXT[status] ?? 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }])),
    },
  };
}

export function openApiDocument(table: RouteTable, version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const spec of table) (paths[spec.path] ??= {})[spec.method.toLowerCase()] = operation(spec);
  return {
    openapi: '3.0.3',
    info: { title: 'Relais HTTP API', version, description: 'docs/http-api.md. Gorgone-compatible routes (tag gorgone) answer errors as {"error", "message"}.' },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }, { basic: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: '<identity>:<token> (relais identity add --token); needed when relais start runs with security' },
        basic: { type: 'http', scheme: 'basic', description: 'user name the identity, password its token' },
      },
      schemas: { Error: toSchema(errorAnswer) },
    },
  };
}
