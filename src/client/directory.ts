/**
 * Who is connected and which actions they serve, from the retained presence messages
 * every client publishes on `relais/presence/<id>` (protocol §7). Lets a request fail
 * fast with NoHandlerError and notices a handler's death (its Last Will).
 */
import type { Envelope } from '../protocol/envelope.js';
import { CancelledError, TimeoutError } from '../protocol/errors.js';
import { Emitter } from './emitter.js';
import type { PresenceInfo } from './types.js';
import { waitFor } from './wait.js';

export class Directory extends Emitter<{
  /** A client left `alive`: `info` is its new presence (`stopped`, `dead`), undefined when forgotten. */
  gone: [clientId: string, info: PresenceInfo | undefined];
  change: [clientId: string, info: PresenceInfo | undefined];
  settled: [];
}> {
  private readonly clients = new Map<string, PresenceInfo>();
  private readonly providersByAction = new Map<string, Set<string>>();

  /** Entries not confirmed since the last reconnection (the broker may have restarted without them). */
  private unconfirmed?: Set<string>;
  private isSettled = false;
  private settleTimer: NodeJS.Timeout | undefined;
  /** When our own presence came back: the settling is not drawn out past MAX_SETTLE_IN_WINDOWS windows from there. */
  private settleStartedAt = 0;
  private markLoaded!: () => void;

  /** Resolves when this client's own presence first comes back: the retained presences came before it (protocol §7.2). */
  readonly loaded = new Promise<void>((resolve) => (this.markLoaded = resolve));

  /** @param settleMs how long after our own presence comes back the directory is taken as complete (`directorySettle`). */
  constructor(private readonly settleMs = 0) {
    super();
  }

  /**
   * False while the retained presences may still be arriving (protocol §7.2): a broker may
   * send them after later live messages, so "nobody serves X" is only trusted once settled.
   */
  get settled(): boolean {
    return this.isSettled;
  }

  /** After a reconnection: every entry must be confirmed again by the retained presences. */
  beginReload(): void {
    this.isSettled = false;
    this.unconfirmed = new Set(this.clients.keys());
  }

  /**
   * Our own presence came back from the broker: the retained presences it had came before
   * it, though some brokers (Aedes) still send some late, for seconds on a loaded machine with
   * many of them, so the directory settles once no presence has come for `settleMs` (protocol
   * §7.2): forgetting a client whose retained presence is merely late would fail its requests
   * with NoHandlerError.
   */
  ownPresenceBack(): void {
    this.markLoaded();
    if (this.isSettled || this.settleTimer) return;
    this.settleStartedAt = Date.now();
    this.armSettle();
  }

  /** The directory settles `settleMs` from now, unless a presence comes first. */
  private armSettle(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.endReload();
    }, this.settleMs);
  }

  /** The client is stopping: no more settling. */
  stop(): void {
    clearTimeout(this.settleTimer);
  }

  /** The retained presences are in: forget what was not confirmed since the reconnection. */
  private endReload(): void {
    const stale = this.unconfirmed;
    this.unconfirmed = undefined;
    this.isSettled = true;
    for (const clientId of stale ?? []) this.update(clientId, undefined);
    this.emit('settled');
  }

  /** Records a presence message; `undefined` means the retained presence was cleared. */
  update(clientId: string, envelope: Envelope | undefined): void {
    this.unconfirmed?.delete(clientId);
    // Presences still coming: the settling waits for them to stop, within its bound.
    if (this.settleTimer && Date.now() - this.settleStartedAt < MAX_SETTLE_IN_WINDOWS * this.settleMs) this.armSettle();
    let info = envelope ? toPresence(envelope.payload) : undefined;
    // An ephemeral client that is gone leaves no trace: its will reads as a cleared presence.
    if (info?.ephemeral === true && info.status !== 'alive') info = undefined;
    const before = this.clients.get(clientId);
    if (info && before && isStale(info, before)) return;
    if (before) for (const action of allActions(before)) this.providersByAction.get(action)?.delete(clientId);
    if (info) {
      if (before && info.status === 'dead') info.seq = Math.max(info.seq ?? 0, before.seq ?? 0);
      this.clients.set(clientId, info);
      // A starting client announces no actions; `lifecycle` is checked too, for a foreign peer that would (protocol §7.1).
      if (info.status === 'alive' && info.lifecycle !== 'starting') {
        for (const action of allActions(info)) {
          let providers = this.providersByAction.get(action);
          if (!providers) this.providersByAction.set(action, (providers = new Set()));
          providers.add(clientId);
        }
      }
    } else {
      this.clients.delete(clientId);
    }
    this.emit('change', clientId, info);
    if (before?.status === 'alive' && info?.status !== 'alive') this.emit('gone', clientId, info);
  }

  /** Ids of the alive clients that announce `action`. */
  providers(action: string): ReadonlySet<string> {
    return this.providersByAction.get(action) ?? EMPTY;
  }

  /** Whether `clientId` takes a command for `action` targeted at it: one it announces, or a built-in one (protocol §11.4). */
  serves(clientId: string, action: string): boolean {
    if (this.providers(action).has(clientId)) return true;
    const info = this.clients.get(clientId);
    return info?.status === 'alive' && info.targetedActions?.includes(action) === true;
  }

  /**
   * Resolves once some alive client (or `target`) announces `action`; rejects with
   * `TimeoutError` after `timeout` ms, `CancelledError` when `signal` aborts, and with the
   * reason of `stopped` when the client stops.
   */
  waitForProvider(action: string, options: { target?: string; timeout: number; signal?: AbortSignal; stopped: AbortSignal }): Promise<void> {
    const available = () => (options.target ? this.serves(options.target, action) : this.providers(action).size > 0);
    if (available()) return Promise.resolve();
    return waitFor<void>(
      {
        timeout: options.timeout,
        timeoutError: () => new TimeoutError(`no handler for ${action}${options.target ? ` on ${options.target}` : ''} appeared within ${options.timeout} ms`),
        ...(options.signal && { signal: options.signal }),
        abortError: () => new CancelledError(`stopped waiting for a handler of ${action}`, { cause: options.signal?.reason }),
      },
      (settle) => {
        const onStop = () => settle(options.stopped.reason as Error);
        const onChange = () => {
          if (available()) settle(undefined);
        };
        if (options.stopped.aborted) return onStop();
        options.stopped.addEventListener('abort', onStop, { once: true });
        this.on('change', onChange);
        return () => {
          options.stopped.removeEventListener('abort', onStop);
          this.off('change', onChange);
        };
      },
    );
  }

  get(clientId: string): PresenceInfo | undefined {
    return this.clients.get(clientId);
  }

  list(): Array<[string, PresenceInfo]> {
    return [...this.clients.entries()];
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** The settling ends at the latest this many `settleMs` windows after our own presence came back (protocol §7.2). */
const MAX_SETTLE_IN_WINDOWS = 20;

/**
 * Presences can arrive out of order (a broker may send a retained copy after a newer live
 * one), so each carries the client's start time and a counter (protocol §7.1). A Last
 * Will (`dead`) is written at connection time with an old counter and still applies.
 */
function isStale(incoming: PresenceInfo, known: PresenceInfo): boolean {
  if (incoming.since !== known.since) return incoming.since < known.since;
  if (incoming.status === 'dead') return false;
  return (incoming.seq ?? 0) <= (known.seq ?? 0);
}

function allActions(info: PresenceInfo): string[] {
  return info.realtimeActions ? [...info.actions, ...info.realtimeActions] : info.actions;
}

function toPresence(payload: unknown): PresenceInfo | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const candidate = payload as Partial<PresenceInfo>;
  if (candidate.status !== 'alive' && candidate.status !== 'stopped' && candidate.status !== 'dead') return undefined;
  const strings = (value: unknown) => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
  return {
    ...candidate,
    status: candidate.status,
    actions: strings(candidate.actions),
    realtimeActions: strings(candidate.realtimeActions),
    targetedActions: strings(candidate.targetedActions),
    since: typeof candidate.since === 'number' ? candidate.since : 0,
    seq: typeof candidate.seq === 'number' ? candidate.seq : 0,
  };
}
