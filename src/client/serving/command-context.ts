/**
 * One command a handler runs: what the handler reads (`ctx`, protocol §4.2), where its
 * answers go (protocol §4.3), and whether it was cancelled or is past its deadline (the
 * RunningRequest it extends). One object per command, its methods on the prototype: the
 * context of a handler that answers at once costs one allocation.
 */
import type { ReplyTo } from '../../protocol/command-admission.js';
import type { Envelope, Priority } from '../../protocol/envelope.js';
import { RunningRequest } from './running-request.js';
import type { HandlerContext } from '../types.js';

export interface ProgressSink {
  progress(command: CommandContext, fraction: number | undefined, data: unknown): void;
}

export class CommandContext extends RunningRequest implements HandlerContext, ReplyTo {
  readonly action: string;
  readonly requester: string;
  readonly priority: Priority;
  readonly qos: 0 | 1;

  constructor(
    to: ReplyTo,
    readonly envelope: Envelope,
    /** `<requester> <token>`: its name among the commands running and finished. */
    readonly key: string,
    private readonly sink: ProgressSink,
  ) {
    super(to.token, envelope.deadline);
    this.action = to.action;
    this.requester = to.requester;
    this.priority = to.priority;
    this.qos = to.qos;
  }

  /** The command came sealed (HandlerContext, protocol §3.6). */
  get sealed(): boolean {
    return this.envelope.seal !== undefined;
  }

  /** Id of the requester (HandlerContext). */
  get source(): string {
    return this.requester;
  }

  /** A progress response was sent: it tells the requester the command was taken, as an acknowledgement would (protocol §4.7). */
  answered = false;

  /** Progress responses sent but not yet handed to a socket, and who waits for them (`drained()`). */
  private unwritten = 0;
  private drainWaiters?: Array<() => void>;

  /** A progress response is about to be sent: returns what to call (once) when it is written or dropped. */
  progressQueued(): () => void {
    this.unwritten += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.unwritten -= 1;
      if (this.unwritten === 0) this.releaseDrainWaiters();
    };
  }

  drained(): Promise<void> {
    if (this.unwritten === 0 || this.ended || this.aborted) return Promise.resolve();
    return new Promise((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    for (const resolve of waiters ?? []) resolve();
  }

  override abort(reason: Error): void {
    super.abort(reason);
    this.releaseDrainWaiters();
  }

  override end(): void {
    super.end();
    this.releaseDrainWaiters();
  }

  progress(fraction: number | undefined, data?: unknown): void {
    if (this.ended || this.aborted) return;
    if (fraction !== undefined && !(fraction >= 0 && fraction <= 1)) {
      throw new RangeError(`progress must be a fraction between 0 and 1, got ${fraction}`);
    }
    if (fraction !== undefined) this.lastProgress = fraction;
    this.answered = true;
    this.sink.progress(this, fraction, data);
  }
}
