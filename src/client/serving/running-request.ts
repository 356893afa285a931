/**
 * One request being handled: was it cancelled, has its deadline passed. The AbortSignal and
 * the deadline timer are made only when the handler reads `ctx.signal`: most handlers never
 * do, and the two cost more than the rest of a request's dispatch.
 */
import { TimeoutError } from '../../protocol/errors.js';
import { MAX_TIMER_MS } from '../options.js';

export class RunningRequest {
  private controller?: AbortController;
  private timer?: ReturnType<typeof setTimeout>;
  private reason?: Error;
  private isEnded = false;
  /** The last fraction the handler reported, for a duplicate's status (protocol §4.8). */
  lastProgress?: number;

  constructor(
    readonly token: string,
    readonly deadline: number | undefined,
  ) {}

  /** Aborted on cancel, on the deadline, or when the serving client closes. */
  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController();
      if (this.aborted) controller.abort(this.reason);
      // Once the handler has answered, or for a deadline beyond what a Node timer can hold
      // (it would fire at once), no timer: `aborted` still notices the deadline when asked.
      else if (this.deadline !== undefined && !this.isEnded && this.deadline - Date.now() <= MAX_TIMER_MS) {
        this.timer = setTimeout(() => this.abort(this.deadlineError()), this.deadline - Date.now());
      }
      this.controller = controller;
    }
    return this.controller.signal;
  }

  /** Cancelled, or past its deadline (noticed here even when nobody made the signal). */
  get aborted(): boolean {
    if (!this.reason && this.deadline !== undefined && Date.now() >= this.deadline) this.abort(this.deadlineError());
    return this.reason !== undefined;
  }

  /** Why it was aborted; undefined while it runs normally. */
  get abortReason(): Error | undefined {
    return this.aborted ? this.reason : undefined;
  }

  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    clearTimeout(this.timer);
    this.controller?.abort(reason);
  }

  /** The handler has answered: its deadline no longer matters. */
  end(): void {
    this.isEnded = true;
    clearTimeout(this.timer);
  }

  /** The final response is decided: nothing more is sent for this command. */
  get ended(): boolean {
    return this.isEnded;
  }

  private deadlineError(): TimeoutError {
    return new TimeoutError(`deadline of request ${this.token} passed`);
  }
}
