/**
 * The web server of `relais start` (docs/web.md, docs/http-api.md): the page's static files at `/`,
 * MQTT over WebSocket at `/mqtt` (an untrusted connection of the embedded broker, so the page
 * authenticates like any client), and the HTTP API, whose routes reach the bus as the
 * in-process client `relais-web` after the Authorizer the broker asks has checked each caller
 * (auth.ts). Every route says what it touches (route-access.ts): one that does not is refused.
 */
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls, { TLSSocket } from 'node:tls';
import { presentedButUnverified } from '../security/peer-certificate.js';
import { fileURLToPath } from 'node:url';
import type pino from 'pino';
import { createWebSocketStream } from 'ws';
import type { BrokerSecurity } from '../broker/enforce.js';
import { isLoopbackHost, type EmbeddedBroker } from '../broker/embedded.js';
import { connect, type Bus } from '../client/index.js';
import { DEFAULTS } from '../client/options.js';
import { EVENTS_CATEGORY } from '../protocol/events.js';
import { notificationTopic } from '../protocol/topics.js';
import { relaisRoutes } from './api-routes.js';
import { kvRoutes } from './kv-routes.js';
import { makeGuard } from './auth.js';
import type { WebContext } from './context.js';
import { ApiError, errorBody } from './errors.js';
import { gorgoneError, gorgoneRoutes, isGorgonePath } from './gorgone.js';
import { openApiDocument } from './openapi.js';
import type { RouteTable } from './route.js';
import { registerWithAccess, requireDeclaredAccess, type DeclaredRoute, type RouteAccess } from './route-access.js';

export const WEB_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  /** The API's client id on the bus: the `source` of the commands it sends. */
  id: 'relais-web',
  /** Largest request body, in bytes (the bus's own message limit, protocol §3.4). */
  bodyLimit: 1024 * 1024,
} as const;

export interface WebServerOptions {
  /** The embedded broker: `/mqtt` connections and the API's own client go to it. */
  broker: EmbeddedBroker;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** The broker's identities and policy: when given, every API request must authenticate and the policy decides. */
  security?: BrokerSecurity;
  /** Allow a host beyond loopback without security (anyone who reaches it can command the bus). */
  insecure?: boolean;
  /**
   * Serve HTTPS (TLS 1.3) with this PEM certificate and key, as the broker's TLS listener does;
   * with `ca`, a client certificate it signed names the caller's identity (docs/http-api.md).
   */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Folder of the page's built files. Default: the package's `dist/page/`. */
  pageDir?: string;
  /** Default 1 MiB. */
  bodyLimit?: number;
  /** Default `relais-web`. */
  id?: string;
  /** Where refusals and failures are told (one line each). Default: standard error, prefixed `relais web:`. */
  log?: (line: string) => void;
  /** The library logger of the API's bus client. */
  logger?: pino.Logger;
}

export interface WebServer {
  /** `http://host:port/`. */
  readonly url: string;
  readonly port: number;
  readonly bus: Bus;
  /** Every route the server registered (HEAD ones included), each with what it touches. */
  readonly routes: readonly DeclaredRoute[];
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The web server cannot start: exposure refused, or its address is busy. */
export class WebStartError extends Error {
  override readonly name = 'WebStartError';
  constructor(
    message: string,
    /** The address is in use (another port would do), rather than refused by policy. */
    readonly addressInUse = false,
  ) {
    super(message);
  }
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_PAGE_DIR = path.join(packageRoot, 'dist', 'page');
export const PAGE_NOT_BUILT = 'the web page is not built: run npm run build\n';


export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const host = options.host ?? WEB_DEFAULTS.host;
  const port = options.port ?? WEB_DEFAULTS.port;
  const log = options.log ?? ((line: string) => void process.stderr.write(`relais web: ${line}\n`));
  if (!options.security && !options.insecure && !isLoopbackHost(host)) {
    throw new WebStartError(`refusing to serve the web page and HTTP API on ${host}:${port} without security: anyone who can reach it could send commands and read every message (turn security on, or accept the risk with --insecure)`);
  }
  if (options.security && !options.tls && !isLoopbackHost(host)) log(`warning: serving ${host}:${port} over plain HTTP: identities' tokens cross the network in clear (--web-tls serves HTTPS)`);
  const bus = await connect({ id: options.id ?? WEB_DEFAULTS.id, stream: () => options.broker.connectInProcess(), info: { role: 'web' }, ...(options.logger && { logger: options.logger }) });
  // Held for the server's life, so event streams opening and closing (sse.ts) share one MQTT
  // subscription: a filter unsubscribed and at once subscribed again by the library loses its
  // subscription at the broker (measured: 50 of 50; reported to the library's owner).
  await bus.subscribe(notificationTopic(EVENTS_CATEGORY), () => {});
  const app = Fastify({ bodyLimit: options.bodyLimit ?? WEB_DEFAULTS.bodyLimit, forceCloseConnections: true, logger: false, ...(options.tls && { https: httpsOptions(options.tls) }) });
  if (options.tls) refuseUnverifiedCertificates(app.server as unknown as tls.Server, log);
  const routes = requireDeclaredAccess(app);
  const upgraded = new Set<Duplex>();
  app.server.on('upgrade', (_request, socket: Duplex) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  try {
    const table: RouteTable = [];
    const context: WebContext = { app, bus, guard: makeGuard(options.security, log), table, log, directorySettledAt: Date.now() + DEFAULTS.directorySettle + 200 };
    guardOrigin(app, options.security ? undefined : { insecure: options.insecure === true });
    acceptGorgoneBodies(app);
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const apiError = asApiError(error);
      if (apiError.status >= 500) log(`${request.method} ${request.url.split('?')[0]}: ${error.message}`);
      // Bad input gets a line too: the route and the code, not the message (a JSON error quotes the body).
      else if (apiError.status === 400 || apiError.status === 413 || apiError.status === 415 || apiError.code === 'forbidden_host' || apiError.code === 'forbidden_origin') log(`refused ${request.method} ${request.url.split('?')[0]}: ${apiError.status} ${apiError.code}`);
      if (apiError.status === 401) reply.header('www-authenticate', 'Bearer realm="relais", Basic realm="relais"');
      if (apiError.headers) reply.headers(apiError.headers);
      return reply.code(apiError.status).send(isGorgonePath(request.url) ? gorgoneError(apiError) : errorBody(apiError));
    });
    await app.register(fastifyWebsocket);
    const mqttAccess: RouteAccess = { broker: 'MQTT over WebSocket: the embedded broker authenticates the connection and decides each packet, as for a TCP client' };
    app.get('/mqtt', { websocket: true, config: { access: mqttAccess } }, (socket, request) => {
      const raw = request.raw.socket;
      raw.setNoDelay(true); // protocol §1.2: progress then final must not wait for a delayed ACK
      options.broker.serveConnection(createWebSocketStream(socket), `web ${raw.remoteAddress}:${raw.remotePort}`, raw instanceof TLSSocket ? raw : undefined);
    });
    relaisRoutes(context);
    kvRoutes(context);
    gorgoneRoutes(context);
    const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const describedAccess: RouteAccess = { open: "the API's description: what anyone reading the docs may know" };
    app.get('/api/openapi.json', { config: { access: describedAccess } }, async () => openApiDocument(table, version));
    await servePage(app, options.pageDir ?? DEFAULT_PAGE_DIR);
    answerUnknown(app, table);
    try {
      await app.listen({ host, port });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new WebStartError(`the web server cannot listen on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the port is in use' : (error as Error).message}`, code === 'EADDRINUSE');
    }
  } catch (error) {
    await app.close().catch(() => {});
    await bus.close();
    throw error;
  }
  const bound = (app.server.address() as { port: number }).port;
  const close = async () => {
    const closing = app.close();
    // Upgraded sockets (WebSockets, and upgrades refused by a hook) are no longer the HTTP server's to close.
    for (const socket of upgraded) socket.destroy();
    await closing;
    await bus.close();
  };
  return { url: `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${bound}/`, port: bound, bus, routes, close, [Symbol.asyncDispose]: close };
}

/** TLS 1.3 only, as the broker's external listener; client certificates asked for, not required (token callers send none). */
function httpsOptions(given: NonNullable<WebServerOptions['tls']>): tls.TlsOptions {
  return { cert: given.cert, key: given.key, minVersion: 'TLSv1.3', ...(given.ca !== undefined && { ca: given.ca, requestCert: true, rejectUnauthorized: false }) };
}

/** A client certificate that does not verify (unknown CA, expired) ends the connection after the handshake, with a log line. */
function refuseUnverifiedCertificates(server: tls.Server, log: (line: string) => void): void {
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const refused = presentedButUnverified(socket);
    if (!refused) return;
    log(`refused the client certificate of ${socket.remoteAddress}:${socket.remotePort} (${refused})`);
    socket.destroy();
  });
  server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => log(`refused a TLS handshake from ${socket.remoteAddress}:${socket.remotePort}: ${error.code ?? error.message}`));
}

/**
 * A page of another site may not use this server through the visitor's browser (with security
 * off, `ws://127.0.0.1:8080/mqtt` would let it command the bus): a request whose `Origin` is
 * not this server's own is refused. Programs (curl, MQTT.js in Node) send no Origin.
 *
 * With security off, `Origin == Host` is not enough: a page of `evil.example` whose name the
 * attacker re-points to 127.0.0.1 (DNS rebinding) is then "this server's own". So the `Host`
 * must be a loopback name (localhost, 127.x.x.x, ::1), which no attacker's page can have; with
 * --insecure beyond loopback, an address too (a rebound page has a name, never an address).
 */
function guardOrigin(app: FastifyInstance, open: { insecure: boolean } | undefined): void {
  app.addHook('onRequest', async (request) => {
    const host = request.headers.host;
    if (open && host !== undefined && !answersTo(hostName(host), open.insecure)) {
      throw new ApiError(403, 'forbidden_host', `with security off, this server answers only to loopback names (localhost, 127.0.0.1, [::1])${open.insecure ? ' and addresses' : ''}: not to ${JSON.stringify(host.slice(0, 100))}, which a page of another site can take (DNS rebinding)`);
    }
    const origin = request.headers.origin;
    if (origin === undefined || origin === 'null' ? origin === undefined : sameOrigin(origin, request)) return;
    throw new ApiError(403, 'forbidden_origin', `requests from pages of ${String(origin).slice(0, 100)} are refused: only this server's own page may use it`);
  });
}

function answersTo(name: string, insecure: boolean): boolean {
  return isLoopbackHost(name) || (insecure && isIP(name.replace(/^\[|\]$/g, '')) !== 0);
}

/** The name of a Host header (`[::1]:8080` → `[::1]`), or '' when it is not one. */
function hostName(host: string): string {
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return '';
  }
}

function sameOrigin(origin: string, request: FastifyRequest): boolean {
  try {
    // Both through URL: host names compare without case, as browsers treat them.
    return request.headers.host !== undefined && new URL(origin).host === new URL(`http://${request.headers.host}`).host;
  } catch {
    return false;
  }
}

/**
 * Gorgone clients may post JSON without saying so (curl -d): their routes parse any body as JSON; others answer 415.
 * `POST /api/actions/<action>` also takes `application/octet-stream`: the bytes are the command's payload, sent as a
 * binary message (protocol §3.5).
 */
function acceptGorgoneBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (request, body, done) => {
    if (!request.url.startsWith(ACTIONS_PREFIX)) return done(new ApiError(415, 'unsupported_media_type', 'send the body as JSON: Content-Type: application/json (bytes only to /api/actions/<action>)'), undefined);
    done(null, body);
  });
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    if (!isGorgonePath(request.url)) return done(new ApiError(415, 'unsupported_media_type', 'send the body as JSON: Content-Type: application/json'), undefined);
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new ApiError(400, 'bad_json', 'the body is not valid JSON'), undefined);
    }
  });
}

const ACTIONS_PREFIX = '/api/actions/';

function asApiError(error: FastifyError): ApiError {
  if (error instanceof ApiError) return error;
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'bad_json', `the body is not valid JSON: ${error.message}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', error.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'send the body as JSON: Content-Type: application/json');
  }
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) return new ApiError(400, 'bad_json', `the body is not valid JSON: ${error.message}`);
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return new ApiError(error.statusCode, 'bad_request', error.message);
  return new ApiError(500, 'internal', 'internal error (logged by the server)');
}

/** The page's files: public (the page itself authenticates at `/mqtt`). */
const PAGE_ACCESS: RouteAccess = { open: "the page's built files: the page logs in at /mqtt like any client" };

/** The built page at `/`, or a clear 503 while it is not built. */
async function servePage(app: FastifyInstance, pageDir: string): Promise<void> {
  if (!fs.existsSync(path.join(pageDir, 'index.html'))) {
    app.get('/', { config: { access: PAGE_ACCESS } }, async (_request, reply) => reply.code(503).type('text/plain; charset=utf-8').send(PAGE_NOT_BUILT));
    return;
  }
  await registerWithAccess(app, PAGE_ACCESS, async (page) => {
    await page.register(fastifyStatic, { root: pageDir, prefix: '/' });
  });
}

/** Unknown routes: a wrong method on a known path, or no such path (Gorgone's replies on its paths). */
function answerUnknown(app: FastifyInstance, table: RouteTable): void {
  const patterns = table.map((spec) => ({ method: spec.method, pattern: new RegExp(`^${spec.url.replace(/:\w+/g, '[^/]+').replace('*', '.+')}$`) }));
  app.setNotFoundHandler(async (request, reply) => {
    const pathName = request.url.split('?')[0]!;
    const known = patterns.some(({ pattern }) => pattern.test(pathName));
    if (isGorgonePath(request.url)) {
      return known ? reply.code(405).send({ error: 'method_unknown', message: 'Method not implemented' }) : reply.code(404).send({ error: 'endpoint_unknown', message: 'endpoint not implemented' });
    }
    if (known) return reply.code(405).send(errorBody(new ApiError(405, 'method_not_allowed', `${request.method} is not served on ${pathName}`)));
    return reply.code(404).send(errorBody(new ApiError(404, 'not_found', `nothing is served at ${pathName} (GET /api/openapi.json lists the API)`)));
  });
}
