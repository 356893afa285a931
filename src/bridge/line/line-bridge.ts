/**
 * The PSEC MVP line protocol on the bus (docs/bridges.md): the bridge connects to
 * the bus *as* the MVP peer (its client id is the peer's domain name), so the rest of the system
 * sees an ordinary client. Lines from the peer become bus messages; bus commands for the actions
 * it serves, and the notifications it follows, become lines. The line transport (a Unix socket,
 * a serial device) is attached from outside: any Duplex stream.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Bus, HandlerContext } from '../../client/index.js';
import { BusyError, RelaisError, TimeoutError, toWire } from '../../protocol/errors.js';
import { parseTopic } from '../../protocol/topics.js';
import { LogLimiter } from '../log-limiter.js';
import { actionOfCommand, categoryOfEvent, commandOfAction, eventOfCategory } from './catalogue.js';
import { encodeLine, parseLine, toBusDestination, toMvpDestination, type MvpMessage } from './codec.js';
import { LineSplitter } from './line-splitter.js';
import { Outstanding, type OutstandingCommand } from './outstanding.js';

export interface LineBridgeOptions {
  /** Connected with the MVP peer's domain name as its id. */
  bus: Bus;
  /** Actions the MVP peer serves: bus commands for them are written to the line. Default none. */
  serves?: string[];
  /** Notification filters (`system/#`) whose notifications are written to the line. Default none. */
  notifications?: string[];
  /** Longest line read, in bytes; longer ones are skipped. Default 65 536. */
  maxLineBytes?: number;
  /** Bus commands waiting for the peer's reponse, at most (and line commandes waiting for the bus). Default 1000. */
  maxOutstanding?: number;
  /** How long a bus command waits for the peer's reponse when its own deadline does not end it first, in ms. Default 60 000. */
  answerTimeout?: number;
  /** Bytes queued for a slow line beyond which new messages for it are refused. Default 1 MiB. */
  maxBuffered?: number;
  logger: Logger;
}

export const LINE_BRIDGE_DEFAULTS = { maxLineBytes: 65_536, maxOutstanding: 1000, answerTimeout: 60_000, maxBuffered: 1024 * 1024 } as const;

/** The line to the peer is not connected (or the peer went away before answering). */
export class LineDownError extends RelaisError {
  constructor(message: string) {
    super('LINE_DOWN', message);
  }
}

interface Waiting extends OutstandingCommand {
  fail(error: Error): void;
}

export class LineBridge extends EventEmitter<{ attached: []; detached: []; skipped: [problem: string]; forwarded: [message: MvpMessage] }> {
  private readonly bus: Bus;
  private readonly logger: Logger;
  private readonly badInput: LogLimiter;
  private readonly settings: Required<Omit<LineBridgeOptions, 'bus' | 'logger'>>;
  private readonly outstanding: Outstanding;
  private stream: Duplex | undefined;
  /** Commandes from the line waiting for their bus answers. */
  private requestsInFlight = 0;

  constructor(options: LineBridgeOptions) {
    super();
    this.bus = options.bus;
    this.logger = options.logger;
    this.badInput = new LogLimiter(options.logger);
    this.settings = { serves: [], notifications: [], ...LINE_BRIDGE_DEFAULTS, ...stripUndefined(options) };
    this.outstanding = new Outstanding(this.settings.maxOutstanding);
  }

  get peer(): string {
    return this.bus.id;
  }

  get attached(): boolean {
    return this.stream !== undefined;
  }

  /** Serves the peer's actions and follows its notifications on the bus. */
  async start(): Promise<void> {
    for (const action of this.settings.serves) await this.bus.handle(action, (payload, ctx) => this.deliverCommand(action, payload, ctx));
    for (const filter of this.settings.notifications) await this.bus.subscribe(filter, (message) => this.deliverNotification(message.topic, message.envelope));
  }

  /** Takes a connection to the peer; a newer one replaces the one before (the peer reconnected). */
  attach(stream: Duplex): void {
    if (this.stream) {
      this.logger.warn({ peer: this.peer }, 'a new line connection replaces the previous one');
      this.stream.destroy();
    }
    this.stream = stream;
    const splitter = new LineSplitter(this.settings.maxLineBytes, {
      line: (bytes) => this.receive(bytes),
      oversized: (bytes) => this.skip(`line of ${bytes} bytes is over the ${this.settings.maxLineBytes}-byte limit`, bytes),
    });
    stream.on('data', (chunk: Buffer) => splitter.push(chunk));
    stream.on('error', (error: Error) => this.logger.warn({ peer: this.peer, err: error.message }, 'line error'));
    stream.on('close', () => {
      splitter.reset();
      if (this.stream !== stream) return;
      this.stream = undefined;
      for (const command of this.outstanding.all() as Waiting[]) command.fail(new LineDownError(`the line to ${this.peer} closed before it answered`));
      this.logger.info({ peer: this.peer }, 'line closed');
      this.emit('detached');
    });
    this.logger.info({ peer: this.peer }, 'line connected');
    this.emit('attached');
  }

  close(): void {
    this.stream?.destroy();
  }

  // ---- line → bus

  private receive(bytes: Buffer): void {
    const parsed = parseLine(bytes);
    if (!parsed.ok) return this.skip(parsed.problem, bytes.length);
    const message = parsed.message;
    // The bridge speaks for one peer: it does not let it put another name on the bus.
    if (message.source !== this.peer) return this.skip(`source '${message.source}' is not ${this.peer}, the peer of this line`, bytes.length);
    if (message.type === 'notification') this.forwardNotification(message, bytes.length);
    else if (message.type === 'commande') this.forwardCommand(message);
    else this.forwardReponse(message, bytes.length);
  }

  private forwardNotification(message: Extract<MvpMessage, { type: 'notification' }>, length: number): void {
    const { categorie, evenement, data } = message.payload;
    const named = categoryOfEvent(categorie, evenement);
    if ('problem' in named) return this.skip(named.problem, length);
    try {
      this.bus.notify(named.category, data ?? null, { destination: toBusDestination(message.destination) });
    } catch (error) {
      return this.skip(`notification not sent: ${(error as Error).message}`, length);
    }
    this.emit('forwarded', message);
  }

  private forwardCommand(message: Extract<MvpMessage, { type: 'commande' }>): void {
    const named = actionOfCommand(message.payload.commande);
    const answer = (source: string, data: unknown, error?: unknown) => {
      const erreur = error === undefined ? undefined : toWire(error);
      this.write({
        type: 'reponse',
        source,
        destination: message.source,
        payload: { commande: message.payload.commande, data: data ?? null, ...(erreur && { erreur: { code: erreur.responseCode, name: erreur.error.name, message: erreur.error.message } }) },
      });
    };
    if ('problem' in named) {
      this.badInput.warn({ peer: this.peer, problem: named.problem }, 'commande refused');
      return answer(message.destination, null, Object.assign(new Error(named.problem), { responseCode: 2, name: 'InvalidMessageError' }));
    }
    if (this.requestsInFlight >= this.settings.maxOutstanding) {
      return answer(message.destination, null, new BusyError(`${this.requestsInFlight} commandes of ${this.peer} are already waiting for their answers`));
    }
    this.requestsInFlight += 1;
    this.emit('forwarded', message);
    void (async () => {
      try {
        const steps = this.bus.call(named.action, message.payload.arguments ?? {}, { target: toBusDestination(message.destination) });
        for await (const step of steps) {
          // The acknowledgement and empty progress steps mean nothing to an MVP peer.
          if (step.kind === 'accepted' || (step.kind === 'progress' && step.payload == null)) continue;
          answer(step.source, step.payload);
        }
      } catch (error) {
        answer((error as { handler?: string }).handler ?? message.destination, null, error);
      } finally {
        this.requestsInFlight -= 1;
      }
    })();
  }

  private forwardReponse(message: Extract<MvpMessage, { type: 'reponse' }>, length: number): void {
    const named = actionOfCommand(message.payload.commande);
    if ('problem' in named) return this.skip(named.problem, length);
    const command = this.outstanding.find(named.action, toBusDestination(message.destination)) as Waiting | undefined;
    if (!command) return this.skip(`reponse for ${named.action} to ${message.destination} answers no outstanding command`, length);
    const { data, erreur } = message.payload;
    if (erreur !== undefined) {
      const { code, name, message: text } = (erreur ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
      const error = Object.assign(new Error(typeof text === 'string' ? text : `${this.peer} answered with an error`), {
        name: typeof name === 'string' ? name : 'Error',
        responseCode: Number.isInteger(code) && (code as number) >= 1 ? code : 1,
      });
      command.fail(error);
    } else {
      // PSEC's benchmark answers `started` before `finished`: a step, not the end.
      const started = typeof data === 'object' && data !== null && (data as { status?: unknown }).status === 'started';
      command.answer(data ?? null, !started);
    }
    this.emit('forwarded', message);
  }

  private skip(problem: string, bytes: number): void {
    this.badInput.warn({ peer: this.peer, problem, bytes }, 'line skipped');
    this.emit('skipped', problem);
  }

  // ---- bus → line

  private deliverCommand(action: string, payload: unknown, ctx: HandlerContext): Promise<unknown> {
    if (!this.stream) return Promise.reject(new LineDownError(`the line to ${this.peer} is not connected`));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
        this.outstanding.remove(command);
      };
      const command: Waiting = {
        action,
        requester: ctx.source,
        token: ctx.token,
        answer: (data, final) => {
          if (!final) return ctx.progress(undefined, data);
          finish();
          resolve(data);
        },
        fail: (error) => {
          finish();
          reject(error);
        },
      };
      const onAbort = () => command.fail(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error(String(ctx.signal.reason)));
      if (!this.outstanding.add(command)) return reject(new BusyError(`${this.outstanding.size} commands are already waiting for ${this.peer}'s answers`));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => command.fail(new TimeoutError(`${this.peer} did not answer within ${this.settings.answerTimeout} ms`)), this.settings.answerTimeout);
      const written = this.write({
        type: 'commande',
        source: ctx.source,
        destination: toMvpDestination(ctx.envelope.destination),
        payload: { commande: commandOfAction(action), arguments: payload ?? {} },
      });
      if (written !== true) command.fail(written);
    });
  }

  private deliverNotification(topic: string, envelope: { type: string; source: string; destination: string; payload: unknown }): void {
    const parsed = parseTopic(topic);
    // Not what the peer itself said on the bus, which would come back to it.
    if (parsed.kind !== 'notification' || envelope.type !== 'notification' || envelope.source === this.peer) return;
    const { categorie, evenement } = eventOfCategory(parsed.category);
    const written = this.write({
      type: 'notification',
      source: envelope.source,
      destination: toMvpDestination(envelope.destination),
      payload: { ...(categorie !== undefined && { categorie }), evenement, data: envelope.payload },
    });
    if (written !== true) this.logger.debug({ peer: this.peer, topic, err: written.message }, 'notification not written to the line');
  }

  /** Writes one line, or says why not: no line, or a line too slow to take more. */
  private write(message: MvpMessage): true | Error {
    const stream = this.stream;
    if (!stream || stream.destroyed) return new LineDownError(`the line to ${this.peer} is not connected`);
    if (stream.writableLength > this.settings.maxBuffered) {
      this.logger.warn({ peer: this.peer, buffered: stream.writableLength }, 'line too slow: message dropped');
      return new BusyError(`the line to ${this.peer} has ${stream.writableLength} bytes waiting`);
    }
    stream.write(encodeLine(message));
    return true;
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([key, entry]) => entry !== undefined && key !== 'bus' && key !== 'logger')) as Partial<T>;
}
