/**
 * This client's own presence (protocol §7): the will it leaves with the broker, its `alive`
 * announcements (serialised so the broker keeps the latest), the re-announcement after a
 * reconnection, the farewell, and what to do about another client using its id (§7.5).
 */
import { presenceMessage } from '../../protocol/messages.js';
import { presenceTopic } from '../../protocol/topics.js';
import { encode } from '../../protocol/envelope.js';
import type { ResolvedOptions } from '../options.js';
import { CLOSE_GRACE_MS, type Transport } from '../connection/index.js';
import { TwinWatch } from './twins.js';
import type { Lane, PresenceInfo } from '../types.js';

/** Pause between a reconnection and our presence, for the retained presences to arrive first (§7.5). */
export const REANNOUNCE_DELAY_MS = 100;

export interface PresenceEvents {
  /** Another client took our id (§7.5): this one must stop. */
  replaced(other: PresenceInfo, message: string): void;
}

export class Presence {
  readonly twins = new TwinWatch(Date.now());
  readonly topic: string;
  private seq = 0;
  private announcing: Promise<void> = Promise.resolve();
  private reannounceTimer: ReturnType<typeof setTimeout> | undefined;
  /** The latest presence the broker acknowledged, and the timer that publishes it once more (`presenceRepeat`, protocol §7.1). */
  private latest: string | undefined;
  private repeatTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** `startup: 'manual'` and `markReady()` not called yet: announced as starting, serving nothing (protocol §7.1). */
  private starting: boolean;
  private transport!: Transport;
  /** Facts changed since connecting (`updateInfo`), over the `info` connect option. */
  private infoUpdates: Record<string, unknown> = {};

  constructor(
    private readonly options: ResolvedOptions,
    private readonly actions: (lane: Lane) => string[],
    private readonly events: PresenceEvents,
    /** Built-in actions served only when targeted (protocol §11.4). */
    private readonly targetedActions: () => string[] = () => [],
    /** Hashes of the declared contracts, by action (protocol §7.6). */
    private readonly contracts: () => Record<string, string> = () => ({}),
  ) {
    this.topic = presenceTopic(options.id);
    this.starting = options.startup === 'manual';
  }

  /** True until `markReady()` for a client started with `startup: 'manual'`. */
  get isStarting(): boolean {
    return this.starting;
  }

  /** The client has finished starting: announce it `alive` with its actions. Resolves once the broker has it. */
  markReady(): Promise<void> {
    if (!this.starting) return Promise.resolve();
    this.starting = false;
    return this.announce();
  }

  /**
   * Changes facts of the client's free-form info (protocol §7.1) and announces them: a directory
   * must not keep showing what is no longer true. Resolves once the broker has them (at once
   * while offline: every reconnection announces).
   */
  updateInfo(fields: Record<string, unknown>): Promise<void> {
    this.infoUpdates = { ...this.infoUpdates, ...fields };
    return this.stopped ? Promise.resolve() : this.announce();
  }

  /** The transport is made with our will (`will()`), so it comes after. */
  attach(transport: Transport): void {
    this.transport = transport;
  }

  private get logger() {
    return this.options.logger;
  }

  /** The Last Will: `dead`, flagged ephemeral for an ephemeral client (an empty will would hide a takeover, §7.5). */
  will(): { topic: string; payload: string } {
    return { topic: this.topic, payload: this.body('dead') };
  }

  /** `contracts`, only when there are some: presence is retained for every client, keep it small. */
  private contractField(): { contracts?: Record<string, string> } {
    const contracts = this.contracts();
    return Object.keys(contracts).length > 0 ? { contracts } : {};
  }

  private body(status: PresenceInfo['status']): string {
    // A starting client is `alive` with no actions, so that directories of every version, which
    // read an unknown status as an invalid presence and forget the client, keep it and never
    // pick it as a handler; `lifecycle` says why it serves nothing yet (protocol §7.1).
    const starting = status === 'alive' && this.starting;
    const alive = status === 'alive' && !starting;
    const info: PresenceInfo = {
      // Caller facts first, so they cannot overwrite the fields the protocol relies on.
      ...this.options.hostFacts,
      ...this.options.info,
      ...this.infoUpdates,
      status,
      actions: alive ? this.actions('main') : [],
      realtimeActions: alive ? this.actions('realtime') : [],
      targetedActions: alive ? this.targetedActions() : [],
      ...(alive && this.contractField()),
      since: this.twins.since,
      seq: this.seq++,
      instance: this.twins.instance,
      // This library acknowledges commands and remembers their tokens (protocol §4.7).
      acks: true,
      ...(this.options.ephemeral && { ephemeral: true }),
      ...(starting && { lifecycle: 'starting' as const }),
    };
    return encode(presenceMessage(this.options.id, info));
  }

  /** Publishes `alive` (retained) and resolves once the broker has it. Serialised: the broker keeps the latest list. */
  announce(): Promise<void> {
    return this.enqueue(() => this.body('alive'), 'announce');
  }

  /** Publishes `body()` (skipped when it returns undefined) after what is queued before it. */
  private enqueue(body: () => string | undefined, what: string): Promise<void> {
    this.announcing = this.announcing
      .catch(() => {})
      .then(async () => {
        const text = this.transport.connected ? body() : undefined;
        if (text === undefined) return;
        await this.transport.publishNow(this.topic, text, true);
        if (what !== 'repeat') this.repeatLater(text);
      })
      .catch((error: unknown) => {
        // A connection lost on the way is not a failure: every reconnection announces again.
        if (this.transport.connected || this.stopped) throw error;
        this.logger.debug({ err: (error as Error).message, what }, 'presence not acknowledged before the connection dropped; it is republished on reconnection');
      });
    return this.announcing;
  }

  /**
   * Publishes `text` once more after `presenceRepeat` ms, unless a newer presence went out
   * meanwhile. A cluster's nodes copy a retained message to each other some time after its
   * PUBACK: a client subscribing on another node meanwhile gets the previous presence from
   * that node's store and not this one live, and would keep it until our next change (protocol
   * §7.1, "On a cluster"). The copy has the same `seq`: directories that have it ignore it.
   */
  private repeatLater(text: string): void {
    clearTimeout(this.repeatTimer);
    this.latest = text;
    if (this.options.presenceRepeat <= 0 || this.stopped || text === '') return;
    this.repeatTimer = setTimeout(() => {
      if (this.stopped || !this.transport.connected) return;
      // Checked when its turn comes: a newer presence queued before it must stay the retained one.
      this.enqueue(() => (this.latest === text ? text : undefined), 'repeat').catch((error: Error) => this.logger.debug({ err: error.message }, 'presence not repeated'));
    }, this.options.presenceRepeat);
  }

  /** After a reconnection: announce a moment later, once the broker has replayed the retained presences (§7.5). */
  reannounceSoon(): void {
    clearTimeout(this.reannounceTimer);
    // The announcement below is repeated in its turn; an older presence must not come back first.
    clearTimeout(this.repeatTimer);
    this.reannounceTimer = setTimeout(() => {
      if (this.stopped || !this.transport.connected) return;
      this.announce().catch((error: Error) => this.logger.warn({ err: error.message }, 'presence not republished'));
    }, REANNOUNCE_DELAY_MS);
  }

  /**
   * A presence arrived on our own topic. Returns true when it is ours (the directory's loading
   * barrier waits for it); another instance's is judged as a twin (§7.5).
   */
  onOwnTopic(info: PresenceInfo): boolean {
    if (!this.twins.isOther(info.instance)) return true;
    if (this.stopped) return false;
    const where = whereItRuns(info);
    switch (this.twins.judge(info)) {
      case 'older-twin':
        this.logger.warn({ id: this.options.id, other: where }, 'an older client uses our id; it gives way to this one');
        break;
      case 'suspected-twin':
        // Its will outranks our presence everywhere (§7.1 ordering): clear it and announce again.
        this.logger.warn({ id: this.options.id, other: where }, 'a client started later with our id has died (its will); carrying on');
        this.reclaim();
        break;
      case 'give-way':
        this.giveWay(info);
        break;
      case 'ignore':
        break;
    }
    return false;
  }

  /** Our main connection dropped: true when the suspected twin explains it (it is alive and took the id back). */
  knockedOff(): boolean {
    const twin = this.twins.knockedOffBy();
    if (twin) this.giveWay(twin);
    return twin !== undefined;
  }

  private giveWay(other: PresenceInfo): void {
    const where = whereItRuns(other);
    const message = `another client connected with the id ${this.options.id} (${where}): only one connection may hold an id, so this one stops; give each client its own id`;
    this.logger.error({ id: this.options.id, other: where, otherSince: other.since, since: this.twins.since }, message);
    this.events.replaced(other, message);
  }

  /** Clears the retained presence on our topic, then announces ours: directories forget the other instance first. */
  private reclaim(): void {
    void this.enqueue(() => '', 'clear').catch(() => {});
    this.announce().catch((error: Error) => this.logger.warn({ err: error.message }, 'presence not republished'));
  }

  /** On a clean close: `stopped` (or cleared, for an ephemeral client), bounded in time. */
  async farewell(): Promise<void> {
    this.stop();
    if (!this.transport.connected) return;
    const body = this.options.ephemeral ? '' : this.body('stopped');
    // Bounded: a broker that just died would never acknowledge it.
    await this.transport
      .publishNow(this.topic, body, true, CLOSE_GRACE_MS)
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'farewell presence not acknowledged; the will may announce this client as dead'));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reannounceTimer);
    clearTimeout(this.repeatTimer);
  }
}

function whereItRuns(presence: PresenceInfo): string {
  return `host ${String(presence.host ?? '?')}, pid ${String(presence.pid ?? '?')}`;
}

