/**
 * The page as a requester (protocol §4.1, §10): it subscribes to `<action>/response/<me>`
 * before publishing, sends the command at QoS 1 (it does not wait for acknowledgements the
 * library's way, §4.7, so no `acceptBy`), matches answers by token, and on cancel or time-out
 * publishes `<action>/cancel` (§4.4).
 */
import type { Envelope, Priority } from '../../../src/protocol/envelope.js';
import { encode } from '../../../src/protocol/envelope.js';
import { cancelMessage, commandMessage } from '../../../src/protocol/messages.js';
import { cancelTopic, requestTopic, responseTopic } from '../../../src/protocol/topics.js';
import type { Bus, Subscription } from './bus.js';

export interface RequestOptions {
  /** A client id, `*` for every provider (§4.6), absent for "whoever serves it". */
  target?: string;
  priority?: Priority;
  timeoutMs?: number;
}

/** An error answer (protocol §5), or one the page made itself (time-out, cancel). */
export interface WireFailure {
  code: number;
  name: string;
  message: string;
  details?: unknown;
}

export type RequestStep =
  | { kind: 'sent'; at: number }
  | { kind: 'accepted'; at: number; by: string }
  | { kind: 'progress'; at: number; by: string; progress?: number; payload: unknown };

export type RequestEnd =
  | { ok: true; at: number; by: string; payload: unknown }
  | { ok: false; at: number; by?: string; error: WireFailure };

export interface RequestHandle {
  token: string;
  /** Settles with the final answer; never rejects. */
  done: Promise<RequestEnd>;
  cancel(reason?: string): void;
  /** Calls `listener` with every step so far, then with each new one. */
  watch(listener: (step: RequestStep) => void): () => void;
}

interface Pending {
  action: string;
  target: string;
  priority: Priority;
  onStep(step: RequestStep): void;
  finish(end: RequestEnd): void;
  /** Who answered first: the cancel's destination (§4.4). */
  handler?: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class Requests {
  private readonly pending = new Map<string, Pending>();
  /** Response subscriptions by action, made once and kept (as the library does, §4.1 step 5). */
  private readonly responseSubscriptions = new Map<string, Promise<Subscription>>();
  private readonly prefix = randomPrefix();
  private counter = 0;

  constructor(private readonly bus: Bus) {}

  send(action: string, payload: unknown, options: RequestOptions): RequestHandle {
    const token = `${this.prefix}.${++this.counter}`;
    const priority = options.priority ?? 'normal';
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let settle!: (end: RequestEnd) => void;
    const done = new Promise<RequestEnd>((resolve) => (settle = resolve));
    const timer = setTimeout(() => this.giveUp(token, 'requester time-out', { code: 6, name: 'TimeoutError', message: `no final answer within ${timeoutMs} ms` }), timeoutMs);
    const steps: RequestStep[] = [];
    const watchers = new Set<(step: RequestStep) => void>();
    const pending: Pending = {
      action,
      target: options.target ?? '*',
      priority,
      onStep: (step) => {
        steps.push(step);
        for (const watcher of watchers) watcher(step);
      },
      finish: (end) => {
        clearTimeout(timer);
        this.pending.delete(token);
        settle(end);
      },
    };
    this.pending.set(token, pending);
    void this.publishCommand(action, token, payload, options, priority, Date.now() + timeoutMs).catch((error: Error) => {
      const failure: WireFailure = error instanceof TypeError ? { code: 2, name: 'TypeError', message: error.message } : { code: 1, name: 'NotSentError', message: error.message };
      this.pending.get(token)?.finish({ ok: false, at: Date.now(), error: failure });
    });
    return {
      token,
      done,
      cancel: (reason = 'cancelled by the requester') => this.giveUp(token, reason, { code: 5, name: 'CancelledError', message: reason }),
      watch: (listener) => {
        for (const step of steps) listener(step);
        watchers.add(listener);
        return () => watchers.delete(listener);
      },
    };
  }

  /** Fails every pending request (the page is logging out). */
  abandonAll(): void {
    for (const [token] of this.pending) this.giveUp(token, 'the page closed its connection', { code: 5, name: 'CancelledError', message: 'the page closed its connection' });
  }

  private async publishCommand(action: string, token: string, payload: unknown, options: RequestOptions, priority: Priority, deadline: number): Promise<void> {
    const topic = requestTopic(action, options.target);
    await this.responses(action);
    const command = commandMessage({ source: this.bus.id, destination: options.target ?? '*', token, payload, priority, deadline });
    const text = encode(command, { what: `the command for ${action}` });
    if (!this.pending.has(token)) return;
    // Before the PUBACK: a quick handler's answer may arrive first.
    this.pending.get(token)?.onStep({ kind: 'sent', at: command.ts ?? Date.now() });
    await this.bus.publish(topic, text, 1);
  }

  private responses(action: string): Promise<Subscription> {
    let subscription = this.responseSubscriptions.get(action);
    if (!subscription) {
      subscription = this.bus.subscribe(responseTopic(action, this.bus.id), ({ envelope }) => envelope && this.onResponse(envelope));
      subscription.catch(() => this.responseSubscriptions.delete(action));
      this.responseSubscriptions.set(action, subscription);
    }
    return subscription.then((made) => {
      if (!made.granted) {
        this.responseSubscriptions.delete(action);
        throw new Error(`the policy does not let this identity read the answers of ${action}`);
      }
      return made;
    });
  }

  /** How a requester reads a response (protocol §4.3). */
  private onResponse(envelope: Envelope): void {
    if (envelope.type !== 'response' || envelope.token === undefined) return;
    const pending = this.pending.get(envelope.token);
    if (!pending) return;
    const at = envelope.ts ?? Date.now();
    const by = envelope.source;
    pending.handler ??= by;
    if (envelope.final === false) {
      if (envelope.accepted === true) pending.onStep({ kind: 'accepted', at, by });
      else pending.onStep({ kind: 'progress', at, by, payload: envelope.payload, ...(envelope.progress !== undefined && { progress: envelope.progress }) });
      return;
    }
    const code = envelope.code ?? 0;
    if (code === 0) pending.finish({ ok: true, at, by, payload: envelope.payload });
    else {
      const error = envelope.error ?? { name: 'RemoteError', message: `error code ${code}` };
      pending.finish({ ok: false, at, by, error: { code, ...error } });
    }
  }

  /** Ends a request locally and tells its handler (protocol §4.4). */
  private giveUp(token: string, reason: string, failure: WireFailure): void {
    const pending = this.pending.get(token);
    if (!pending) return;
    pending.finish({ ok: false, at: Date.now(), error: failure });
    const destination = pending.handler ?? pending.target;
    const cancel = cancelMessage({ source: this.bus.id, destination, token, reason, priority: pending.priority });
    void this.bus.publish(cancelTopic(pending.action), encode(cancel), 1).catch(() => undefined);
  }
}

function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}
