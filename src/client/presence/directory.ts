/**
 * Who is connected and which actions they serve, from the retained presence messages
 * every client publishes on `relais/presence/<id>` (protocol §7). Lets a request fail
 * fast with NoHandlerError and notices a handler's death (its Last Will). An on-demand
 * directory (the `directory` option, protocol §7.2) follows every presence only once asked.
 */
import type { Envelope } from '../../protocol/envelope.js';
import { CancelledError, TimeoutError } from '../../protocol/errors.js';
import { judgePresence, orderAfter, parsePresence, type PresenceInfo, type PresenceOrder } from '../../protocol/presence.js';
import { Emitter } from '../emitter.js';
import { waitFor } from '../wait.js';

/** How many refused presences a directory remembers, for its errors' sake. */
const MAX_REFUSALS_KEPT = 1000;

export class Directory extends Emitter<{
  /** A client left `alive`: `info` is its new presence (`stopped`, `dead`), undefined when forgotten. */
  gone: [clientId: string, info: PresenceInfo | undefined];
  change: [clientId: string, info: PresenceInfo | undefined];
  settled: [];
}> {
  private readonly clients = new Map<string, PresenceInfo>();
  private readonly providersByAction = new Map<string, Set<string>>();
  /** Clients whose latest presence this client refused, and why (protocol §12.4): a NoHandlerError says it. */
  private readonly refusals = new Map<string, string>();

  /** Entries not confirmed since the last reconnection (the broker may have restarted without them). */
  private unconfirmed?: Set<string>;
  private isSettled = false;
  /** The client is closing or closed: nothing may arm a timer any more. */
  private stopped = false;
  private settleTimer: ReturnType<typeof setTimeout> | undefined;
  /** When our own presence came back: the settling is not drawn out past MAX_SETTLE_IN_WINDOWS windows from there. */
  private settleStartedAt = 0;
  private markLoaded!: () => void;
  /** Whether it follows every presence: from the start for a full directory, from the first `want()` for an on-demand one. */
  private isFollowing: boolean;
  /** Why an on-demand directory could not follow the presences (its subscription refused), for the errors of what found nobody. */
  private followFailure: string | undefined;

  /** Resolves when this client's own presence first comes back: the retained presences came before it (protocol §7.2). */
  readonly loaded = new Promise<void>((resolve) => (this.markLoaded = resolve));

  /**
   * @param settleMs how long after our own presence comes back the directory is taken as complete (`directorySettle`).
   * @param follow for an on-demand directory: subscribes to every presence, resolving on the broker's SUBACK.
   */
  constructor(
    private readonly settleMs = 0,
    private readonly follow?: () => Promise<void>,
  ) {
    super();
    this.isFollowing = follow === undefined;
  }

  /** Whether it follows every presence on the bus (an on-demand one only once `want()` was called). */
  get following(): boolean {
    return this.isFollowing;
  }

  /** Why it could not follow the presences, when its subscription was refused. */
  get failure(): string | undefined {
    return this.followFailure;
  }

  /**
   * What needs the whole directory calls this first: an on-demand one subscribes to every
   * presence and settles as after a connection (§7.2: a request for an action nobody announces
   * yet is held meanwhile). A no-op for a full directory, or once following.
   */
  want(): void {
    if (this.isFollowing || this.stopped) return;
    this.isFollowing = true;
    this.isSettled = false;
    this.follow!().then(
      () => {
        // The broker sends the retained presences after its SUBACK: the settling counts from there.
        if (this.isSettled || this.settleTimer || this.stopped) return;
        this.settleStartedAt = Date.now();
        this.armSettle();
      },
      (error: Error) => {
        // Nothing will come: what waits is answered with what is known, and says why.
        this.followFailure = `cannot subscribe to the presences: ${error.message}`;
        if (!this.isSettled) this.endReload();
      },
    );
  }

  /** Resolves once settled (at once if it is), or when `timeout` ms have passed, whatever it holds then. */
  whenSettled(timeout: number): Promise<void> {
    if (this.isSettled) return Promise.resolve();
    return waitFor<void>({ timeout }, (settle) => {
      const settled = () => settle(undefined);
      this.once('settled', settled);
      return () => this.off('settled', settled);
    }).catch(() => {});
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
    // Not following: there is nothing else to wait for.
    if (!this.isFollowing) {
      if (!this.isSettled) this.endReload();
      return;
    }
    if (this.isSettled || this.settleTimer) return;
    this.settleStartedAt = Date.now();
    this.armSettle();
  }

  /** The directory settles `settleMs` from now, unless a presence comes first. */
  private armSettle(): void {
    clearTimeout(this.settleTimer);
    if (this.stopped) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.endReload();
    }, this.settleMs);
  }

  /**
   * The client is stopping: no more settling. Presences may still arrive while it closes (its
   * own farewell comes back), and must not arm the timer again.
   */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
  }

  /** The retained presences are in: forget what was not confirmed since the reconnection. */
  private endReload(): void {
    const stale = this.unconfirmed;
    this.unconfirmed = undefined;
    this.isSettled = true;
    for (const clientId of stale ?? []) this.update(clientId, undefined);
    this.emit('settled');
  }

  /**
   * A presence of `clientId` that this client's signature checks refused (protocol §12.4): what it
   * says is not believed, and what was known of the client stays, but a request that finds no
   * handler says why, rather than "not connected" of a client that is.
   */
  refused(clientId: string, reason: string): void {
    this.refusals.delete(clientId);
    this.refusals.set(clientId, reason);
    // Anyone may publish presences under made-up ids: the oldest refusals go first past the bound.
    if (this.refusals.size > MAX_REFUSALS_KEPT) this.refusals.delete(this.refusals.keys().next().value!);
  }

  /** Why the latest presence of `clientId` was refused, if it was and none was believed since. */
  refusedBecause(clientId: string): string | undefined {
    return this.refusals.get(clientId);
  }

  /** The clients whose latest presence was refused, with why. */
  refusedPresences(): ReadonlyMap<string, string> {
    return this.refusals;
  }

  /** Records a presence message; `undefined` means the retained presence was cleared. */
  update(clientId: string, envelope: Envelope | undefined): void {
    this.unconfirmed?.delete(clientId);
    this.refusals.delete(clientId);
    // Presences still coming: the settling waits for them to stop, within its bound.
    if (this.settleTimer && Date.now() - this.settleStartedAt < MAX_SETTLE_IN_WINDOWS * this.settleMs) this.armSettle();
    let info: PresenceInfo | undefined = envelope ? parsePresence(envelope.payload) : undefined;
    const before = this.clients.get(clientId);
    if (info) {
      // Presences can arrive out of order (a broker may send a retained copy after a newer live one): protocol §7.1.
      const known = before && orderOf(before);
      const verdict = judgePresence(info, known);
      if (verdict === 'older') return;
      if (verdict === 'forget') info = undefined;
      else info.seq = orderAfter(info, known).seq;
    }
    if (before) for (const action of allActions(before)) this.providersByAction.get(action)?.delete(clientId);
    if (info) {
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

/** Where a presence the directory holds stands in its client's sequence (protocol §7.1). */
function orderOf(info: PresenceInfo): PresenceOrder {
  return { since: info.since, seq: info.seq ?? 0, instance: info.instance };
}

function allActions(info: PresenceInfo): string[] {
  return info.realtimeActions ? [...info.actions, ...info.realtimeActions] : info.actions;
}
