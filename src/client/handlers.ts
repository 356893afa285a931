/**
 * The serving side (protocol §4.2): the actions this client handles, the requests in
 * progress, their cancellation and deadlines. A handler's failure becomes an error
 * response; it never reaches the process.
 */
import { randomUUID } from 'node:crypto';
import { EVERYONE, type DecodeResult, type Envelope, type Priority } from '../protocol/envelope.js';
import { CancelledError, PayloadTooLargeError, ResponseCode, TimeoutError, toWire, type WireError } from '../protocol/errors.js';
import { cancelTopic, checkClientId, requestTopic, responseTopic } from '../protocol/topics.js';
import type { ResolvedOptions } from './options.js';
import { RunningRequest } from './running-request.js';
import type { Transport } from './transport.js';
import type { Handler, HandlerContext, HandleOptions, Lane, Registration } from './types.js';

interface Served {
  handler: Handler;
  lane: Lane;
}

export class Handlers {
  private readonly served = new Map<string, Served>();
  /** Requests being handled, by `<requester> <token>`, to cancel them. */
  private readonly running = new Map<string, RunningRequest>();

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    private readonly announce: () => Promise<void>,
  ) {}

  serves(action: string): boolean {
    return this.served.has(action);
  }

  /** Actions served, by lane, for the presence message. */
  actions(lane: Lane): string[] {
    return [...this.served.entries()].filter(([, served]) => served.lane === lane).map(([action]) => action);
  }

  async handle(action: string, handler: Handler, options: HandleOptions = {}): Promise<Registration> {
    if (this.served.has(action)) throw new Error(`${action} is already handled by this client`);
    const lane: Lane = options.lane === 'realtime' && this.transport.realtime ? 'realtime' : 'main';
    const topics = [requestTopic(action), requestTopic(action, this.options.id), cancelTopic(action)];
    this.served.set(action, { handler, lane });
    try {
      await Promise.all(topics.map((topic) => this.transport.subscribe(topic, lane)));
      await this.announce();
    } catch (error) {
      this.served.delete(action);
      throw error;
    }
    return {
      close: async () => {
        if (!this.served.delete(action)) return;
        await Promise.all(topics.map((topic) => this.transport.unsubscribe(topic, lane)));
        await this.announce();
      },
    };
  }

  /** A message arrived on `<action>/request[/<me>]`. */
  onRequest(action: string, targeted: boolean, decoded: DecodeResult): void {
    if (!decoded.ok) {
      this.options.logger.warn({ action, err: decoded.error.message, source: decoded.sender?.source }, 'invalid request');
      if (decoded.sender) {
        const { responseCode, error } = toWire(decoded.error);
        this.reply(action, decoded.sender.source, decoded.sender.token ?? 'none', 'normal', { code: responseCode, error, payload: null });
      }
      return;
    }
    const request = decoded.envelope;
    if (request.type !== 'command') {
      this.options.logger.warn({ action, type: request.type, source: request.source }, 'ignored a non-command message on a request topic');
      return;
    }
    if (!targeted && request.destination !== EVERYONE && request.destination !== this.options.id) {
      this.options.logger.debug({ action, destination: request.destination }, 'command for another destination ignored');
      return;
    }
    const badSource = checkClientId(request.source);
    if (badSource) {
      this.options.logger.warn({ action, source: request.source }, `command refused, no response possible: ${badSource}`);
      return;
    }
    const token = request.token ?? randomUUID();
    const priority = request.priority ?? 'normal';
    const served = this.served.get(action);
    if (!served) {
      this.replyError(action, request.source, token, priority, ResponseCode.NO_HANDLER, { name: 'NoHandlerError', message: `${this.options.id} does not serve ${action}` });
      return;
    }
    if (request.deadline !== undefined && request.deadline <= Date.now()) {
      this.replyError(action, request.source, token, priority, ResponseCode.DEADLINE_EXCEEDED, { name: 'TimeoutError', message: `request ${token} arrived after its deadline` });
      return;
    }
    this.run(action, served.handler, request, token, priority);
  }

  private run(action: string, handler: Handler, request: Envelope, token: string, priority: Priority): void {
    const key = `${request.source} ${token}`;
    const running = new RunningRequest(token, request.deadline);
    this.running.set(key, running);
    let finished = false;
    const ctx: HandlerContext = {
      action,
      token,
      source: request.source,
      priority,
      ...(request.deadline !== undefined && { deadline: request.deadline }),
      get signal() {
        return running.signal;
      },
      envelope: request,
      progress: (fraction, data) => {
        if (finished || running.aborted) return;
        if (fraction !== undefined && !(fraction >= 0 && fraction <= 1)) {
          throw new RangeError(`progress must be a fraction between 0 and 1, got ${fraction}`);
        }
        this.reply(action, request.source, token, priority, {
          final: false,
          ...(fraction !== undefined && { progress: fraction }),
          payload: data ?? null,
        });
      },
    };
    const end = () => {
      finished = true;
      running.end();
      this.running.delete(key);
    };
    const succeed = (result: unknown) => {
      end();
      this.reply(action, request.source, token, priority, { code: ResponseCode.OK, payload: result ?? null });
    };
    const fail = (error: unknown) => {
      end();
      const reason = running.abortReason;
      const { responseCode, error: wire } = toWire(reason && !(error instanceof CancelledError || error instanceof TimeoutError) ? reason : error);
      if (!reason) this.options.logger.warn({ action, token, err: wire.message }, 'handler failed');
      this.reply(action, request.source, token, priority, { code: responseCode, error: wire, payload: null });
    };
    let outcome: unknown;
    try {
      outcome = handler(request.payload, ctx);
    } catch (error) {
      fail(error);
      return;
    }
    // A plain value is answered in this turn, so its response leaves with the request's PUBACK.
    if (isThenable(outcome)) Promise.resolve(outcome).then(succeed, fail);
    else succeed(outcome);
  }

  /** A cancel arrived on `<action>/cancel`: abort the matching request, if we run it. protocol §4.4 */
  onCancel(decoded: DecodeResult): void {
    if (!decoded.ok || decoded.envelope.type !== 'cancel') {
      this.options.logger.warn({ err: decoded.ok ? `type ${decoded.envelope.type}` : decoded.error.message }, 'invalid cancel ignored');
      return;
    }
    const { source, token, payload } = decoded.envelope;
    const running = this.running.get(`${source} ${token}`);
    if (!running) return;
    const reason = typeof (payload as { reason?: unknown })?.reason === 'string' ? (payload as { reason: string }).reason : 'cancelled';
    running.abort(new CancelledError(`request ${token} cancelled: ${reason}`));
  }

  private replyError(action: string, requester: string, token: string, priority: Priority, code: number, error: WireError): void {
    this.options.logger.warn({ action, token, requester, err: error.message }, 'request refused');
    this.reply(action, requester, token, priority, { code, error, payload: null });
  }

  private reply(action: string, requester: string, token: string, priority: Priority, fields: Partial<Envelope>): void {
    const envelope: Envelope = {
      v: 1,
      type: 'response',
      source: this.options.id,
      destination: requester,
      token,
      final: true,
      payload: null,
      ...fields,
      priority,
      ts: Date.now(),
    };
    let body: string;
    try {
      body = JSON.stringify(envelope);
    } catch (cause) {
      const message = `the result of ${action} is not JSON: ${(cause as Error).message}`;
      body = JSON.stringify({ ...envelope, payload: null, final: true, code: ResponseCode.ERROR, error: { name: 'TypeError', message } });
      this.options.logger.warn({ action, token }, message);
    }
    if (Buffer.byteLength(body) > this.options.maxMessageBytes) {
      const tooLarge = toWire(new PayloadTooLargeError(`the response of ${action} is over the ${this.options.maxMessageBytes}-byte limit`));
      body = JSON.stringify({ ...envelope, payload: null, final: true, code: tooLarge.responseCode, error: tooLarge.error });
      this.options.logger.warn({ action, token }, tooLarge.error.message);
    }
    try {
      this.transport.send({ topic: responseTopic(action, requester), body, qos: 1, priority });
    } catch (error) {
      this.options.logger.warn({ action, token, err: (error as Error).message }, 'response not sent');
    }
  }

  /** Aborts every running handler (the client is closing). */
  abortAll(): void {
    for (const running of this.running.values()) running.abort(new CancelledError('the serving client is closing'));
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
