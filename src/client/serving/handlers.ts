/**
 * The serving side (protocol §4.2): the actions this client handles, the commands in
 * progress and those recently finished, acknowledgement (§4.7), duplicates (§4.8),
 * cancellation and deadlines. Which command runs is decided by the checks of
 * protocol/command-admission.ts; this is their shell. A handler's failure becomes an error
 * response; it never reaches the process.
 */
import { admitCommand, type ReplyTo, type Serving, type ServingView } from '../../protocol/command-admission.js';
import { encode, encodeMessage, type DecodeResult, type Envelope } from '../../protocol/envelope.js';
import type { WireBody } from '../../protocol/framing.js';
import { CancelledError, PayloadTooLargeError, ResponseCode, SealingError, TimeoutError, toWire } from '../../protocol/errors.js';
import { isSealed } from '../../protocol/sealing.js';
import { identityOfClientId } from '../../protocol/topics.js';
import type { Sealing } from '../sealing.js';
import { responseMessage, type ResponseStep } from '../../protocol/messages.js';
import { cancelTopic, requestTopic, responseTopic } from '../../protocol/topics.js';
import type { ResolvedOptions } from '../options.js';
import { RecentTokens } from './recent-tokens.js';
import { newToken } from '../tokens.js';
import { afterMicrotasks } from '../runtime.js';
import { CommandContext, type ProgressSink } from './command-context.js';
import type { RunningRequest } from './running-request.js';
import type { Transport } from '../connection/index.js';
import type { Handler, HandleOptions, Lane, Registration } from '../types.js';
import { describeContract, withContract } from './contracts.js';
import type { ContractDescription } from '../../protocol/contracts.js';

interface Served {
  handler: Handler;
  lane: Lane;
  contract?: ContractDescription;
  /** A built-in action served on `<action>/request/<me>` only (protocol §11.4). */
  targetedOnly?: true;
  /** `sealed: 'require'`: unsealed commands are refused (protocol §3.6). */
  sealedOnly?: true;
}

/** Why a sealed command was not opened here (deliver, inbound.ts). */
export interface Unopened {
  why: string;
}

export class Handlers implements ProgressSink, ServingView {
  private readonly served = new Map<string, Served>();
  /** Commands being handled, by `<requester> <token>`. */
  private readonly running = new Map<string, RunningRequest>();
  private readonly finished = new RecentTokens();

  constructor(
    private readonly options: ResolvedOptions,
    private readonly transport: Transport,
    private readonly announce: () => Promise<void>,
    /** False while the client is starting (`startup: 'manual'`, protocol §7.1): it serves nothing yet. */
    private readonly accepting: () => boolean = () => true,
    /** Whether a client is a router (its presence says `role: "router"`): it may cancel on a requester's behalf (protocol §11.5). Later when the directory must settle first. */
    private readonly isRouter: (clientId: string) => boolean | Promise<boolean> = () => false,
    /** What seals the answers to sealed commands for their requesters (protocol §3.6). */
    private readonly sealing?: Sealing,
  ) {}

  private get logger() {
    return this.options.logger;
  }

  /** Whether `action` is served now: a starting client serves nothing, so untargeted commands are left to others. */
  serves(action: string): boolean {
    return this.served.has(action) && this.accepting();
  }

  /** Actions served, by lane, for the presence message. */
  actions(lane: Lane): string[] {
    return [...this.served.entries()].filter(([, served]) => served.lane === lane && !served.targetedOnly).map(([action]) => action);
  }

  /** The declared contracts, by action (protocol §7.6). */
  contracts(): Record<string, ContractDescription> {
    return Object.fromEntries([...this.served.entries()].flatMap(([action, served]) => (served.contract ? [[action, served.contract]] : [])));
  }

  /** The hash of each declared contract, by action: what presence announces (protocol §7.6). */
  contractHashes(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.contracts()).map(([action, contract]) => [action, contract.hash]));
  }

  /** Built-in actions served only when targeted: the presence lists them apart (`targetedActions`, protocol §11.4). */
  targetedActions(): string[] {
    return [...this.served.entries()].filter(([, served]) => served.targetedOnly).map(([action]) => action);
  }

  /**
   * Serves a built-in action every library client has (protocol §11.4) on
   * `<action>/request/<me>` and `<action>/cancel` only: as everyone serves it, an untargeted
   * command for it means nothing. Subscribed before the first presence is published (the
   * SUBSCRIBEs go first on the same connection), so no announce of its own.
   */
  serveTargeted(action: string, handler: Handler): void {
    this.served.set(action, { handler, lane: 'main', targetedOnly: true });
    for (const topic of [requestTopic(action, this.options.id), cancelTopic(action)]) {
      this.transport.subscribe(topic, 'main').catch((error: Error) => {
        // A client closing (a first connection that failed, told once by connect()) serves nothing: not a warning of its own.
        if (!this.transport.closed) this.logger.warn({ action, topic, err: error.message }, 'built-in action not served: subscribing failed');
      });
    }
  }

  async handle(action: string, handler: Handler, options: HandleOptions = {}): Promise<Registration> {
    if (this.served.has(action)) throw new Error(`${action} is already handled by this client`);
    const lane = this.transport.laneOf(options.lane);
    const topics = [requestTopic(action), requestTopic(action, this.options.id), cancelTopic(action)];
    const { input, output, description } = options;
    if (options.sealed !== undefined && options.sealed !== 'require') throw new TypeError(`sealed must be 'require' or absent, got ${JSON.stringify(options.sealed)}`);
    const typed = input || output || description !== undefined;
    const served: Served = typed ? { handler: withContract(action, handler, { input, output }), lane } : { handler, lane };
    if (options.sealed === 'require') served.sealedOnly = true;
    this.served.set(action, served);
    try {
      if (typed) served.contract = await describeContract({ input, output, description });
      await Promise.all(topics.map((topic) => this.transport.subscribe(topic, lane)));
      await this.announce();
    } catch (error) {
      // Not served: nothing of it may stay held (a refused filter would be retried at each reconnection).
      this.served.delete(action);
      await Promise.all(topics.map((topic) => this.transport.unsubscribe(topic, lane)));
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

  /**
   * A message arrived on `<action>/request[/<me>]`: the checks of protocol §4.2
   * (command-admission.ts), then what they decide. `unopened`: it came sealed and did not open
   * here (deliver, protocol §3.6).
   */
  onRequest(action: string, targeted: boolean, decoded: DecodeResult, qos: 0 | 1, unopened?: Unopened): void {
    const admission = admitCommand(action, targeted, decoded, qos, Date.now(), this, newToken);
    if (admission.kind !== 'drop' && decoded.ok && isSealed(decoded.envelope)) admission.to.sealed = true;
    if (admission.kind === 'run') {
      const refusal = this.sealingRefusal(action, admission.command, admission.to, unopened);
      if (refusal) {
        this.logger.warn({ action, token: admission.to.token, requester: admission.to.requester, err: refusal.message }, 'sealed command refused');
        // Not `accepted: false`: that says "came after its acceptBy" (§4.7), which a requester meets by offering it again.
        return void this.reply({ ...admission.to, sealed: false }, { step: 'error', code: refusal.code, error: { name: refusal.name, message: refusal.message } });
      }
    }
    switch (admission.kind) {
      case 'drop': {
        const { log, answer } = admission;
        this.logger[log.level](log.fields, log.message);
        if (answer) this.reply(answer.to, { step: 'error', code: answer.code, error: answer.error, ...(answer.notRun && { notRun: true }) });
        return;
      }
      case 'duplicate':
        return this.answerDuplicate(admission.key, admission.to, admission.wantsAcks);
      case 'run':
        return this.run(this.served.get(action)!.handler, admission.command, admission.to, admission.key, admission.wantsAcks);
    }
  }

  /**
   * Why a command may not run for sealing's sake (protocol §3.6), or undefined: it did not open
   * here (code 2, the requester sealed it for other keys), it came unsealed to an action that
   * takes sealed commands only (code 4), or its answer could not be sealed back (code 1: no
   * sealing key for the requester's identity; never a plaintext answer to a sealed command).
   */
  private sealingRefusal(action: string, command: Envelope, to: ReplyTo, unopened: Unopened | undefined): { code: number; name: string; message: string } | undefined {
    if (unopened) return { code: ResponseCode.INVALID_REQUEST, name: 'SealingError', message: `cannot open the sealed command: ${unopened.why}` };
    if (this.served.get(action)?.sealedOnly && !isSealed(command)) return { code: ResponseCode.NOT_AUTHORIZED, name: 'NotAuthorizedError', message: 'this action takes sealed commands only (protocol §3.6)' };
    if (to.sealed && !this.sealing?.canSealFor(to.requester)) return { code: ResponseCode.ERROR, name: 'SealingError', message: cannotSealAnswer(to.requester) };
    return undefined;
  }

  /** ServingView: how `action` is served now. */
  serving(action: string): Serving {
    const entry = this.served.get(action);
    if (!entry) return 'no';
    if (entry.targetedOnly) return 'targeted-only';
    return this.accepting() ? 'yes' : 'starting';
  }

  /** ServingView: the command runs here, or finished and is remembered (protocol §4.8). */
  knows(key: string): boolean {
    return this.running.has(key) || this.finished.get(key) !== undefined;
  }

  /** ServingView: this client's id. */
  get self(): string {
    return this.options.id;
  }

  /**
   * The same command again (protocol §4.8): its status, or the final response already sent. The
   * status of a running one is an acknowledgement, sent only to a requester that asks for them
   * (`acceptBy`, §4.7); a plain command repeated (a QoS 1 redelivery) gets nothing more until its final.
   */
  private answerDuplicate(key: string, to: ReplyTo, wantsAcks: boolean): void {
    const running = this.running.get(key);
    if (running) {
      if (wantsAcks) this.reply(to, { step: 'accepted', ...(running.lastProgress !== undefined && { progress: running.lastProgress }) });
      else this.logger.debug({ action: to.action, token: to.token, requester: to.requester }, 'command received again while it runs: its final will answer it');
      return;
    }
    const done = this.finished.get(key);
    if (!done) return;
    this.logger.debug({ action: to.action, token: to.token, requester: to.requester }, 'command received again: answered with its result');
    if (done.body !== undefined) this.send(to, done.body);
    else this.reply(to, { step: 'error', code: ResponseCode.ERROR, error: { name: 'Error', message: `request ${to.token} already ran here; its result is no longer kept` } });
  }

  /**
   * Runs the handler; `key` (`<requester> <token>`) names the command in `running` and
   * `finished`. `wantsAcks`: the command carries `acceptBy`, so its requester waits for an
   * acknowledgement (protocol §4.7); a foreign requester that did not ask reads exactly the
   * steps the handler sends.
   */
  private run(handler: Handler, request: Envelope, to: ReplyTo, key: string, wantsAcks: boolean): void {
    const command = new CommandContext(to, request, key, this);
    this.running.set(key, command);
    let outcome: unknown;
    try {
      outcome = handler(request.payload, command);
    } catch (error) {
      this.fail(command, error);
      return;
    }
    // A plain value is answered in this turn, its response in the same write as what came
    // with the command: no acknowledgement needed, nothing added.
    if (!isThenable(outcome)) return this.finish(command, { step: 'result', payload: outcome });
    // Promise.resolve: a thenable that throws in its then() fails the command, not the client.
    Promise.resolve(outcome).then(
      (result) => this.finish(command, { step: 'result', payload: result }),
      (error: unknown) => this.fail(command, error),
    );
    // A handler that finishes within the microtasks of this turn is answered before the
    // socket's writes are released (Connection.coalesceWrites); a slower one is acknowledged,
    // unless its progress already told the requester it has the command.
    if (!wantsAcks) return;
    afterMicrotasks(() => {
      if (!command.ended && !command.answered) this.reply(command, { step: 'accepted' });
    });
  }

  /** ProgressSink: a progress step of a running command. */
  progress(command: CommandContext, fraction: number | undefined, data: unknown): void {
    const written = command.progressQueued();
    this.reply(command, { step: 'progress', ...(fraction !== undefined && { progress: fraction }), payload: data ?? null }, written);
  }

  private fail(command: CommandContext, error: unknown): void {
    const reason = command.abortReason;
    const { responseCode, error: wire } = toWire(reason && !(error instanceof CancelledError || error instanceof TimeoutError) ? reason : error);
    if (!reason) this.logFailure(command, responseCode, wire.message);
    this.finish(command, { step: 'error', code: responseCode, error: wire });
  }

  /**
   * A requester's mistake (code 2: a bad payload, a kill of a request that has already ended,
   * protocol §5.2) is told to it in the answer and counted by the router's metrics (`refused`,
   * protocol §11.6): a debug line here, not a warning of this client. A refusal (code 4) is
   * worth knowing about without being a fault: info. Anything else is the handler's failure.
   */
  private logFailure(command: CommandContext, responseCode: number, message: string): void {
    const fields = { action: command.action, token: command.token, requester: command.requester, err: message };
    if (responseCode === ResponseCode.INVALID_REQUEST) this.logger.debug(fields, "request refused: the requester's mistake");
    else if (responseCode === ResponseCode.NOT_AUTHORIZED) this.logger.info(fields, 'request refused: not authorized');
    else this.logger.warn(fields, 'handler failed');
  }

  /** The final answer: sent once, and remembered for duplicates (protocol §4.8). */
  private finish(command: CommandContext, answer: ResponseStep): void {
    if (command.ended) return;
    command.end();
    this.running.delete(command.key);
    const body = this.reply(command, answer);
    if (body !== undefined) this.finished.remember(command.key, body, command.deadline);
  }

  /** A cancel arrived on `<action>/cancel`: abort the matching command, if we run it. protocol §4.4 */
  onCancel(decoded: DecodeResult): void {
    if (!decoded.ok || decoded.envelope.type !== 'cancel') {
      this.logger.warn({ err: decoded.ok ? `type ${decoded.envelope.type}` : decoded.error.message }, 'invalid cancel ignored');
      return;
    }
    const { source, token, payload } = decoded.envelope;
    const fields = (typeof payload === 'object' && payload !== null ? payload : {}) as { reason?: unknown; requester?: unknown; by?: unknown };
    const reason = typeof fields.reason === 'string' ? fields.reason : 'cancelled';
    const running = this.running.get(`${source} ${token}`);
    if (running) return running.abort(new CancelledError(`request ${token} cancelled: ${reason}`));
    // A kill relayed by the router names the requester it acts for (protocol §11.5).
    const requester = fields.requester;
    if (typeof requester === 'string' && this.running.has(`${requester} ${token}`)) {
      const relayed = (byRouter: boolean) => {
        if (byRouter) this.running.get(`${requester} ${token}`)?.abort(new CancelledError(`request ${token} cancelled: ${reason}`));
        else this.logger.info({ token, source, requester }, 'cancel on behalf of a requester ignored: its sender is not a router');
      };
      const byRouter = this.isRouter(source);
      if (typeof byRouter === 'boolean') relayed(byRouter);
      else void byRouter.then(relayed);
      return;
    }
    // A cancel for a request this client does not run (over, or never here) is the sender's mistake or a race: nothing to do.
    this.logger.debug({ token, source }, 'cancel for no running request ignored');
  }

  /** Sends one answer; returns its wire text (undefined if it could not be made). */
  private reply(to: ReplyTo, answer: ResponseStep, onWritten?: () => void): WireBody | undefined {
    const envelope = responseMessage({ source: this.options.id, destination: to.requester, token: to.token, priority: to.priority }, answer);
    const body = this.encodeAnswer(envelope, to);
    this.send(to, body, onWritten);
    return body;
  }

  /** The answer's text; one that is not JSON or too large becomes an error answer (protocol §3.4, §5.1). */
  private encodeAnswer(envelope: Envelope, to: ReplyTo): WireBody {
    try {
      // The payload of an answer to a sealed command goes back sealed for its requester (protocol §3.6).
      const sealed = to.sealed && envelope.error === undefined && envelope.accepted !== true ? this.sealAnswer(envelope, to.requester) : envelope;
      return encodeMessage(sealed, { maxBytes: this.options.maxMessageBytes, what: () => `the response of ${to.action}` });
    } catch (problem) {
      const { responseCode, error } = toWire(problem instanceof PayloadTooLargeError || problem instanceof SealingError ? problem : new TypeError((problem as Error).message));
      this.logger.warn({ action: to.action, token: to.token }, error.message);
      return encode(responseMessage({ source: this.options.id, destination: to.requester, token: to.token, priority: to.priority }, { step: 'error', code: responseCode, error }));
    }
  }

  private sealAnswer(envelope: Envelope, requester: string): Envelope {
    if (!this.sealing?.canSealFor(requester)) throw new SealingError(cannotSealAnswer(requester));
    return this.sealing.seal(envelope, [requester]);
  }

  private send(to: ReplyTo, body: WireBody, onWritten?: () => void): void {
    try {
      this.transport.send({ topic: responseTopic(to.action, to.requester), body, qos: to.qos, priority: to.priority, ...(onWritten && { onWritten, onDropped: onWritten }) });
    } catch (error) {
      onWritten?.();
      this.logger.warn({ action: to.action, token: to.token, err: (error as Error).message }, 'response not sent');
    }
  }

  /** Aborts every running handler (the client is closing). */
  abortAll(): void {
    for (const running of this.running.values()) running.abort(new CancelledError('the serving client is closing'));
  }
}

function cannotSealAnswer(requester: string): string {
  return `cannot seal the answer: no sealing key for identity ${identityOfClientId(requester)}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
